package bridge_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/nodeopcua"
)

// TestAgainstNodeOPCUA mirrors between our simulation server and a
// third-party server (node-opcua), both ways, including a conversion to
// node-opcua's strictly typed Float variable.
func TestAgainstNodeOPCUA(t *testing.T) {
	sim := startSim(t, 16, "")                            // cycling types: v10 Double, v9 Float, v5 Int32
	no := nodeopcua.Start(t, nodeopcua.Options{Vars: 16}) // same cycle
	nsu := func(i int) string { return fmt.Sprintf("nsu=%s;s=v%d", no.Namespace(), i) }
	cfg := &mapping.Config{
		Servers: []mapping.Server{
			{Name: "sim", Endpoints: []string{sim.Endpoint()}, Timeouts: fastTimeouts()},
			{Name: "node", Endpoints: []string{no.Endpoint()}, Timeouts: fastTimeouts()},
		},
		Engine: mapping.Engine{PublishingInterval: 50 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond},
		Mappings: []mapping.Mapping{
			{Source: mapping.NodeRef{Server: "sim", Node: node(10)}, Target: mapping.NodeRef{Server: "node", Node: nsu(10)}},
			{Source: mapping.NodeRef{Server: "sim", Node: node(10)}, Target: mapping.NodeRef{Server: "node", Node: nsu(9)}}, // Double → Float
			{Source: mapping.NodeRef{Server: "node", Node: nsu(5)}, Target: mapping.NodeRef{Server: "sim", Node: node(5)}},  // Int32 → Int32
		},
	}
	for i := range cfg.Mappings {
		cfg.Mappings[i].ID = mapping.DeriveID(cfg.Mappings[i].Source, cfg.Mappings[i].Target)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e := runEngine(t, cfg, nil)
	waitConnected(t, e, 0)
	sim.SetValue(10, 12.5, time.Now())
	ctx := harness.Context(t)
	harness.Eventually(t, 15*time.Second, "sim → node-opcua (Double and Float)", func() bool {
		vals, err := harness.ReadValues(ctx, no.Endpoint(), []string{nsu(10), nsu(9)})
		if err != nil {
			return false
		}
		return vals[0].Value != nil && vals[0].Value.Value() == 12.5 && vals[1].Value != nil && vals[1].Value.Value() == float32(12.5)
	})
	// node-opcua → sim: write on node-opcua with a client, see it on sim.
	if err := harness.WriteValue(ctx, no.Endpoint(), nsu(5), int32(-77)); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 15*time.Second, "node-opcua → sim", func() bool { return valueOf(sim, 5) == int32(-77) })
	for _, m := range e.Snapshot() {
		if m.State.String() != "ok" {
			t.Errorf("mapping %d (%s→%s): %s %s", m.Index, m.From, m.To, m.State, m.Reason)
		}
	}
}

