package bridge_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/nodeopcua"
)

// flowOf returns the forward flow status of mapping index i.
func flowOf(e *bridge.Engine, i int) bridge.MappingStatus {
	for _, m := range e.Snapshot() {
		if m.Index == i && !m.Reverse {
			return m
		}
	}
	return bridge.MappingStatus{}
}

// holdCase is one max_hold scenario against a target server: read reads
// the target's values (value, status) of mappings 0 and 1.
type holdCase struct {
	t      *testing.T
	e      *bridge.Engine
	read   func() ([]*ua.DataValue, error)
	maxHld time.Duration
}

// marksThenClears drives mapping 0 (max_hold set) and mapping 1 (no
// max_hold) through a Bad source: both hold; only 0 is marked
// UncertainLastUsableValue, not before max_hold; a Good value equal to the
// held one then clears the mark.
func (hc holdCase) marksThenClears(setStatus func(i int, code ua.StatusCode), want any) {
	t, e := hc.t, hc.e
	harness.Eventually(t, 20*time.Second, "targets hold the good value", func() bool {
		dv, err := hc.read()
		return err == nil && dv[0].Value != nil && dv[0].Value.Value() == want && dv[0].Status == ua.StatusOK &&
			dv[1].Value != nil && dv[1].Value.Value() == want
	})
	badAt := time.Now()
	setStatus(0, ua.StatusBadSensorFailure)
	setStatus(1, ua.StatusBadSensorFailure)
	harness.Eventually(t, 10*time.Second, "mapping 0 held", func() bool { return flowOf(e, 0).State == bridge.StateHeld })
	var markedAt time.Time
	harness.Eventually(t, hc.maxHld+10*time.Second, "target 0 marked UncertainLastUsableValue", func() bool {
		dv, err := hc.read()
		if err != nil || dv[0].Status != ua.StatusUncertainLastUsableValue {
			if err == nil && dv[0].Status != ua.StatusOK {
				t.Fatalf("target 0 got status %v before the mark", dv[0].Status)
			}
			return false
		}
		markedAt = time.Now()
		if dv[0].Value == nil || dv[0].Value.Value() != want {
			t.Fatalf("marked target 0 has value %v, want the last good %v", dv[0].Value, want)
		}
		return true
	})
	if held := markedAt.Sub(badAt); held < hc.maxHld {
		t.Fatalf("marked after %v, before max_hold %v", held, hc.maxHld)
	}
	st := flowOf(e, 0)
	if st.State != bridge.StateHeld || st.HeldSince.IsZero() || !strings.Contains(st.Reason, "max_hold") {
		t.Fatalf("mapping 0 after the mark: %s since %v (%s)", st.State, st.HeldSince, st.Reason)
	}
	if age := time.Since(st.HeldSince); age < hc.maxHld {
		t.Fatalf("held age %v < max_hold %v", age, hc.maxHld)
	}
	t.Logf("marked %v after the bad status (max_hold %v); reason %q", markedAt.Sub(badAt), hc.maxHld, st.Reason)
	// Mapping 1 has no max_hold: its target keeps the good value as it was.
	dv, err := hc.read()
	if err != nil || dv[1].Status != ua.StatusOK || flowOf(e, 1).State != bridge.StateHeld {
		t.Fatalf("mapping 1 (no max_hold): target %v err %v, state %s", dv, err, flowOf(e, 1).State)
	}
	// The source returns Good with the same value: it replaces the mark.
	setStatus(0, ua.StatusOK)
	harness.Eventually(t, 10*time.Second, "target 0 Good again, mapping ok", func() bool {
		dv, err := hc.read()
		st := flowOf(e, 0)
		return err == nil && dv[0].Status == ua.StatusOK && dv[0].Value != nil && dv[0].Value.Value() == want &&
			st.State == bridge.StateOK && st.HeldSince.IsZero()
	})
}

func TestMaxHoldBadSourceSimserver(t *testing.T) {
	a, b := startSim(t, 2, "Double"), startSim(t, 2, "Double")
	const maxHold = time.Second
	cfg := pairConfig(t, a.Endpoint(), b.Endpoint(), 2, func(i int, m *mapping.Mapping) {
		if i == 0 {
			m.MaxHold = maxHold
		}
	})
	a.SetValue(0, 7.5, time.Now())
	a.SetValue(1, 7.5, time.Now())
	e := runEngine(t, cfg, nil)
	waitConnected(t, e, 2)
	hc := holdCase{t: t, e: e, maxHld: maxHold, read: func() ([]*ua.DataValue, error) {
		return []*ua.DataValue{b.Value(0), b.Value(1)}, nil
	}}
	hc.marksThenClears(a.SetStatus, 7.5)
	for _, j := range b.Journal() {
		if j.Status != ua.StatusOK && j.Status != ua.StatusUncertainLastUsableValue {
			t.Fatalf("target journal: status %v written: %+v", j.Status, j)
		}
		if j.Value != 7.5 {
			t.Fatalf("target journal: value %v written: %+v", j.Value, j)
		}
	}
}

