package bridge_test

import (
	"fmt"
	"testing"
	"time"

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
