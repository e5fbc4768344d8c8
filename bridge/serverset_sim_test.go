package bridge_test

import (
	"context"
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
	"github.com/uamirror/uamirror/test/tcpproxy"
)

// switchLog collects the engine's server switches.
type switchLog struct {
	mu  sync.Mutex
	evs []bridge.ServerSwitch
}

func (l *switchLog) add(ev bridge.ServerSwitch) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}
func (l *switchLog) all() []bridge.ServerSwitch {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bridge.ServerSwitch(nil), l.evs...)
}

// runSetEngine runs an engine that reports its server switches to log.
func runSetEngine(t *testing.T, cfg *mapping.Config, log *switchLog) *bridge.Engine {
	t.Helper()
	return runEngineOpts(t, bridge.Options{Config: cfg, OnServerSwitch: log.add})
}

// runEngineOpts runs an engine built from o until the end of the test.
func runEngineOpts(t *testing.T, o bridge.Options) *bridge.Engine {
	t.Helper()
	o.Logger = zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	e, err := bridge.New(o)
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

// inUse returns the endpoint of the member in use of server name ("" if
// none) and whether the server is connected.
func inUse(e *bridge.Engine, name string) (string, bool) {
	for _, s := range e.Stats().Servers {
		if s.Name != name {
			continue
		}
		for _, m := range s.Members {
			if m.InUse {
				return m.Endpoint, s.State == bridge.Connected
			}
		}
		return "", s.State == bridge.Connected
	}
	return "", false
}

func proxy(t *testing.T, s *simserver.Server) *tcpproxy.Proxy {
	t.Helper()
	p, err := tcpproxy.New(hostPort(s.Endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// setConfig mirrors n variables from server a (endpoints as) to b (bs).
func setConfig(t *testing.T, as, bs []string, mode string, n int) *mapping.Config {
	t.Helper()
	cfg := pairConfig(t, as[0], bs[0], n, nil)
	cfg.Servers[0].Endpoints = as
	cfg.Servers[1].Endpoints = bs
	for i := range cfg.Servers {
		cfg.Servers[i].Redundancy.Mode = mode
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestServerSetSource follows a redundant source set of two simulation
// servers through a level drop, a failback, a kill and the loss of both,
// in hot and warm mode.
func TestServerSetSource(t *testing.T) {
	for _, mode := range []string{mapping.SetHot, mapping.SetWarm} {
		t.Run(mode, func(t *testing.T) {
			const n = 10
			a1, a2, b := startSim(t, n, "Double"), startSim(t, n, "Double"), startSim(t, n, "Double")
			p1, p2 := proxy(t, a1), proxy(t, a2)
			ep1, ep2 := "opc.tcp://"+p1.Addr(), "opc.tcp://"+p2.Addr()
			var log switchLog
			e := runSetEngine(t, setConfig(t, []string{ep1, ep2}, []string{b.Endpoint()}, mode, n), &log)

			// a2 holds older values than a1: they must never reach b.
			old := time.Now().Add(-time.Hour)
			for i := 0; i < n; i++ {
				a2.SetValue(i, float64(-1000-i), old)
				a1.SetValue(i, float64(i), time.Now())
			}
			waitConnected(t, e, n)
			if ep, _ := inUse(e, "a"); ep != ep1 {
				t.Fatalf("member in use %q, want the first listed %q (tie)", ep, ep1)
			}
			harness.Eventually(t, 10*time.Second, "b mirrors a1", func() bool { return valueOf(b, n-1) == float64(n-1) })

			// 1. Level drop: a1 to 0 → a2, a2's older values are dropped.
			a1.SetServiceLevel(0)
			harness.Eventually(t, 10*time.Second, "switch to a2 on a level drop", func() bool {
				ep, ok := inUse(e, "a")
				return ep == ep2 && ok
			})
			a2.SetValue(3, 33.0, time.Now())
			harness.Eventually(t, 10*time.Second, "a2's new value reaches b", func() bool { return valueOf(b, 3) == 33.0 })
			for i := 0; i < n; i++ {
				if v := valueOf(b, i); v != float64(i) && i != 3 {
					t.Fatalf("b.v%d = %v: an older value of a2 was written", i, v)
				}
			}
			a1.SetValue(4, 44.0, time.Now()) // the member not in use is not mirrored
			a2.SetValue(5, 55.0, time.Now())
			harness.Eventually(t, 10*time.Second, "a2 → b", func() bool { return valueOf(b, 5) == 55.0 })
			if valueOf(b, 4) == 44.0 {
				t.Fatal("a value of the member not in use was written")
			}

			// 2. Failback by the same rule: a1 back at 255 is not better than
			// a2 (255) by the margin: kept; a2 to 220: a1 better by 35.
			a1.SetServiceLevel(255)
			harness.Eventually(t, 5*time.Second, "a1 level seen", func() bool {
				st := e.Stats().Servers[0]
				return st.Members[0].ServiceLevel == 255
			})
			if ep, _ := inUse(e, "a"); ep != ep2 {
				t.Fatalf("switched back to %q without a margin", ep)
			}
			a2.SetServiceLevel(220)
			harness.Eventually(t, 10*time.Second, "failback to a1", func() bool {
				ep, ok := inUse(e, "a")
				return ep == ep1 && ok
			})
			a1.SetValue(6, 66.0, time.Now())
			harness.Eventually(t, 10*time.Second, "a1 → b after failback", func() bool { return valueOf(b, 6) == 66.0 })

			// 3. Kill (the link to a1 cut, new connections refused) → a2.
			p1.Cut()
			harness.Eventually(t, 10*time.Second, "switch to a2 on a kill", func() bool {
				ep, ok := inUse(e, "a")
				return ep == ep2 && ok
			})
			a2.SetValue(7, 77.0, time.Now())
			harness.Eventually(t, 10*time.Second, "a2 → b after the kill", func() bool { return valueOf(b, 7) == 77.0 })

			// 4. Both down: held, nothing written.
			before := len(b.Journal())
			p2.Cut()
			harness.Eventually(t, 10*time.Second, "set down", func() bool {
				ep, ok := inUse(e, "a")
				return ep == "" && !ok
			})
			for i := 0; i < n; i++ {
				if v := valueOf(b, i); v == nil {
					t.Fatalf("b.v%d lost its value", i)
				}
			}
			if got := len(b.Journal()); got != before {
				t.Fatalf("%d writes to b while no member was usable", got-before)
			}
			for _, j := range b.Journal() {
				if j.Status != ua.StatusOK {
					t.Fatalf("a bad status was written: %v", j)
				}
			}
			// Back: a1 first listed and Healthy (255 > 220 by the margin).
			p1.Restore()
			p2.Restore()
			harness.Eventually(t, 15*time.Second, "set back", func() bool {
				ep, ok := inUse(e, "a")
				return ep == ep1 && ok
			})
			a1.SetValue(8, 88.0, time.Now())
			harness.Eventually(t, 10*time.Second, "a1 → b after both were down", func() bool { return valueOf(b, 8) == 88.0 })

			evs := log.all()
			if len(evs) < 5 {
				t.Fatalf("switches journaled: %d (%v), want ≥ 5", len(evs), evs)
			}
			for _, ev := range evs {
				t.Logf("switch %s → %s (%d → %d): %s, gap %s", ev.From, ev.To, ev.FromLevel, ev.ToLevel, ev.Reason, ev.Gap)
				if ev.Reason == "" || ev.Server != "a" {
					t.Fatalf("switch without reason or server: %+v", ev)
				}
			}
		})
	}
}

// TestServerSetTarget: a redundant target set. After a switch the new
// member's targets are read and only the differences written.
func TestServerSetTarget(t *testing.T) {
	const n = 10
	a, b1, b2 := startSim(t, n, "Double"), startSim(t, n, "Double"), startSim(t, n, "Double")
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(i), time.Now())
		if i%2 == 0 {
			b2.SetValue(i, float64(i), time.Now()) // already right on b2
		}
	}
	var log switchLog
	e := runSetEngine(t, setConfig(t, []string{a.Endpoint()}, []string{b1.Endpoint(), b2.Endpoint()}, mapping.SetHot, n), &log)
	waitConnected(t, e, n)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("b1 %s b2 %s stats %+v", b1.Endpoint(), b2.Endpoint(), e.Stats().Servers)
			for _, m := range e.Snapshot() {
				t.Logf("%+v", m)
			}
		}
	})
	harness.Eventually(t, 10*time.Second, "b1 mirrors a", func() bool {
		for i := 0; i < n; i++ {
			if valueOf(b1, i) != float64(i) {
				return false
			}
		}
		return true
	})
	if len(b2.Journal()) != 0 {
		t.Fatalf("%d writes to the member not in use", len(b2.Journal()))
	}
	b1.SetServiceLevel(100)
	harness.Eventually(t, 10*time.Second, "b2 in use, reconciled", func() bool {
		ep, ok := inUse(e, "b")
		if ep != b2.Endpoint() || !ok {
			return false
		}
		for i := 0; i < n; i++ {
			if valueOf(b2, i) != float64(i) {
				return false
			}
		}
		return true
	})
	if got := len(b2.Journal()); got != n/2 {
		t.Fatalf("reconcile wrote %d values to b2, want only the %d that differed", got, n/2)
	}
	a.SetValue(1, 11.0, time.Now())
	harness.Eventually(t, 10*time.Second, "a → b2", func() bool { return valueOf(b2, 1) == 11.0 })
	if valueOf(b1, 1) == 11.0 {
		t.Fatal("written to the member left")
	}
	if evs := log.all(); len(evs) != 1 || evs[0].To != b2.Endpoint() {
		t.Fatalf("switches %v, want one to b2", evs)
	}
}

// TestServerSetDiscover: with discover, the members come from the first
// endpoint's ServerUriArray, resolved with FindServers; the discovered
// member takes over when the first drops to 0.
func TestServerSetDiscover(t *testing.T) {
	const n = 4
	start := func(uri string, rd *simserver.Redundancy) *simserver.Server {
		s, err := simserver.New(simserver.Config{Vars: n, Type: "Double", Logger: zap.NewNop(), JournalMemory: true,
			ApplicationURI: uri, Redundancy: rd})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(harness.Context(t)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a2 := start("urn:test:a2", nil)
	a1 := start("urn:test:a1", &simserver.Redundancy{Support: ua.RedundancySupportHot,
		ServerURIs: func() []string { return []string{"urn:test:a1", "urn:test:a2", "urn:test:unknown"} },
		DiscoveryURLs: func(uri string) []string {
			if uri == "urn:test:a2" {
				return []string{a2.Endpoint()}
			}
			return nil
		}})
	b := startSim(t, n, "Double")
	cfg := setConfig(t, []string{a1.Endpoint()}, []string{b.Endpoint()}, mapping.SetHot, n)
	cfg.Servers[0].Redundancy.Discover = true
	var log switchLog
	e := runSetEngine(t, cfg, &log)
	harness.Eventually(t, 15*time.Second, "a2 discovered and up", func() bool {
		ms := e.Stats().Servers[0].Members
		return len(ms) == 2 && ms[1].Endpoint == a2.Endpoint() && ms[1].State == bridge.Connected
	})
	// (The member in use is chosen once its ServiceLevel is known, which
	// may come after the discovered member connected.)
	harness.Eventually(t, 10*time.Second, "the listed a1 in use", func() bool {
		ep, ok := inUse(e, "a")
		return ep == a1.Endpoint() && ok
	})
	a1.SetServiceLevel(0)
	harness.Eventually(t, 10*time.Second, "switch to the discovered a2", func() bool {
		ep, ok := inUse(e, "a")
		return ep == a2.Endpoint() && ok
	})
	a2.SetValue(1, 12.0, time.Now())
	harness.Eventually(t, 10*time.Second, "a2 → b", func() bool { return valueOf(b, 1) == 12.0 })
}