func TestMaxHoldBadSourceNodeOPCUATarget(t *testing.T) {
	sim := startSim(t, 2, "Double")
	no := nodeopcua.Start(t, nodeopcua.Options{Vars: 2, Type: "Double"})
	nsu := func(i int) string { return fmt.Sprintf("nsu=%s;s=v%d", no.Namespace(), i) }
	const maxHold = time.Second
	cfg := &mapping.Config{
		Servers: []mapping.Server{
			{Name: "sim", Endpoints: []string{sim.Endpoint()}, Timeouts: fastTimeouts()},
			{Name: "node", Endpoints: []string{no.Endpoint()}, Timeouts: fastTimeouts()},
		},
		Engine: mapping.Engine{PublishingInterval: 50 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond},
		Groups: []mapping.Group{{Name: "held", MaxHold: maxHold}},
		Mappings: []mapping.Mapping{
			{Source: mapping.NodeRef{Server: "sim", Node: node(0)}, Target: mapping.NodeRef{Server: "node", Node: nsu(0)}, Group: "held"},
			{Source: mapping.NodeRef{Server: "sim", Node: node(1)}, Target: mapping.NodeRef{Server: "node", Node: nsu(1)}},
		},
	}
	for i := range cfg.Mappings {
		cfg.Mappings[i].ID = mapping.DeriveID(cfg.Mappings[i].Source, cfg.Mappings[i].Target)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sim.SetValue(0, 12.5, time.Now())
	sim.SetValue(1, 12.5, time.Now())
	e := runEngine(t, cfg, nil)
	waitConnected(t, e, 0)
	ctx := harness.Context(t)
	hc := holdCase{t: t, e: e, maxHld: maxHold, read: func() ([]*ua.DataValue, error) {
		return harness.ReadValues(ctx, no.Endpoint(), []string{nsu(0), nsu(1)})
	}}
	hc.marksThenClears(sim.SetStatus, 12.5)
}

// TestMaxHoldSourceUnreachable: the source server process is killed; after
// max_hold the target carries the last good value as
// UncertainLastUsableValue and the mapping says why; when the source is
// back its Good value replaces it.
func TestMaxHoldSourceUnreachable(t *testing.T) {
	port := harness.FreePort(t)
	a := harness.Start(t, "simserver", "--port", strconv.Itoa(port), "--vars", "2", "--type", "Double", "--control")
	b := startSim(t, 2, "Double")
	const maxHold = time.Second
	cfg := pairConfig(t, a.Ready("endpoint"), b.Endpoint(), 2, func(i int, m *mapping.Mapping) { m.MaxHold = maxHold })
	e := runEngine(t, cfg, nil)
	waitConnected(t, e, 2)
	if err := a.Send("set 0 4321"); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 10*time.Second, "value mirrored", func() bool {
		dv := b.Value(0)
		return dv.Value != nil && dv.Value.Value() == 4321.0 && dv.Status == ua.StatusOK
	})
	a.Kill()
	harness.Eventually(t, maxHold+10*time.Second, "target marked, mapping held: source unreachable", func() bool {
		dv, st := b.Value(0), flowOf(e, 0)
		return dv.Status == ua.StatusUncertainLastUsableValue && dv.Value.Value() == 4321.0 &&
			st.State == bridge.StateHeld && strings.Contains(st.Reason, "unreachable") && !st.HeldSince.IsZero()
	})
	a.Restart()
	harness.Eventually(t, 20*time.Second, "Good value from the returned source replaces the mark", func() bool {
		dv, st := b.Value(0), flowOf(e, 0)
		return dv.Status == ua.StatusOK && st.State == bridge.StateOK && st.HeldSince.IsZero()
	})
}

// TestMaxHoldStandbyMarksAndTakeoverWritesUncertain: a standby (gate
// closed) whose source goes bad marks the flow after max_hold without
// writing; when it becomes active its reconcile writes the held value as
// UncertainLastUsableValue, never as a live value; a Good value then
// clears it.
func TestMaxHoldStandbyMarksAndTakeoverWritesUncertain(t *testing.T) {
	a, b := startSim(t, 1, "Double"), startSim(t, 1, "Double")
	const maxHold = time.Second
	cfg := pairConfig(t, a.Endpoint(), b.Endpoint(), 1, func(_ int, m *mapping.Mapping) { m.MaxHold = maxHold })
	a.SetValue(0, 3.5, time.Now())
	gate := bridge.NewManualGate(true, 1)
	e := runEngine(t, cfg, gate)
	waitConnected(t, e, 1)
	harness.Eventually(t, 10*time.Second, "value mirrored", func() bool {
		dv := b.Value(0)
		return dv.Value != nil && dv.Value.Value() == 3.5
	})
	gate.Set(false, 1) // standby
	before := b.WriteCount()
	a.SetStatus(0, ua.StatusBadSensorFailure)
	harness.Eventually(t, maxHold+10*time.Second, "standby marks the held flow", func() bool {
		st := flowOf(e, 0)
		return st.State == bridge.StateHeld && strings.Contains(st.Reason, "max_hold")
	})
	if n := b.WriteCount(); n != before {
		t.Fatalf("the standby wrote %d values", n-before)
	}
	gate.Set(true, 2) // takeover
	harness.Eventually(t, 10*time.Second, "the new active writes the held value as Uncertain", func() bool {
		dv := b.Value(0)
		return dv.Status == ua.StatusUncertainLastUsableValue && dv.Value.Value() == 3.5
	})
	for _, j := range b.Journal() {
		if j.Status != ua.StatusOK && j.Status != ua.StatusUncertainLastUsableValue || j.Value != 3.5 {
			t.Fatalf("target journal: %+v", j)
		}
	}
	a.SetStatus(0, ua.StatusOK)
	harness.Eventually(t, 10*time.Second, "Good again", func() bool {
		dv := b.Value(0)
		return dv.Status == ua.StatusOK && flowOf(e, 0).State == bridge.StateOK
	})
}
