package bridge_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/simserver"
	"github.com/uamirror/uamirror/test/harness"
)

const simNS = "urn:uamirror:simserver"

func node(i int) string { return fmt.Sprintf("nsu=%s;s=v%d", simNS, i) }

// startSim starts an in-process simulation server with n variables of
// one type (all types cycling when typ is "").
func startSim(t *testing.T, n int, typ string) *simserver.Server {
	t.Helper()
	s, err := simserver.New(simserver.Config{Vars: n, Type: typ, Logger: zap.NewNop(), JournalMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(harness.Context(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// fastTimeouts make faults visible within a test's patience.
func fastTimeouts() mapping.Timeouts {
	return mapping.Timeouts{Connect: 2 * time.Second, Request: time.Second, KeepAlive: 200 * time.Millisecond,
		Session: 30 * time.Second, DataAge: 3 * time.Second}
}

// pairConfig mirrors n variables a.v_i → b.v_i; mod may change each.
func pairConfig(t *testing.T, a, b string, n int, mod func(i int, m *mapping.Mapping)) *mapping.Config {
	t.Helper()
	cfg := &mapping.Config{
		Servers: []mapping.Server{
			{Name: "a", Endpoints: []string{a}, Timeouts: fastTimeouts()},
			{Name: "b", Endpoints: []string{b}, Timeouts: fastTimeouts()},
		},
		Engine: mapping.Engine{PublishingInterval: 50 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond},
	}
	for i := 0; i < n; i++ {
		m := mapping.Mapping{Source: mapping.NodeRef{Server: "a", Node: node(i)}, Target: mapping.NodeRef{Server: "b", Node: node(i)}}
		if mod != nil {
			mod(i, &m)
		}
		m.ID = mapping.DeriveID(m.Source, m.Target)
		cfg.Mappings = append(cfg.Mappings, m)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config does not validate: %v", err)
	}
	return cfg
}

// runEngine runs an engine until the end of the test.
func runEngine(t *testing.T, cfg *mapping.Config, gate bridge.Gate) *bridge.Engine {
	t.Helper()
	e, err := bridge.New(bridge.Options{Config: cfg, Gate: gate, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = e.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return e
}

func valueOf(s *simserver.Server, i int) any {
	dv := s.Value(i)
	if dv == nil || dv.Value == nil {
		return nil
	}
	return dv.Value.Value()
}

func waitConnected(t *testing.T, e *bridge.Engine, okMappings int) {
	t.Helper()
	harness.Eventually(t, 15*time.Second, "all servers connected and mappings ok", func() bool {
		st := e.Stats()
		for _, s := range st.Servers {
			if s.State != bridge.Connected {
				return false
			}
		}
		return st.States[bridge.StateOK] >= okMappings
	})
}

func TestReadDirection(t *testing.T) {
	a, b := startSim(t, 20, "Double"), startSim(t, 20, "Double")
	e := runEngine(t, pairConfig(t, a.Endpoint(), b.Endpoint(), 20, nil), nil)
	for i := 0; i < 20; i++ {
		a.SetValue(i, float64(i)+0.5, time.Now())
	}
	waitConnected(t, e, 20)
	harness.Eventually(t, 10*time.Second, "targets equal sources", func() bool {
		for i := 0; i < 20; i++ {
			if valueOf(b, i) != float64(i)+0.5 {
				return false
			}
		}
		return true
	})
	// A later change flows too.
	a.SetValue(3, 42.0, time.Now())
	harness.Eventually(t, 5*time.Second, "b.v3 == 42", func() bool { return valueOf(b, 3) == 42.0 })
}

func TestWriteDirection(t *testing.T) {
	a, b := startSim(t, 5, "Double"), startSim(t, 5, "Double")
	cfg := pairConfig(t, a.Endpoint(), b.Endpoint(), 5, func(i int, m *mapping.Mapping) { m.Direction = mapping.Write })
	e := runEngine(t, cfg, nil)
	waitConnected(t, e, 0)
	b.SetValue(2, 7.25, time.Now())
	harness.Eventually(t, 10*time.Second, "a.v2 == 7.25 (target→source)", func() bool { return valueOf(a, 2) == 7.25 })
	a.SetValue(1, 99.0, time.Now())
	// Nothing flows source→target for a write mapping: b.v1 keeps its value.
	b.SetValue(4, 1.5, time.Now())
	harness.Eventually(t, 10*time.Second, "a.v4 == 1.5", func() bool { return valueOf(a, 4) == 1.5 })
	if valueOf(b, 1) == 99.0 {
		t.Fatal("write mapping copied source→target")
	}
}

func TestBothDirectionsSuppressEchoes(t *testing.T) {
	a, b := startSim(t, 4, "Double"), startSim(t, 4, "Double")
	cfg := pairConfig(t, a.Endpoint(), b.Endpoint(), 4, func(i int, m *mapping.Mapping) { m.Direction = mapping.Both })
	gate := bridge.NewManualGate(false, 0)
	e := runEngine(t, cfg, gate)
	waitConnected(t, e, 8) // every flow has its initial value before writes start
	gate.Set(true, 1)
	// The initial sync: the newer side of each pair wins.
	harness.Eventually(t, 10*time.Second, "initial sync", func() bool {
		if _, ok := e.Writing(); !ok {
			return false
		}
		for i := 0; i < 4; i++ {
			if valueOf(a, i) != valueOf(b, i) {
				return false
			}
		}
		return true
	})
	a.SetValue(0, 10.0, time.Now())
	if !harness.WaitFor(10*time.Second, func() bool { return valueOf(b, 0) == 10.0 }) {
		t.Logf("a.v0=%+v b.v0=%+v", a.Value(0), b.Value(0))
		t.Logf("stats %+v", e.Stats())
		for _, m := range e.Snapshot() {
			t.Logf("%+v", m)
		}
		for _, j := range a.Journal() {
			t.Logf("a journal %+v", j)
		}
		for _, j := range b.Journal() {
			t.Logf("b journal %+v", j)
		}
		t.Fatal("a→b")
	}
	b.SetValue(1, 20.0, time.Now())
	harness.Eventually(t, 10*time.Second, "b→a", func() bool { return valueOf(a, 1) == 20.0 })
	// An echo loop would keep writing. Barrier: one more change through
	// the engine must be the only write that follows.
	harness.Eventually(t, 5*time.Second, "echoes seen and suppressed", func() bool { return e.Stats().Echoes >= 2 })
	writesA, writesB := a.WriteCount(), b.WriteCount()
	a.SetValue(3, 33.0, time.Now())
	harness.Eventually(t, 5*time.Second, "barrier value", func() bool { return valueOf(b, 3) == 33.0 })
	if a.WriteCount() != writesA || b.WriteCount() != writesB+1 {
		for _, j := range a.Journal() {
			t.Logf("a journal %+v", j)
		}
		for _, j := range b.Journal() {
			t.Logf("b journal %+v", j)
		}
		t.Logf("stats %+v", e.Stats())
		t.Fatalf("echo loop: writes a %d→%d (want unchanged), b %d→%d (want +1)", writesA, a.WriteCount(), writesB, b.WriteCount())
	}
	// A true conflict: both sides change while the engine holds its writes
	// (standby); the newer source timestamp wins on both sides.
	gate.Set(false, 1)
	harness.Eventually(t, 5*time.Second, "gate closed", func() bool { _, ok := e.Writing(); return !ok })
	stale := e.Stats().Stale
	now := time.Now()
	// Stamped further apart than the clock skew (engine.clock_skew, 2 s):
	// the newer timestamp decides (within it, the change received last).
	// Stamped further apart than the clock skew (engine.clock_skew, 2 s):
	// the newer timestamp decides (within it, the change received last).
	a.SetValue(2, 1.0, now)
	b.SetValue(2, 2.0, now.Add(-5*time.Second))
	harness.Eventually(t, 5*time.Second, "both changes seen", func() bool {
		var fwd, rev bool
		for _, m := range e.Snapshot() {
			if m.Index == 2 && !m.Reverse {
				fwd = m.Value != nil && m.Value.Value() == 1.0
			}
			if m.Index == 2 && m.Reverse {
				rev = m.Value != nil && m.Value.Value() == 2.0
			}
		}
		return fwd && (rev || e.Stats().Stale > stale)
	})
	gate.Set(true, 2)
	harness.Eventually(t, 10*time.Second, "newest (a=1.0) wins on both sides", func() bool {
		return valueOf(a, 2) == 1.0 && valueOf(b, 2) == 1.0
	})
}

func TestTransforms(t *testing.T) {
	a := startSim(t, 4, "Double")
	b := startSim(t, 16, "") // types cycle: v3 Int16, v9 Float, v11 String
	cfg := &mapping.Config{
		Servers: []mapping.Server{
			{Name: "a", Endpoints: []string{a.Endpoint()}, Timeouts: fastTimeouts()},
			{Name: "b", Endpoints: []string{b.Endpoint()}, Timeouts: fastTimeouts()},
		},
		Engine: mapping.Engine{PublishingInterval: 50 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond},
		Mappings: []mapping.Mapping{
			// scaling 0..27648 → 0..100, into Float
			{Source: mapping.NodeRef{Server: "a", Node: node(0)}, Target: mapping.NodeRef{Server: "b", Node: node(9)},
				Scaling: &mapping.Scaling{RawLow: 0, RawHigh: 27648, EngLow: 0, EngHigh: 100}},
			// Double → Int16 with rounding
			{Source: mapping.NodeRef{Server: "a", Node: node(1)}, Target: mapping.NodeRef{Server: "b", Node: node(3)},
				Convert: &mapping.Conversion{Rounding: mapping.RoundNearest}},
			// Double → Int16, fraction rejected (default): the mapping goes bad
			{Source: mapping.NodeRef{Server: "a", Node: node(2)}, Target: mapping.NodeRef{Server: "b", Node: node(4)},
				Convert: &mapping.Conversion{To: "Int16"}},
			// deadband 5 absolute, Double → String
			{Source: mapping.NodeRef{Server: "a", Node: node(3)}, Target: mapping.NodeRef{Server: "b", Node: node(11)},
				Deadband: &mapping.Deadband{Type: mapping.DeadbandAbsolute, Value: 5}},
		},
	}
	for i := range cfg.Mappings {
		cfg.Mappings[i].ID = mapping.DeriveID(cfg.Mappings[i].Source, cfg.Mappings[i].Target)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e := runEngine(t, cfg, nil)
	a.SetValue(0, 13824.0, time.Now())
	a.SetValue(1, 3.6, time.Now())
	a.SetValue(2, 2.5, time.Now())
	a.SetValue(3, 10.0, time.Now())
	harness.Eventually(t, 10*time.Second, "scaled, rounded and converted values", func() bool {
		return valueOf(b, 9) == float32(50) && valueOf(b, 3) == int16(4) && valueOf(b, 11) == "10"
	})
	// The fraction is refused, with a reason; b.v4 is not written.
	harness.Eventually(t, 5*time.Second, "mapping 2 bad with a reason", func() bool {
		for _, m := range e.Snapshot() {
			if m.Index == 2 {
				return m.State == bridge.StateBad && m.Reason != ""
			}
		}
		return false
	})
	// Deadband: 12 is within 5 of 10 → not written; 16 is → written.
	a.SetValue(3, 12.0, time.Now())
	a.SetValue(0, 27648.0, time.Now())
	harness.Eventually(t, 5*time.Second, "scaling follows", func() bool { return valueOf(b, 9) == float32(100) })
	if v := valueOf(b, 11); v != "10" {
		t.Fatalf("deadband: b.v11 = %v, want 10", v)
	}
	a.SetValue(3, 16.0, time.Now())
	harness.Eventually(t, 5*time.Second, "deadband exceeded", func() bool { return valueOf(b, 11) == "16" })
	for _, j := range b.Journal() {
		if j.Node == node(4) {
			t.Fatalf("a value that cannot be converted was written: %+v", j)
		}
	}
}

func TestQuarantineOneBadNode(t *testing.T) {
	a, b := startSim(t, 5, "Double"), startSim(t, 5, "Double")
	cfg := pairConfig(t, a.Endpoint(), b.Endpoint(), 5, func(i int, m *mapping.Mapping) {
		if i == 2 {
			m.Source.Node = "nsu=" + simNS + ";s=missing"
		}
	})
	e := runEngine(t, cfg, nil)
	for i := 0; i < 5; i++ {
		a.SetValue(i, float64(100+i), time.Now())
	}
	harness.Eventually(t, 10*time.Second, "other mappings flow", func() bool {
		return valueOf(b, 0) == 100.0 && valueOf(b, 1) == 101.0 && valueOf(b, 3) == 103.0 && valueOf(b, 4) == 104.0
	})
	var st bridge.MappingStatus
	for _, m := range e.Snapshot() {
		if m.Index == 2 {
			st = m
		}
	}
	if st.State != bridge.StateQuarantined || st.Reason == "" {
		t.Fatalf("mapping 2: state %v reason %q, want quarantined with a reason", st.State, st.Reason)
	}
	t.Logf("quarantine reason: %s", st.Reason)
}

func TestHoldLastGoodOnBadSource(t *testing.T) {
	a, b := startSim(t, 2, "Double"), startSim(t, 2, "Double")
	e := runEngine(t, pairConfig(t, a.Endpoint(), b.Endpoint(), 2, nil), nil)
	a.SetValue(0, 5.5, time.Now())
	harness.Eventually(t, 10*time.Second, "first value", func() bool { return valueOf(b, 0) == 5.5 })
	n := b.WriteCount()
	a.SetStatus(0, ua.StatusBadSensorFailure)
	harness.Eventually(t, 5*time.Second, "mapping held", func() bool {
		for _, m := range e.Snapshot() {
			if m.Index == 0 {
				return m.State == bridge.StateHeld
			}
		}
		return false
	})
	if b.WriteCount() != n || valueOf(b, 0) != 5.5 {
		t.Fatalf("bad source value reached the target: writes %d→%d, value %v", n, b.WriteCount(), valueOf(b, 0))
	}
	a.SetStatus(0, ua.StatusOK) // the status is sticky in simserver
	a.SetValue(0, 6.5, time.Now())
	harness.Eventually(t, 5*time.Second, "recovers", func() bool { return valueOf(b, 0) == 6.5 })
	for _, j := range b.Journal() {
		if !isGoodCode(uint32(j.Status)) {
			t.Fatalf("bad status written: %+v", j)
		}
	}
}

func isGoodCode(c uint32) bool { return c>>30 == 0 }

func TestStandbyWritesNothingThenReconcilesDifferences(t *testing.T) {
	const n = 50
	a, b := startSim(t, n, "Double"), startSim(t, n, "Double")
	gate := bridge.NewManualGate(false, 0)
	e := runEngine(t, pairConfig(t, a.Endpoint(), b.Endpoint(), n, nil), gate)
	ts := time.Now()
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(i), ts)
		if i < 40 { // 40 targets already hold the right value
			b.SetValue(i, float64(i), ts)
		}
	}
	harness.Eventually(t, 10*time.Second, "standby cache filled", func() bool {
		cnt := 0
		for _, m := range e.Snapshot() {
			if m.Value != nil {
				cnt++
			}
		}
		return cnt == n
	})
	if w := b.WriteCount(); w != 0 {
		t.Fatalf("standby wrote %d values", w)
	}
	gate.Set(true, 1)
	harness.Eventually(t, 10*time.Second, "reconciled", func() bool {
		for i := 0; i < n; i++ {
			if valueOf(b, i) != float64(i) {
				return false
			}
		}
		return true
	})
	harness.Eventually(t, 5*time.Second, "reconcile counted", func() bool { return e.Stats().Reconciles >= 1 })
	if w := b.WriteCount(); w != n-40 {
		t.Fatalf("reconcile wrote %d values, want only the %d that differed", w, n-40)
	}
}

func TestNewestWinsUnderBurst(t *testing.T) {
	a, b := startSim(t, 1, "Double"), startSim(t, 1, "Double")
	e := runEngine(t, pairConfig(t, a.Endpoint(), b.Endpoint(), 1, nil), nil)
	waitConnected(t, e, 0)
	base := time.Now()
	for k := 1; k <= 2000; k++ {
		a.SetValue(0, float64(k), base.Add(time.Duration(k)*time.Microsecond))
	}
	harness.Eventually(t, 10*time.Second, "final value", func() bool { return valueOf(b, 0) == 2000.0 })
	var last time.Time
	for _, j := range b.Journal() {
		if j.SourceTimestamp.Before(last) {
			t.Fatalf("older value written after a newer one: %v after %v", j.SourceTimestamp, last)
		}
		last = j.SourceTimestamp
	}
	t.Logf("2000 changes → %d writes", b.WriteCount())
}

func TestOnBadWriteStatus(t *testing.T) {
	a, b := startSim(t, 2, "Double"), startSim(t, 2, "Double")
	cfg := pairConfig(t, a.Endpoint(), b.Endpoint(), 2, func(i int, m *mapping.Mapping) { m.OnBad = mapping.WriteStatus })
	runEngine(t, cfg, nil)
	a.SetValue(0, 7.5, time.Now())
	harness.Eventually(t, 10*time.Second, "first value", func() bool { return valueOf(b, 0) == 7.5 })
	a.SetStatus(0, ua.StatusBadSensorFailure)
	harness.Eventually(t, 10*time.Second, "bad status written with the last good value", func() bool {
		dv := b.Value(0)
		return dv != nil && dv.Status == ua.StatusBadSensorFailure && dv.Value != nil && dv.Value.Value() == 7.5
	})
	a.SetStatus(0, ua.StatusOK)
	a.SetValue(0, 8.5, time.Now())
	harness.Eventually(t, 10*time.Second, "good again", func() bool {
		dv := b.Value(0)
		return dv != nil && isGoodCode(uint32(dv.Status)) && valueOf(b, 0) == 8.5
	})
}

func TestWriteNotSupportedFallsBackToValueOnly(t *testing.T) {
	a := startSim(t, 3, "Double")
	b, err := simserver.New(simserver.Config{Vars: 3, Type: "Double", Logger: zap.NewNop(), JournalMemory: true, RejectTimestamps: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(harness.Context(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	runEngine(t, pairConfig(t, a.Endpoint(), b.Endpoint(), 3, nil), nil)
	for i := 0; i < 3; i++ {
		a.SetValue(i, float64(i)+0.5, time.Now())
	}
	harness.Eventually(t, 10*time.Second, "values written without timestamps", func() bool {
		for i := 0; i < 3; i++ {
			if valueOf(b, i) != float64(i)+0.5 {
				return false
			}
		}
		return true
	})
	// Remembered: later writes go value-only at once.
	a.SetValue(1, 42.0, time.Now())
	harness.Eventually(t, 10*time.Second, "next value", func() bool { return valueOf(b, 1) == 42.0 })
}
