package bridge_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/test/harness"
)

// TestTakeoverNeverGoodOverBadSource (issue 14 item 3): two engines
// between real simulation servers, an active and a standby whose own
// session of the source never comes up (its source endpoint is a port
// nobody listens on), fed the active's reports as the pair's peer link
// feeds them (OnWritten → Observe). The source goes Bad: mapping 0
// (on_bad write_status) gets the last good value with the Bad status,
// mapping 1 (hold) nothing, and its target is changed behind the
// mirror's back. The standby takes over: it writes no Good value for
// either, knowing the source is Bad only from the active's reports —
// target 0 keeps its Bad status, target 1 gets the last good value marked
// UncertainLastUsableValue. Back on the first engine, the source turns
// Good with the same values: both targets become Good, and the standby's
// cache learns it from the reports alone.
func TestTakeoverNeverGoodOverBadSource(t *testing.T) {
	a, b := startSim(t, 2, "Double"), startSim(t, 2, "Double")
	mod := func(i int, m *mapping.Mapping) {
		if i == 0 {
			m.OnBad = mapping.WriteStatus
		}
	}
	sbyGate, actGate := bridge.NewManualGate(false, 0), bridge.NewManualGate(true, 1)
	sby := runEngineOpts(t, bridge.Options{Config: pairConfig(t, fmt.Sprintf("opc.tcp://127.0.0.1:%d", harness.FreePort(t)), b.Endpoint(), 2, mod), Gate: sbyGate})
	act := runEngineOpts(t, bridge.Options{Config: pairConfig(t, a.Endpoint(), b.Endpoint(), 2, mod), Gate: actGate,
		OnWritten: sby.Observe})
	status := func(e *bridge.Engine, i int) bridge.MappingStatus {
		for _, m := range e.Snapshot() {
			if m.Index == i {
				return m
			}
		}
		t.Fatalf("no mapping %d", i)
		return bridge.MappingStatus{}
	}
	target := func(i int) (any, ua.StatusCode) {
		dv := b.Value(i)
		if dv == nil || dv.Value == nil {
			return nil, 0
		}
		return dv.Value.Value(), dv.Status
	}

	a.SetValue(0, 7.5, time.Now())
	a.SetValue(1, 3.5, time.Now())
	harness.WaitState(t, 10*time.Second, "the active's values written and reported to the standby", func() (bool, string) {
		v0, _ := target(0)
		v1, _ := target(1)
		s0, s1 := status(sby, 0), status(sby, 1)
		return v0 == 7.5 && v1 == 3.5 && s0.Value != nil && s0.Value.Value() == 7.5 && s1.Value != nil && s1.Value.Value() == 3.5,
			fmt.Sprintf("target %v %v, standby cache %v %v", v0, v1, s0.Value, s1.Value)
	})

	bad := time.Now()
	a.SetStatus(0, ua.StatusBadSensorFailure)
	a.SetStatus(1, ua.StatusBadSensorFailure)
	harness.WaitState(t, 10*time.Second, "the Bad status written (0) and both reported to the standby", func() (bool, string) {
		_, c0 := target(0)
		s0, s1 := status(sby, 0), status(sby, 1)
		return c0 == ua.StatusBadSensorFailure && s0.Status == ua.StatusBadSensorFailure && s1.Status == ua.StatusBadSensorFailure,
			fmt.Sprintf("target 0 status %v; the standby knows %v and %v", c0, s0.Status, s1.Status)
	})
	b.SetValue(1, 0.25, time.Now().Add(-time.Minute)) // the hold target reset behind the mirror's back (an old value)

	actGate.Set(false, 1)
	sbyGate.Set(true, 2)
	harness.WaitState(t, 10*time.Second, "the standby took over: target 1 holds the last good value, marked Uncertain", func() (bool, string) {
		v1, c1 := target(1)
		return v1 == 3.5 && c1 == ua.StatusUncertainLastUsableValue, fmt.Sprintf("target 1: %v %v", v1, c1)
	})
	if ep, ok := sby.Writing(); !ok || ep != 2 {
		t.Fatalf("the standby is not writing under epoch 2 (%d, %v)", ep, ok)
	}
	for _, j := range b.Journal() {
		if j.Time.After(bad) && isGoodCode(uint32(j.Status)) {
			t.Errorf("a Good value written over the Bad source: %+v", j)
		}
	}
	if v0, c0 := target(0); v0 != 7.5 || c0 != ua.StatusBadSensorFailure {
		t.Errorf("target 0 after the takeover: %v %v, want 7.5 with the source's Bad status", v0, c0)
	}

	sbyGate.Set(false, 2)
	actGate.Set(true, 3)
	harness.WaitState(t, 10*time.Second, "the first engine active again", func() (bool, string) {
		ep, ok := act.Writing()
		return ok && ep == 3, fmt.Sprintf("epoch %d writing %v", ep, ok)
	})
	a.SetStatus(0, ua.StatusGood) // the same values, Good again
	a.SetStatus(1, ua.StatusGood)
	harness.WaitState(t, 10*time.Second, "both targets Good with the same values, and the standby told so", func() (bool, string) {
		v0, c0 := target(0)
		v1, c1 := target(1)
		s0, s1 := status(sby, 0), status(sby, 1)
		return v0 == 7.5 && c0 == ua.StatusGood && v1 == 3.5 && c1 == ua.StatusGood && s0.Status == ua.StatusGood && s1.Status == ua.StatusGood,
			fmt.Sprintf("target 0: %v %v, 1: %v %v; the standby knows %v and %v", v0, c0, v1, c1, s0.Status, s1.Status)
	})
}
