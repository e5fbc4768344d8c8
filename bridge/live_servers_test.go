package bridge_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/simserver"
	"github.com/uamirror/uamirror/test/harness"
)

// mirrorTo adds mappings source a.v_i → target server name, node v_i,
// for i in [from, to).
func mirrorTo(cfg *mapping.Config, name string, from, to int) {
	for i := from; i < to; i++ {
		m := mapping.Mapping{Source: mapping.NodeRef{Server: "a", Node: node(i)}, Target: mapping.NodeRef{Server: name, Node: node(i)}}
		m.ID = mapping.DeriveID(m.Source, m.Target)
		cfg.Mappings = append(cfg.Mappings, m)
	}
}

// mirrorsOn reports whether s holds a's values on v_i, i in [from, to).
func mirrorsOn(a, s *simserver.Server, from, to int) func() bool {
	return func() bool {
		for i := from; i < to; i++ {
			if valueOf(s, i) != valueOf(a, i) {
				return false
			}
		}
		return true
	}
}

// serverNames returns the names of the servers in the engine's stats.
func serverNames(e *bridge.Engine) []string {
	var out []string
	for _, s := range e.Stats().Servers {
		out = append(out, s.Name)
	}
	return out
}

// untouched fails the test when a server of before had its session
// rebuilt since.
func untouched(t *testing.T, r *liveRig, what string, before map[string]bridge.ServerStats) {
	t.Helper()
	for name, was := range before {
		now := r.server(name)
		if now.Connects != was.Connects || now.Reconnects != was.Reconnects {
			t.Fatalf("%s: server %s's session rebuilt (connects %d→%d, reconnects %d→%d)",
				what, name, was.Connects, now.Connects, was.Reconnects, now.Reconnects)
		}
	}
}

// TestApplyLiveServers: a server added live with mappings to it gets a
// session of its own and its targets follow their sources; removed live
// (with its mappings), its session closes (the connection through its
// proxy ends), it leaves the stats and the goroutines it had are gone;
// a server renamed is one removed and one added: its new session finds
// its targets holding their values and writes nothing until a source
// changes. Throughout, a's session is the one of the start, and b (or c)
// is neither reconnected nor written on an untouched target.
func TestApplyLiveServers(t *testing.T) {
	const n = 10 // v0–v4: a → b; v5–v9: a → c while c is configured
	a, b, c := startSim(t, n, "Double"), startSim(t, n, "Double"), startSim(t, n, "Double")
	pc := proxy(t, c)
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(i)+0.5, time.Now())
	}
	cfgFor := func(bName string, withC bool) *mapping.Config {
		cfg := pairConfig(t, a.Endpoint(), b.Endpoint(), 0, nil)
		cfg.Servers[1].Name = bName
		mirrorTo(cfg, bName, 0, n/2)
		if withC {
			cfg.Servers = append(cfg.Servers, mapping.Server{Name: "c", Endpoints: []string{"opc.tcp://" + pc.Addr()}, Timeouts: fastTimeouts()})
			mirrorTo(cfg, "c", n/2, n)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	r := &liveRig{t: t, a: a, b: b}
	r.e = runEngine(t, cfgFor("b", false), nil)
	waitConnected(t, r.e, n/2)
	harness.Eventually(t, 10*time.Second, "b mirrors a", mirrorsOn(a, b, 0, n/2))
	r.idle("b")
	r.step("start", 0, 1, 2, 3, 4)
	// The goroutines of the engine with a and b (the test's servers'
	// own included): those of c's conn, session and connection come and
	// go with it.
	base := runtime.NumGoroutine()
	before := map[string]bridge.ServerStats{"a": r.server("a"), "b": r.server("b")}

	// c added, with mappings a → c.
	r.apply(cfgFor("b", true))
	harness.Eventually(t, 10*time.Second, "c mirrors a", mirrorsOn(a, c, n/2, n))
	a.SetValue(7, 77.0, time.Now())
	harness.Eventually(t, 10*time.Second, "a change mirrored to c", func() bool { return valueOf(c, 7) == 77.0 })
	if got := pc.Open(); got != 1 {
		t.Fatalf("%d connections to c, want 1 session", got)
	}
	if st := r.server("c"); st.Connects != 1 || st.State != bridge.Connected {
		t.Fatalf("c: connects %d, state %s; want one session, connected", st.Connects, st.State)
	}
	r.mirrored(2, 22, 22)
	r.step("c added", 2)
	untouched(t, r, "c added", before)

	// c removed with its mappings.
	r.apply(cfgFor("b", false))
	harness.Eventually(t, 10*time.Second, "c's session closed", func() bool { return pc.Open() == 0 })
	if names := fmt.Sprint(serverNames(r.e)); names != "[a b]" {
		t.Fatalf("servers after c removed: %s, want [a b]", names)
	}
	cMark := len(c.Journal())
	a.SetValue(8, 88.0, time.Now())
	r.mirrored(3, 33, 33)
	r.step("c removed", 3)
	untouched(t, r, "c removed", before)
	if len(c.Journal()) != cMark {
		t.Fatalf("c written after its removal")
	}
	var now int
	if !harness.WaitFor(10*time.Second, func() bool { now = runtime.NumGoroutine(); return now <= base }) {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after c removed, %d before it was added: c's conn left some\n%s", now, base, buf[:runtime.Stack(buf, true)])
	}

	// b renamed b2: b's mappings are removed and added again under b2,
	// whose new session finds every target holding its value.
	r.idle("b")
	r.apply(cfgFor("b2", false))
	if names := fmt.Sprint(serverNames(r.e)); names != "[a b2]" {
		t.Fatalf("servers after b renamed: %s, want [a b2]", names)
	}
	harness.Eventually(t, 10*time.Second, "b2 connected", func() bool {
		for _, s := range r.e.Stats().Servers {
			if s.Name == "b2" {
				return s.State == bridge.Connected
			}
		}
		return false
	})
	r.mirrored(4, 44, 44)
	r.step("b renamed", 4)
	untouched(t, r, "b renamed", map[string]bridge.ServerStats{"a": before["a"]})
	if got := len(r.e.Snapshot()); got != n/2 {
		t.Fatalf("%d flows after the rename, want %d", got, n/2)
	}
}
