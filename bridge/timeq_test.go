package bridge_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/simserver"
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

// startSimClock is startSim with the server's clock off by off.
func startSimClock(t *testing.T, n int, typ string, off time.Duration) *simserver.Server {
	t.Helper()
	s, err := simserver.New(simserver.Config{Vars: n, Type: typ, Logger: zap.NewNop(), JournalMemory: true, ClockOffset: off})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(harness.Context(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestSourceClockStepsBackAndForward: a source whose clock steps back an
// hour mid-run keeps being mirrored (values are taken in the session's
// order), and so does one an hour ahead; the mapping shows clock with
// the reason, never ok-and-frozen.
func TestSourceClockStepsBackAndForward(t *testing.T) {
	a, b := startSim(t, 1, "Double"), startSim(t, 1, "Double")
	e := runEngine(t, pairConfig(t, a.Endpoint(), b.Endpoint(), 1, nil), nil)
	waitConnected(t, e, 1)
	a.SetValue(0, 1.0, time.Time{})
	harness.Eventually(t, 10*time.Second, "b.v0 == 1", func() bool { return valueOf(b, 0) == 1.0 })

	a.StepClock(-time.Hour)
	for _, v := range []float64{2, 3} {
		a.SetValue(0, v, time.Time{}) // stamped by a's clock, an hour back
		harness.Eventually(t, 10*time.Second, fmt.Sprintf("after a step back of 1h: b.v0 == %v", v),
			func() bool { return valueOf(b, 0) == v })
	}
	if st, why := mappingState(e, 0, false); st != bridge.StateClock || !strings.Contains(why, "stepped back") {
		t.Fatalf("after a step back of 1h: state %v (%q), want clock, stepped back", st, why)
	}

	a.StepClock(2 * time.Hour) // now an hour ahead of this node
	for _, v := range []float64{4, 5} {
		a.SetValue(0, v, time.Time{})
		harness.Eventually(t, 10*time.Second, fmt.Sprintf("1h ahead: b.v0 == %v", v),
			func() bool { return valueOf(b, 0) == v })
	}
	if st, why := mappingState(e, 0, false); st != bridge.StateClock || !strings.Contains(why, "ahead") {
		t.Fatalf("1h ahead: state %v (%q), want clock, ahead", st, why)
	}
}

// TestBothPairFiveMinutesApart: a both mapping between two servers whose
// clocks are 5 minutes apart mirrors changes made on either side in
// turn: the skew decides nothing outside a true conflict.
func TestBothPairFiveMinutesApart(t *testing.T) {
	a, b := startSimClock(t, 1, "Double", -5*time.Minute), startSim(t, 1, "Double")
	cfg := pairConfig(t, a.Endpoint(), b.Endpoint(), 1, func(i int, m *mapping.Mapping) { m.Direction = mapping.Both })
	cfg.Engine.ClockSkew = 10 * time.Minute // above the skew, as the README says
	e := runEngine(t, cfg, nil)
	waitConnected(t, e, 2) // both flows: the start-up write came back as an echo
	if err := e.WaitIdle(harness.Context(t)); err != nil {
		t.Fatal(err)
	}
	for k, side := range []string{"b", "a", "b", "a"} {
		v := float64(10 + k)
		from, to := b, a
		if side == "a" {
			from, to = a, b
		}
		from.SetValue(0, v, time.Time{})
		if !harness.WaitFor(10*time.Second, func() bool { return valueOf(to, 0) == v && valueOf(from, 0) == v }) {
			for _, st := range e.Snapshot() {
				t.Logf("%+v", st)
			}
			t.Logf("a %v %v b %v %v", valueOf(a, 0), a.Value(0).SourceTimestamp, valueOf(b, 0), b.Value(0).SourceTimestamp)
		}
		harness.Eventually(t, 10*time.Second, fmt.Sprintf("change %d on %s (%v) mirrored", k, side, v),
			func() bool { return valueOf(to, 0) == v && valueOf(from, 0) == v })
	}
}

// TestTakeoverNeverWritesGoodOverBadSource (issue 14 item 3): a node
// that takes over (its gate opens) while a write_status mapping's source
// is Bad writes the target Bad, never Good, although the target's value
// is already the last good one; when the source turns Good again with
// the same value the target turns Good.
func TestTakeoverNeverWritesGoodOverBadSource(t *testing.T) {
	a, b := startSim(t, 1, "Double"), startSim(t, 1, "Double")
	gate := bridge.NewManualGate(false, 0)
	cfg := pairConfig(t, a.Endpoint(), b.Endpoint(), 1, func(_ int, m *mapping.Mapping) { m.OnBad = mapping.WriteStatus })
	e := runEngine(t, cfg, gate)
	ts := time.Now()
	a.SetValue(0, 5.0, ts)
	b.SetValue(0, 5.0, ts) // the old active wrote it
	harness.Eventually(t, 10*time.Second, "standby cache filled", func() bool {
		st := e.Snapshot()
		return len(st) == 1 && st[0].Value != nil && st[0].Value.Value() == 5.0
	})
	a.SetStatus(0, ua.StatusBadNoCommunication)
	harness.Eventually(t, 10*time.Second, "standby saw the source Bad", func() bool {
		st, _ := mappingState(e, 0, false)
		return st == bridge.StateHeld
	})
	gate.Set(true, 1)
	harness.Eventually(t, 10*time.Second, "target Bad after the takeover", func() bool {
		dv := b.Value(0)
		return dv.Status == ua.StatusBadNoCommunication && dv.Value.Value() == 5.0
	})
	a.SetStatus(0, ua.StatusGood)
	harness.Eventually(t, 10*time.Second, "target Good again, same value", func() bool {
		dv := b.Value(0)
		return dv.Status == ua.StatusGood && dv.Value.Value() == 5.0
	})
}
