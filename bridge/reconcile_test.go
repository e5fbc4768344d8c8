package bridge_test

import (
	"testing"
	"time"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/tcpproxy"
)

// TestHungTargetDelaysNoOther: at a takeover, one target server hangs
// (its link frozen, its session still looking healthy). The other target
// must be reconciled and written at once, not after the hung one's
// request timeout.
func TestHungTargetDelaysNoOther(t *testing.T) {
	const n = 4
	a, b1, b2 := startSim(t, n, "Double"), startSim(t, n, "Double"), startSim(t, n, "Double")
	p2, err := tcpproxy.New(hostPort(b2.Endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	const hungTimeout = 6 * time.Second
	cfg := &mapping.Config{
		Servers: []mapping.Server{
			{Name: "a", Endpoints: []string{a.Endpoint()}, Timeouts: fastTimeouts()},
			{Name: "b1", Endpoints: []string{b1.Endpoint()}, Timeouts: fastTimeouts()},
			// Neither the keep-alive nor the data age may notice the frozen
			// link during the test; the reconcile's reads wait hungTimeout.
			{Name: "b2", Endpoints: []string{"opc.tcp://" + p2.Addr()}, Timeouts: mapping.Timeouts{Connect: 2 * time.Second,
				Request: hungTimeout, KeepAlive: 60 * time.Second, Session: 120 * time.Second, DataAge: 120 * time.Second}},
		},
		Engine: mapping.Engine{PublishingInterval: 50 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond},
	}
	for _, target := range []string{"b1", "b2"} {
		for i := 0; i < n; i++ {
			m := mapping.Mapping{Source: mapping.NodeRef{Server: "a", Node: node(i)}, Target: mapping.NodeRef{Server: target, Node: node(i)}}
			m.ID = mapping.DeriveID(m.Source, m.Target)
			cfg.Mappings = append(cfg.Mappings, m)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g := bridge.NewManualGate(false, 0) // standby
	e := runEngine(t, cfg, g)
	waitConnected(t, e, 2*n)
	a.SetValue(0, 123.5, time.Now())
	harness.Eventually(t, 15*time.Second, "the standby caches the new value", func() bool {
		st := e.Mapping(cfg.Mappings[0].ID)
		return len(st) == 1 && st[0].Value != nil && st[0].Value.Value() == 123.5
	})
	p2.Freeze()
	defer p2.Restore()
	start := time.Now()
	g.Set(true, 1) // takeover
	harness.Eventually(t, 15*time.Second, "b1 written", func() bool { return valueOf(b1, 0) == 123.5 })
	took := time.Since(start)
	t.Logf("b1 written %v after the takeover (b2 hung, its request timeout %v)", took.Round(time.Millisecond), hungTimeout)
	if took >= hungTimeout/2 {
		t.Errorf("b1 written %v after the takeover: delayed by the hung b2 (request timeout %v)", took, hungTimeout)
	}
}
