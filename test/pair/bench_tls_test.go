package pair

import (
	"testing"
	"time"
)

// BenchmarkSwitchoverGapTLS is BenchmarkSwitchoverGap's planned
// switchover on a secured pair (mutual TLS on raft and the peer link,
// https and a token on the admin API), to compare the gaps. Run it once:
//
//	go test -run '^$' -bench SwitchoverGap -benchtime 1x ./test/pair/
func BenchmarkSwitchoverGapTLS(b *testing.B) {
	b.Run("planned", func(b *testing.B) {
		p := startSecuredPair(b, pairOpts{rate: streamR, heartbeat: 500 * time.Millisecond}).pair
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
		report(b, "planned switchover, TLS", gaps, nodeGaps)
	})
}
