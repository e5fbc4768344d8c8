package invariant

import (
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/redundancy"
)

func TestJournalChecker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	w := func(ms int, session string, node int, v float64, tsMS int) Write {
		return Write{Time: at(ms), Session: session, Node: NodeID(node), Value: v, Type: "Double", TS: at(tsMS)}
	}
	ev := func(ms int, epoch uint64) redundancy.Event { return redundancy.Event{Time: at(ms), Epoch: epoch} }
	good := func(i int) float64 { return SetValue(i, 1) }
	cases := []struct {
		name   string
		ws     []Write
		events []redundancy.Event
		want   string // substring of the first violation; "" for none
	}{
		{"one writer", []Write{w(1, "A", 1, good(1), 0), w(2, "A", 2, good(2), 1)}, nil, ""},
		{"takeover", []Write{w(1, "A", 1, good(1), 0), w(5, "B", 1, good(1), 4)}, []redundancy.Event{ev(3, 2)}, ""},
		{"new session after reconnect", []Write{w(1, "A", 1, good(1), 0), w(5, "A2", 1, good(1), 4)}, nil, ""},
		{"back and forth with role changes", []Write{w(1, "A", 1, good(1), 0), w(5, "B", 1, good(1), 4), w(9, "A", 1, good(1), 8)},
			[]redundancy.Event{ev(3, 2), ev(7, 3)}, ""},
		{"same source timestamp twice", []Write{w(1, "A", 1, good(1), 0), w(2, "A", 1, good(1), 0)}, nil, ""},
		{"interleaved writers", []Write{w(1, "A", 1, good(1), 0), w(5, "B", 2, good(2), 4), w(6, "A", 3, good(3), 5), w(7, "B", 2, good(2), 6)},
			[]redundancy.Event{ev(3, 2)}, "two writers"},
		{"stale writer after the takeover", []Write{w(1, "A", 1, good(1), 0), w(5, "B", 2, good(2), 4), w(6, "A", 3, good(3), 5)},
			[]redundancy.Event{ev(3, 2)}, "two writers"},
		{"stale writer after only a refused connection", []Write{w(1, "A", 1, good(1), 0), w(5, "B", 2, good(2), 4), w(8, "A", 3, good(3), 7)},
			[]redundancy.Event{ev(3, 2), {Time: at(6), Kind: redundancy.RefusalKind, Reason: "refused"}}, "two writers"},
		{"older source timestamp", []Write{w(1, "A", 1, good(1), 5), w(5, "B", 1, good(1), 4)}, []redundancy.Event{ev(3, 2)}, "went back"},
		{"bad status", []Write{{Time: at(1), Session: "A", Node: NodeID(1), Value: good(1), TS: at(0), Status: 0x80310000}}, nil, "status"},
		{"zero", []Write{w(1, "A", 1, 0, 0)}, nil, "zero"},
		{"value of another node", []Write{w(1, "A", 1, good(2), 0)}, nil, "no value the source produces"},
		{"generated value", []Write{w(1, "A", 3, 3*1000+17+0.25, 0)}, nil, ""},
		{"not a Double", []Write{{Time: at(1), Session: "A", Node: NodeID(1), Value: nil, TS: at(0)}}, nil, "want a Double"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Violations(c.ws, c.events, ValidValue)
			switch {
			case c.want == "" && len(got) > 0:
				t.Fatalf("unexpected violations: %q", got)
			case c.want != "" && len(got) == 0:
				t.Fatalf("no violation, want one with %q", c.want)
			case c.want != "" && !strings.Contains(got[0], c.want):
				t.Fatalf("violation %q, want one with %q", got[0], c.want)
			}
		})
	}

	t.Run("takeover gap", func(t *testing.T) {
		ws := []Write{w(1, "B", 1, good(1), 0), w(10, "A", 1, good(1), 9), w(20, "A", 2, good(2), 19), w(25, "A", 1, good(1), 24),
			w(110, "B", 1, good(1), 100), w(120, "B", 2, good(2), 110)}
		lastOld, firstNew, ok := Takeover(ws, at(5), at(30))
		if !ok || !lastOld.Time.Equal(at(25)) || !firstNew.Time.Equal(at(110)) {
			t.Fatalf("takeover = %v, %v, %v; want the write at 25 ms and the one at 110 ms", lastOld, firstNew, ok)
		}
	})
}

// TestCheckTotals: Check counts every violation (beyond the listed ones)
// and reports the two-writer intervals.
func TestCheckTotals(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var ws []Write
	for i := range MaxViolations + 5 {
		ws = append(ws, Write{Time: at(i), Session: "A", Node: NodeID(1), Value: 0.0, TS: at(i)})
	}
	ws = append(ws, Write{Time: at(100), Session: "B", Node: NodeID(1), Value: SetValue(1, 1), TS: at(100)},
		Write{Time: at(101), Session: "A", Node: NodeID(1), Value: SetValue(1, 1), TS: at(101)})
	r := Check(ws, nil, ValidValue)
	if r.Total != MaxViolations+6 || len(r.Violations) != MaxViolations || r.Writes != len(ws) || r.Sessions != 2 {
		t.Fatalf("Check = total %d, listed %d, writes %d, sessions %d; want %d, %d, %d, 2",
			r.Total, len(r.Violations), r.Writes, r.Sessions, MaxViolations+6, MaxViolations, len(ws))
	}
	if len(r.TwoWriters) != 1 || !r.TwoWriters[0][0].Equal(at(100)) || !r.TwoWriters[0][1].Equal(at(101)) {
		t.Fatalf("two-writer intervals %v, want [100ms 101ms]", r.TwoWriters)
	}
}