// TestTypesAgainstNodeOPCUA (issue 14 items 5 and 7): node-opcua's real
// DataType subtypes and enumerations are written as their built-in
// supertypes (converted), DateTimes beyond what gopcua encodes are
// refused with a reason (never written as another date), 1601-01-01 is
// the wire's 0, and a target whose type changes (a PLC download) is
// written again in its new type.
func TestTypesAgainstNodeOPCUA(t *testing.T) {
	sim := startSim(t, 32, "") // v5 Int32, v10 Double, v12/v28 DateTime, v13 ByteString
	no := nodeopcua.Start(t, nodeopcua.Options{Vars: 1})
	tn := func(id string) string { return fmt.Sprintf("nsu=%s;s=%s", no.Namespace(), id) }
	cfg := &mapping.Config{
		Servers: []mapping.Server{
			{Name: "sim", Endpoints: []string{sim.Endpoint()}, Timeouts: fastTimeouts()},
			{Name: "node", Endpoints: []string{no.Endpoint()}, Timeouts: fastTimeouts()},
		},
		Engine: mapping.Engine{PublishingInterval: 50 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond},
		Mappings: []mapping.Mapping{
			{Source: mapping.NodeRef{Server: "sim", Node: node(5)}, Target: mapping.NodeRef{Server: "node", Node: tn("t.duration")}}, // Int32 → Duration (Double)
			{Source: mapping.NodeRef{Server: "sim", Node: node(10)}, Target: mapping.NodeRef{Server: "node", Node: tn("t.enum")}},    // Double → ServerState (Int32)
			{Source: mapping.NodeRef{Server: "node", Node: tn("t.date9999")}, Target: mapping.NodeRef{Server: "sim", Node: node(12)}},
			{Source: mapping.NodeRef{Server: "node", Node: tn("t.date1601")}, Target: mapping.NodeRef{Server: "sim", Node: node(28)}},
			{Source: mapping.NodeRef{Server: "node", Node: tn("t.bytes")}, Target: mapping.NodeRef{Server: "sim", Node: node(13)}},
			{Source: mapping.NodeRef{Server: "sim", Node: node(26)}, Target: mapping.NodeRef{Server: "node", Node: tn("t.double")}}, // Double → Double, then Float
			// A percent deadband on a node without EURange: node-opcua
			// refuses the filter; counted, logged, client-side instead.
			{Source: mapping.NodeRef{Server: "node", Node: tn("t.enum")}, Target: mapping.NodeRef{Server: "sim", Node: node(21)},
				Deadband: &mapping.Deadband{Type: mapping.DeadbandPercent, Value: 1}},
			// A target of any type (BaseDataType) takes the source's type.
			{Source: mapping.NodeRef{Server: "sim", Node: node(5)}, Target: mapping.NodeRef{Server: "node", Node: tn("t.any")}}, // Int32 → any
		},
	}
	for i := range cfg.Mappings {
		cfg.Mappings[i].ID = mapping.DeriveID(cfg.Mappings[i].Source, cfg.Mappings[i].Target)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sim.SetValue(5, int32(7), time.Time{})
	sim.SetValue(10, 1.0, time.Time{})
	sim.SetValue(26, 2.5, time.Time{})
	old12 := sim.Value(12).Value.Value()
	e := runEngine(t, cfg, nil)
	waitConnected(t, e, 0)
	ctx := harness.Context(t)
	harness.Eventually(t, 20*time.Second, "subtype and enumeration targets written, converted; the any-type target as Int32", func() bool {
		vals, err := harness.ReadValues(ctx, no.Endpoint(), []string{tn("t.duration"), tn("t.enum"), tn("t.double"), tn("t.any")})
		if err != nil {
			return false
		}
		return vals[0].Value != nil && vals[0].Value.Value() == 7.0 && vals[1].Value != nil && vals[1].Value.Value() == int32(1) &&
			vals[2].Value != nil && vals[2].Value.Value() == 2.5 && vals[3].Value != nil && vals[3].Value.Value() == int32(7)
	})
	if st, why := mappingState(e, 7, false); st != bridge.StateOK {
		t.Fatalf("the any-type target's mapping: %s %s", st, why)
	}
	harness.Eventually(t, 10*time.Second, "9999-12-31 refused with a reason", func() bool {
		st, why := mappingState(e, 2, false)
		return st == bridge.StateBad && strings.Contains(why, "9999-12-31")
	})
	if got := sim.Value(12).Value.Value(); got != old12 {
		t.Fatalf("9999-12-31 was written as %v", got)
	}
	// (Whether the 0-byte ByteString arrived empty or null cannot be
	// seen here: gopcua, in the simulation server too, decodes both as
	// nil. TestEmptyByteStringStaysEmpty checks the bytes we send.)
	harness.Eventually(t, 10*time.Second, "1601-01-01 written as the wire's 0", func() bool {
		d, _ := valueOf(sim, 28).(time.Time)
		st, _ := mappingState(e, 3, false)
		return d.IsZero() && st == bridge.StateOK
	})

	harness.Eventually(t, 10*time.Second, "the refused deadband filter is counted", func() bool {
		for _, sv := range e.Stats().Servers {
			if sv.Name == "node" && sv.FiltersRefused > 0 {
				return true
			}
		}
		return false
	})

	// A PLC download makes t.double a Float: the next value is refused
	// (BadTypeMismatch), the type read again, and the value written as Float.
	if err := no.Retype("t.double", "Float"); err != nil {
		t.Fatal(err)
	}
	sim.SetValue(26, 3.5, time.Time{})
	harness.Eventually(t, 20*time.Second, "written as Float after the type changed", func() bool {
		vals, err := harness.ReadValues(ctx, no.Endpoint(), []string{tn("t.double")})
		return err == nil && vals[0].Value != nil && vals[0].Value.Value() == float32(3.5)
	})
	harness.Eventually(t, 10*time.Second, "the retyped mapping ok again", func() bool {
		st, _ := mappingState(e, 5, false)
		return st == bridge.StateOK
	})
}
