package bridge_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/nodeopcua"
)

// TestServerSetNodeOPCUA follows a redundant source set of two node-opcua
// servers (a third-party stack; its ServiceLevel driven through the
// fixture's control line): level drop → switch, failback, kill → switch,
// both down → held with nothing written, and back.
func TestServerSetNodeOPCUA(t *testing.T) {
	const n = 4
	n1 := nodeopcua.Start(t, nodeopcua.Options{Vars: n, Type: "Double"})
	n2 := nodeopcua.Start(t, nodeopcua.Options{Vars: n, Type: "Double"})
	b := startSim(t, n, "Double")
	nsu := func(i int) string { return fmt.Sprintf("nsu=%s;s=v%d", n1.Namespace(), i) }
	cfg := setConfig(t, []string{n1.Endpoint(), n2.Endpoint()}, []string{b.Endpoint()}, mapping.SetHot, n)
	for i := range cfg.Mappings {
		cfg.Mappings[i].Source.Node = nsu(i)
		cfg.Mappings[i].ID = mapping.DeriveID(cfg.Mappings[i].Source, cfg.Mappings[i].Target)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var log switchLog
	e := runSetEngine(t, cfg, &log)
	waitConnected(t, e, 0)
	ctx := harness.Context(t)
	write := func(s *nodeopcua.Server, i int, v float64) {
		t.Helper()
		if err := harness.WriteValue(ctx, s.Endpoint(), nsu(i), v); err != nil {
			t.Fatal(err)
		}
	}
	using := func(want string) func() bool {
		return func() bool { ep, ok := inUse(e, "a"); return ep == want && ok }
	}
	harness.Eventually(t, 30*time.Second, "n1 in use", using(n1.Endpoint()))
	write(n1, 0, 1.5)
	harness.Eventually(t, 15*time.Second, "n1 → b", func() bool { return valueOf(b, 0) == 1.5 })

	// Level drop.
	if err := n1.SetServiceLevel(0); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 15*time.Second, "switch to n2 on a level drop", using(n2.Endpoint()))
	write(n2, 1, 2.5)
	harness.Eventually(t, 15*time.Second, "n2 → b", func() bool { return valueOf(b, 1) == 2.5 })

	// Failback: n1 Healthy again and n2 lowered below it by the margin.
	if err := n1.SetServiceLevel(255); err != nil {
		t.Fatal(err)
	}
	if err := n2.SetServiceLevel(210); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 15*time.Second, "failback to n1", using(n1.Endpoint()))
	write(n1, 2, 3.5)
	harness.Eventually(t, 15*time.Second, "n1 → b after failback", func() bool { return valueOf(b, 2) == 3.5 })

	// Kill the member in use.
	n1.Kill()
	harness.Eventually(t, 15*time.Second, "switch to n2 on a kill", using(n2.Endpoint()))
	write(n2, 3, 4.5)
	harness.Eventually(t, 15*time.Second, "n2 → b after the kill", func() bool { return valueOf(b, 3) == 4.5 })

	// Both down: held, nothing written.
	before := len(b.Journal())
	n2.Kill()
	harness.Eventually(t, 15*time.Second, "set down", func() bool { ep, ok := inUse(e, "a"); return ep == "" && !ok })
	for i := 0; i < n; i++ {
		if valueOf(b, i) == nil {
			t.Fatalf("b.v%d lost its value", i)
		}
	}
	if got := len(b.Journal()); got != before {
		t.Fatalf("%d writes to b while no member was usable", got-before)
	}
	n2.Restart(t)
	harness.Eventually(t, 30*time.Second, "n2 back in use", using(n2.Endpoint()))
	write(n2, 0, 5.5)
	harness.Eventually(t, 15*time.Second, "n2 → b after both were down", func() bool { return valueOf(b, 0) == 5.5 })
	for _, ev := range log.all() {
		t.Logf("switch %s → %s (%d → %d): %s, gap %s", ev.From, ev.To, ev.FromLevel, ev.ToLevel, ev.Reason, ev.Gap)
	}
}
