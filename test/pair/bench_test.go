package pair

import (
	"fmt"
	"github.com/uamirror/uamirror/test/harness"
	"slices"
	"testing"
	"time"
)

// gapReps is how many switchovers of each kind one benchmark run makes.
const gapReps = 5

// BenchmarkSwitchoverGap measures the write gap of a switchover — from
// the old active's last write to the new active's first, both read from
// the target server's journal — for a planned switchover and for kill -9
// of the active, with the default timers (--heartbeat 500ms) and a
// source changing 1,000 times a second. It prints min/median/max and
// asserts nothing (targets: planned ≤ 200 ms, kill -9 ≤ 1.5 s). Run it
// once:
//
//	go test -run '^$' -bench SwitchoverGap -benchtime 1x ./test/pair/
func BenchmarkSwitchoverGap(b *testing.B) {
	b.Run("planned", func(b *testing.B) {
		p := startPair(b, pairOpts{rate: streamR, heartbeat: 500 * time.Millisecond})
		plannedGaps(b, p, "planned switchover")
	})
	b.Run("kill-9", func(b *testing.B) {
		p := startPair(b, pairOpts{rate: streamR, heartbeat: 500 * time.Millisecond})
		var gaps, nodeGaps []time.Duration
		var since time.Time
		for range b.N {
			for range gapReps {
				act, sby, epoch := p.waitStable(rejoin)
				p.waitLive(time.Now(), settle) // the active writes right up to the kill
				killAt := p.kill(act)
				p.waitActive(sby, epoch+1, settle)
				lastOld, firstNew := p.waitTakeover(since, killAt)
				gaps = append(gaps, firstNew.Time.Sub(lastOld.Time))
				if ev := p.waitEvent(epoch+1, true, settle); ev.GapMS != nil {
					nodeGaps = append(nodeGaps, time.Duration(*ev.GapMS*float64(time.Millisecond)))
				}
				since = firstNew.Time
				p.restart(act)
			}
		}
		p.checkInvariants()
		report(b, "kill -9 of the active", gaps, nodeGaps)
	})
}

// waitTakeover waits until the journal shows the handover after trigger
// (see takeover) and returns the old active's last write and the new
// one's first.
func (p *pair) waitTakeover(since, trigger time.Time) (lastOld, firstNew write) {
	p.t.Helper()
	harness.WaitState(p.t, settle, "the new active's first write", func() (ok bool, _ string) {
		lastOld, firstNew, ok = takeover(p.journal(), since, trigger)
		return ok, ""
	})
	return lastOld, firstNew
}

// report prints min/median/max of the journal gaps (and of the nodes'
// own measure) and reports the median as the benchmark's figure.
func report(b *testing.B, what string, gaps, nodeGaps []time.Duration) {
	line := func(ds []time.Duration) string {
		if len(ds) == 0 {
			return "none"
		}
		s := slices.Clone(ds)
		slices.Sort(s)
		return fmt.Sprintf("min %6.1f ms  median %6.1f ms  max %6.1f ms  (n=%d)", ms(s[0]), ms(s[len(s)/2]), ms(s[len(s)-1]), len(s))
	}
	fmt.Printf("%-22s journal gap: %s\n%-22s node's gap:  %s\n", what, line(gaps), "", line(nodeGaps))
	if len(gaps) > 0 {
		s := slices.Clone(gaps)
		slices.Sort(s)
		b.ReportMetric(ms(s[len(s)/2]), "ms-median-gap")
		b.ReportMetric(ms(s[len(s)-1]), "ms-max-gap")
	}
}

// plannedGaps makes gapReps planned switchovers per b.N on p, checks the
// invariants and reports the gaps under label.
func plannedGaps(b *testing.B, p *pair, label string) {
	var gaps, nodeGaps []time.Duration
	var since time.Time
	for range b.N {
		for range gapReps {
			act, sby, epoch := p.waitStable(settle)
			trigger := time.Now()
			if err := p.switchover(act); err != nil {
				b.Fatal(err)
			}
			p.waitActive(sby, epoch+1, settle)
			lastOld, firstNew := p.waitTakeover(since, trigger)
			gaps = append(gaps, firstNew.Time.Sub(lastOld.Time))
			if ev := p.waitEvent(epoch+1, true, settle); ev.GapMS != nil {
				nodeGaps = append(nodeGaps, time.Duration(*ev.GapMS*float64(time.Millisecond)))
			}
			since = firstNew.Time
		}
	}
	p.checkInvariants()
	report(b, label, gaps, nodeGaps)
}
