package bridge_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/tcpproxy"
)

// Tests of issue 14: time, quality and types as plants have them.

func serverLevel(e *bridge.Engine, name string) int {
	for _, s := range e.Stats().Servers {
		if s.Name == name {
			return s.ServiceLevel
		}
	}
	return -2
}

func mappingState(e *bridge.Engine, i int, reverse bool) (bridge.State, string) {
	for _, st := range e.Snapshot() {
		if st.Index == i && st.Reverse == reverse {
			return st.State, st.Reason
		}
	}
	return -1, "no such mapping"
}

// TestDownSourceIsStaleAndServiceLevelUnknown: while the source server is
// cut off, its mappings show stale (not ok) and its ServiceLevel is
// unknown (-1), not the last one read; both recover with the session.
func TestDownSourceIsStaleAndServiceLevelUnknown(t *testing.T) {
	a, b := startSim(t, 2, "Double"), startSim(t, 2, "Double")
	pa, err := tcpproxy.New(hostPort(a.Endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	defer pa.Close()
	e := runEngine(t, pairConfig(t, "opc.tcp://"+pa.Addr(), b.Endpoint(), 2, nil), nil)
	a.SetServiceLevel(200)
	a.SetValue(0, 1.5, time.Now())
	waitConnected(t, e, 2)
	harness.Eventually(t, 10*time.Second, "a's ServiceLevel 200 read", func() bool { return serverLevel(e, "a") == 200 })

	pa.Cut()
	harness.Eventually(t, 10*time.Second, "a's ServiceLevel unknown (-1) while a is cut off", func() bool {
		return serverLevel(e, "a") == -1
	})
	harness.Eventually(t, 10*time.Second, "mappings of a stale while a is cut off", func() bool {
		st0, _ := mappingState(e, 0, false)
		st1, _ := mappingState(e, 1, false)
		return st0 == bridge.StateStale && st1 == bridge.StateStale
	})
	if _, why := mappingState(e, 0, false); why == "" {
		t.Error("stale without a reason")
	}
	pa.Restore()
	waitConnected(t, e, 2)
	harness.Eventually(t, 10*time.Second, "ServiceLevel read again", func() bool { return serverLevel(e, "a") == 200 })
}

// TestBackoffResetAfterSession: every session that came up resets the
// reconnect backoff, so after many short outages the next reconnect
// still comes after about RetryMin (here 20 ms), not after a backoff
// grown over the earlier outages (20 ms × 2⁸, capped at 5 s).
func TestBackoffResetAfterSession(t *testing.T) {
	a, b := startSim(t, 1, "Double"), startSim(t, 1, "Double")
	cfg := pairConfig(t, a.Endpoint(), b.Endpoint(), 1, nil)
	cfg.Engine.RetryMin, cfg.Engine.RetryMax = 20*time.Millisecond, 5*time.Second
	e := runEngine(t, cfg, nil)
	waitConnected(t, e, 0)
	var worst time.Duration
	for round := 0; round < 9; round++ {
		before := reconnectsOf(e, "a")
		start := time.Now()
		a.DropConnections()
		harness.Eventually(t, 20*time.Second, fmt.Sprintf("round %d: reconnected", round), func() bool {
			return reconnectsOf(e, "a") > before && serverState(e, "a") == bridge.Connected
		})
		worst = max(worst, time.Since(start))
	}
	if worst > 2500*time.Millisecond {
		t.Fatalf("slowest reconnect after a dropped session: %v, want about RetryMin (backoff not reset)", worst)
	}
}

func reconnectsOf(e *bridge.Engine, name string) uint64 {
	for _, s := range e.Stats().Servers {
		if s.Name == name {
			return s.Reconnects
		}
	}
	return 0
}
