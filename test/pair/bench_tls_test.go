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
		plannedGaps(b, p, "planned switchover, TLS")
	})
}
