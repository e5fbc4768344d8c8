package bridge_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/simserver"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/tcpproxy"
)

// TestFirstWritesCompare: a target that already holds the value is not
// written — at engine start, after the target's or the source's session
// was rebuilt, and after a restart on a new config (an apply) — while a
// real change still is.
func TestFirstWritesCompare(t *testing.T) {
	const n = 50
	a, b := startSim(t, n+1, "Double"), startSim(t, n+1, "Double")
	for i := 0; i < n; i++ {
		v := float64(i) + 0.25
		a.SetValue(i, v, time.Now())
		b.SetValue(i, v, time.Now())
	}
	a.SetValue(n, 7.0, time.Now())
	b.SetValue(n, 0.0, time.Now())

	start := func(cfgN int) (e *bridge.Engine, stop func()) {
		cfg := pairConfig(t, a.Endpoint(), b.Endpoint(), cfgN, nil)
		e, err := bridge.New(bridge.Options{Config: cfg, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = e.Run(ctx) }()
		stop = func() { cancel(); wg.Wait() }
		t.Cleanup(stop)
		return e, stop
	}
	// sentinel changes source i and waits until the target has it: every
	// value accepted before it has been written (or dropped) by then.
	sentinel := func(i int, v float64) {
		t.Helper()
		a.SetValue(i, v, time.Now())
		harness.Eventually(t, 10*time.Second, "the sentinel mirrored", func() bool { return valueOf(b, i) == v })
	}
	writes := func(want uint64, when string) {
		t.Helper()
		if got := b.WriteCount(); got != want {
			t.Fatalf("%s: %d writes to the target, want %d (journal: %v)", when, got, want, journalNodes(b))
		}
	}

	e, stop := start(n)
	waitConnected(t, e, n)
	sentinel(0, 100)
	writes(1, "at start")

	reconnects := func(server string) uint64 {
		for _, s := range e.Stats().Servers {
			if s.Name == server {
				return s.Reconnects
			}
		}
		return 0
	}
	for k, srv := range []*simserver.Server{b, a} {
		name := map[int]string{0: "b", 1: "a"}[k]
		before := reconnects(name)
		srv.DropConnections()
		harness.Eventually(t, 15*time.Second, "server "+name+" reconnected", func() bool { return reconnects(name) > before })
		waitConnected(t, e, n)
		sentinel(1+k, 200+float64(k))
		writes(uint64(2+k), "after "+name+" reconnected")
	}

	stop()
	e, _ = start(n + 1) // the new config adds mapping n, whose target differs
	waitConnected(t, e, n+1)
	harness.Eventually(t, 10*time.Second, "the added mapping mirrored", func() bool { return valueOf(b, n) == 7.0 })
	sentinel(3, 300)
	writes(5, "after a restart on a new config")
}

func journalNodes(s *simserver.Server) []string {
	var out []string
	for _, j := range s.Journal() {
		out = append(out, j.Node)
	}
	return out
}

// TestFirstWritesCompareAfterCut: values that changed while the target's
// server was cut off are written once each when it comes back, and a
// target that already holds its value is not written: the value pending
// from the outage is not sent before the resync has compared the target
// (it was sent at once, and the resync, reading the target before that
// Write landed, queued it again: a double write under load).
func TestFirstWritesCompareAfterCut(t *testing.T) {
	t.Skip("known bug, open: a target rebuilt after a cut is written twice; the fix (drop the pending value while the target is unverified) made node-opcua drop the session in a loop in TestUnadvertisedWriteLimit and was reverted")
	const n, rounds = 40, 4
	a, b := startSim(t, n, "Double"), startSim(t, n, "Double")
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(i), time.Now())
		b.SetValue(i, float64(i), time.Now())
	}
	pb, err := tcpproxy.New(hostPort(b.Endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	e := runEngine(t, pairConfig(t, a.Endpoint(), "opc.tcp://"+pb.Addr(), n, nil), nil)
	waitConnected(t, e, n)
	state := func(name string) bridge.ConnState {
		for _, s := range e.Stats().Servers {
			if s.Name == name {
				return s.State
			}
		}
		return 0
	}
	for r := 1; r <= rounds; r++ {
		before := b.WriteCount()
		pb.Cut()
		harness.Eventually(t, 10*time.Second, "the cut noticed", func() bool { return state("b") != bridge.Connected })
		// Every source changes; the even targets already hold the new
		// value (another writer put it there), the odd ones do not.
		for i := 0; i < n; i++ {
			v := float64(100*r + i)
			a.SetValue(i, v, time.Now())
			if i%2 == 0 {
				b.SetValue(i, v, time.Now())
			}
		}
		harness.Eventually(t, 10*time.Second, "the new values cached", func() bool {
			for i, m := range e.Snapshot() {
				if m.Value == nil || m.Value.Value() != float64(100*r+i) {
					return false
				}
			}
			return true
		})
		pb.Restore()
		waitConnected(t, e, n)
		harness.Eventually(t, 10*time.Second, "the odd targets written", func() bool {
			for i := 1; i < n; i += 2 {
				if valueOf(b, i) != float64(100*r+i) {
					return false
				}
			}
			return true
		})
		// A sentinel: every value queued before it has been written by
		// the time it lands (one Write in flight per node, in order).
		a.SetValue(1, float64(100*r+1)+0.5, time.Now())
		harness.Eventually(t, 10*time.Second, "the sentinel mirrored", func() bool { return valueOf(b, 1) == float64(100*r+1)+0.5 })
		if got, want := b.WriteCount()-before, uint64(n/2+1); got != want {
			t.Fatalf("round %d: %d writes to the target after the cut, want %d (journal: %v)", r, got, want, journalSince(b, before))
		}
	}
}

// journalSince lists the node=value of s's journaled writes from the
// first'th on.
func journalSince(s *simserver.Server, first uint64) []string {
	var out []string
	for i, j := range s.Journal() {
		if uint64(i) >= first {
			out = append(out, fmt.Sprintf("%s=%v", j.Node, j.Value))
		}
	}
	return out
}
