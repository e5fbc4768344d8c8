package bridge_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/simserver"
	"github.com/uamirror/uamirror/test/harness"
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
