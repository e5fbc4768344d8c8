package bridge_test

import (
	"sync"
	"testing"
	"time"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/tcpproxy"
)

// leaseGate is a bridge.Gate with a lease, set by the test. A lapse is not
// signalled on Changed (a real lease lapses on the clock).
type leaseGate struct {
	mu          sync.Mutex
	open, lease bool
	changed     chan struct{}
}

func (g *leaseGate) Permit() (uint64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return 1, g.open && g.lease
}
func (g *leaseGate) Changed() <-chan struct{} { return g.changed }
func (g *leaseGate) LeaseValid() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lease
}
func (g *leaseGate) set(open, lease bool, signal bool) {
	g.mu.Lock()
	g.open, g.lease = open, lease
	g.mu.Unlock()
	if signal {
		select {
		case g.changed <- struct{}{}:
		default:
		}
	}
}

// TestLeaseLapseAbortsUnansweredWrite: a Write stuck on the way to the
// target (its link frozen, the session still looking healthy) when the
// write lease lapses must not be left to land later, after a new active's
// writes: the engine aborts that session. A gate closed under a valid
// lease (a planned handover) lets the Write finish instead.
func TestLeaseLapseAbortsUnansweredWrite(t *testing.T) {
	const n = 4
	a, b := startSim(t, n, "Double"), startSim(t, n, "Double")
	pb, err := tcpproxy.New(hostPort(b.Endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	cfg := pairConfig(t, a.Endpoint(), "opc.tcp://"+pb.Addr(), n, nil)
	// Neither the keep-alive nor the request timeout may notice the
	// frozen link first.
	cfg.Servers[1].Timeouts = mapping.Timeouts{Connect: 2 * time.Second, Request: 30 * time.Second,
		KeepAlive: 30 * time.Second, Session: 60 * time.Second, DataAge: 60 * time.Second}
	g := &leaseGate{open: true, lease: true, changed: make(chan struct{}, 1)}
	e := runEngine(t, cfg, g)
	waitConnected(t, e, n)
	// Writing: the targets reconciled (a reconcile Read caught by the
	// freeze below would hold the gate shut for the request timeout).
	harness.Eventually(t, 10*time.Second, "writing (reconciled)", func() bool { _, ok := e.Writing(); return ok })
	bStats := func() bridge.ServerStats {
		for _, s := range e.Stats().Servers {
			if s.Name == "b" {
				return s
			}
		}
		t.Fatal("no server b")
		return bridge.ServerStats{}
	}
	stuck := func(v float64) {
		t.Helper()
		// Idle first: a Write still in flight (the start's reconcile)
		// would be the one caught, and hold v0's slot.
		harness.Eventually(t, 10*time.Second, "no Write queued or in flight", func() bool {
			st := bStats()
			return st.InFlight == 0 && st.Pending == 0
		})
		before := bStats().WriteRequests
		pb.Freeze()
		a.SetValue(0, v, time.Now())
		if !harness.WaitFor(10*time.Second, func() bool {
			st := bStats()
			return st.InFlight > 0 && st.WriteRequests > before && valueOf(b, 0) != v
		}) {
			t.Fatalf("no Write of %v on its way to the frozen target: target %v, requests before %d, stats %+v", v, valueOf(b, 0), before, bStats())
		}
	}

	// Planned: the gate closes, the lease holds: the stuck Write is left
	// to finish once the link moves again.
	stuck(101)
	g.set(false, true, true)
	if harness.WaitFor(500*time.Millisecond, func() bool { return bStats().LeaseAborts > 0 }) {
		t.Fatal("a session was aborted while the lease was valid (planned handover)")
	}
	pb.Restore()
	if !harness.WaitFor(10*time.Second, func() bool { return valueOf(b, 0) == float64(101) }) {
		t.Fatalf("the Write in flight at the planned close did not land: target %v, stats %+v", valueOf(b, 0), bStats())
	}

	// Lapse: the gate opens again, a Write gets stuck, the lease lapses
	// without a signal: the session is aborted at once.
	g.set(true, true, true)
	harness.Eventually(t, 10*time.Second, "writing again (reconciled)", func() bool { _, ok := e.Writing(); return ok })
	stuck(202)
	lapsed := time.Now()
	g.set(true, false, false)
	harness.Eventually(t, 2*time.Second, "the session with the unanswered Write aborted when the lease lapsed", func() bool {
		return bStats().LeaseAborts == 1
	})
	t.Logf("aborted %v after the lapse", time.Since(lapsed).Round(time.Millisecond))
	pb.Restore()
	// The engine reconnects (as a standby would). Whether the Write lands
	// is not asserted: the test's proxy had already read its bytes (a
	// middlebox holding them, like a slow switch), and bytes on the wire
	// cannot be recalled — only what the kernel had not sent is dropped
	// (TestSessionDialerClosesAbortively; the fault matrix's
	// cut-target-any end to end).
	harness.Eventually(t, 15*time.Second, "reconnected", func() bool { return bStats().State == bridge.Connected })
}
