package bridge

import (
	"testing"
	"time"
)

// TestPacer: one request alone until the first answer; then more while
// the last of them can be expected back within the budget at the pace
// the server answers, never more than max; a slower answer counts at
// once, a faster one slowly.
func TestPacer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type step struct {
		sent, at int   // an answer (ms), or none if both are 0
		may      []int // out values that may send
		mayNot   []int // out values that may not
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"alone until answered", []step{{may: []int{0}, mayNot: []int{1, 2}}}},
		{"fast server: up to max", []step{{sent: 0, at: 100, may: []int{0, 1, 2, 3}, mayNot: []int{4, 5}}}},
		{"slow server: one at a time", []step{{sent: 0, at: 300, may: []int{0}, mayNot: []int{1}}}},
		{"a queued answer counts from the one before", []step{
			{sent: 0, at: 100, may: []int{3}},
			// sent at 0 with others, answered at 400: 300 ms after the last.
			{sent: 0, at: 400, may: []int{0}, mayNot: []int{1}},
		}},
		{"faster answers bring it down slowly", []step{
			{sent: 0, at: 300, mayNot: []int{1}},
			{sent: 300, at: 310, mayNot: []int{1}}, // est (900+10)/4 = 227 ms: 2 × 227 > 400
			{sent: 310, at: 320, may: []int{1}, mayNot: []int{2}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pacer{max: 4, budget: 400 * time.Millisecond}
			for k, s := range tc.steps {
				if s.sent != 0 || s.at != 0 {
					p.answered(ms(s.sent), ms(s.at))
				}
				for _, out := range s.may {
					if !p.may(out) {
						t.Errorf("step %d (est %s): may(%d) false, want true", k, p.est, out)
					}
				}
				for _, out := range s.mayNot {
					if p.may(out) {
						t.Errorf("step %d (est %s): may(%d) true, want false", k, p.est, out)
					}
				}
			}
		})
	}
}
