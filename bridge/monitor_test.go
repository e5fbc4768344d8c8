package bridge_test

import (
	"testing"
	"time"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/test/harness"
)

// TestMonitorBatches creates the monitored items in many small batches
// (conn.monitor): every item ends up monitored and flowing, and an item
// the server rejects quarantines its own mapping only, whichever batch it
// is in.
func TestMonitorBatches(t *testing.T) {
	const n = 40
	missing := map[int]bool{5: true, 22: true, 39: true}
	a, b := startSim(t, n, "Double"), startSim(t, n, "Double")
	cfg := pairConfig(t, a.Endpoint(), b.Endpoint(), n, func(i int, m *mapping.Mapping) {
		if missing[i] {
			m.Source.Node = "nsu=" + simNS + ";s=missing"
		}
	})
	cfg.Engine.SubscribeBatch = 3 // 14 requests
	e := runEngine(t, cfg, nil)
	now := time.Now()
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(1000+i), now)
	}
	harness.Eventually(t, 15*time.Second, "every mapping but the missing ones flows", func() bool {
		for i := 0; i < n; i++ {
			if !missing[i] && valueOf(b, i) != float64(1000+i) {
				return false
			}
		}
		return true
	})
	harness.Eventually(t, 10*time.Second, "the missing ones quarantined, the others ok", func() bool {
		for _, m := range e.Snapshot() {
			want := bridge.StateOK
			if missing[m.Index] {
				want = bridge.StateQuarantined
			}
			if m.State != want {
				return false
			}
		}
		return true
	})
}
