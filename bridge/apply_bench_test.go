package bridge_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/simserver"
)

// BenchmarkApply measures a config change as a node carries it out on
// its engine (on the active only after the standby went first). By
// default (BENCH_APPLY_MODE=live) the running engine takes the change
// live (Engine.ApplyLive): only the changed mappings are subscribed,
// deleted or rebuilt. BENCH_APPLY_MODE=warm measures the warm swap (the
// fallback for what cannot change live): a new engine is built and
// started behind a closed gate beside the old one, which keeps writing;
// once the new one is live the old one's gate closes, its Writes in
// flight land, the new one's gate opens (it reconciles: reads every
// target, writes what differs) and the old one stops.
// BENCH_APPLY_MODE=restart measures the path before both (stop the old
// engine, then start the new one). For +1 mapping, −1 mapping, one
// mapping's scaling and one group's publishing interval: the time until
// the change is effective, the largest gap in the writes to the
// untouched targets, and the writes to untouched targets that repeat the
// value the target already held.
//
//	go test -run '^$' -bench Apply -benchtime 1x -timeout 30m ./bridge/
//
// BENCH_APPLY_N (default 100000) mappings, BENCH_APPLY_RATE (default
// 50000) source changes per second.
func BenchmarkApply(b *testing.B) {
	n := envInt("BENCH_APPLY_N", 100000)
	mode := os.Getenv("BENCH_APPLY_MODE")
	if mode == "" {
		mode = "live"
	}
	rate := float64(envInt("BENCH_APPLY_RATE", 50000))
	cases := []struct {
		name   string
		mod    func(c *mapping.Config)
		target int // the affected mapping's index (its target node)
	}{
		{"+1 mapping", func(c *mapping.Config) { c.Mappings = append(c.Mappings, benchMapping(n)) }, n},
		{"-1 mapping", func(c *mapping.Config) { c.Mappings = c.Mappings[:n-1] }, n - 1},
		{"scaling of one", func(c *mapping.Config) {
			c.Mappings[0].Scaling = &mapping.Scaling{RawLow: 0, RawHigh: 1e9, EngLow: 0, EngHigh: 2e9, OutOfRange: mapping.Clamp}
		}, 0},
		{"publishing interval of one group", func(c *mapping.Config) { c.Groups[0].PublishingInterval = 200 * time.Millisecond }, 1},
	}
	only := os.Getenv("BENCH_APPLY_CASE") // a prefix of a case name: run only that one
	for range b.N {
		for _, tc := range cases {
			if only != "" && !strings.HasPrefix(tc.name, only) {
				continue
			}
			r := runApply(b, n, rate, mode, tc.mod, tc.target)
			b.Logf("%-34s n=%d rate=%.0f/s mode=%s: effective after %s, largest gap on untouched %s from %+.2fs (normal %s), repeated writes to untouched %d",
				tc.name, n, rate, mode, r.effective.Round(time.Millisecond), r.gap.Round(time.Millisecond), r.gapAt.Seconds(),
				r.normalGap.Round(time.Millisecond), r.repeated)
		}
	}
}

type applyResult struct {
	effective, gap, normalGap time.Duration
	gapAt                     time.Duration // when the largest gap began, from the apply
	repeated                  int
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func benchMapping(i int) mapping.Mapping {
	m := mapping.Mapping{Source: mapping.NodeRef{Server: "a", Node: node(i)}, Target: mapping.NodeRef{Server: "b", Node: node(i)}}
	if i >= 1 && i <= 10 {
		m.Group = "g" // the group whose publishing interval changes
	}
	m.ID = mapping.DeriveID(m.Source, m.Target)
	return m
}

func benchConfig(a, b string, n int) *mapping.Config {
	c := &mapping.Config{
		Servers: []mapping.Server{
			{Name: "a", Endpoints: []string{a}},
			{Name: "b", Endpoints: []string{b}},
		},
		Groups: []mapping.Group{{Name: "g", PublishingInterval: 100 * time.Millisecond}},
		Engine: mapping.Engine{PublishingInterval: 100 * time.Millisecond},
	}
	for i := range n {
		c.Mappings = append(c.Mappings, benchMapping(i))
	}
	return c
}

func runApply(b *testing.B, n int, rate float64, mode string, mod func(*mapping.Config), affected int) applyResult {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := func(cfg simserver.Config) *simserver.Server {
		cfg.Logger = zap.NewNop()
		s, err := simserver.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Start(ctx); err != nil {
			b.Fatal(err)
		}
		return s
	}
	src := start(simserver.Config{Vars: n + 1, Type: "Double", Rate: rate})
	dst := start(simserver.Config{Vars: n + 1, Type: "Double", JournalMemory: true})
	defer func() { _ = src.Close(); _ = dst.Close() }()

	oldCfg := benchConfig(src.Endpoint(), dst.Endpoint(), n)
	newCfg := benchConfig(src.Endpoint(), dst.Endpoint(), n)
	mod(newCfg)
	for _, c := range []*mapping.Config{oldCfg, newCfg} {
		if err := c.Validate(); err != nil {
			b.Fatal(err)
		}
	}
	log := zap.NewNop()
	if os.Getenv("BENCH_APPLY_LOG") != "" {
		log, _ = zap.NewDevelopment(zap.IncreaseLevel(zap.InfoLevel))
	}
	run := func(cfg *mapping.Config, g bridge.Gate) (*bridge.Engine, func()) {
		e, err := bridge.New(bridge.Options{Config: cfg, Gate: g, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		ectx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = e.Run(ectx) }()
		return e, func() { stop(); wg.Wait() }
	}
	waitOK := func(e *bridge.Engine, want int) {
		deadline := time.Now().Add(120 * time.Second)
		for e.Stats().States[bridge.StateOK] < want {
			if time.Now().After(deadline) {
				b.Fatalf("engine not live after 120 s: %v", e.Stats().States)
			}
			time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
		}
	}
	g1 := bridge.NewManualGate(true, 1)
	e1, stop1 := run(oldCfg, g1)
	waitOK(e1, n)
	time.Sleep(2 * time.Second) // warm-up: steady state before the apply
	t0 := time.Now()
	var stopped time.Duration
	switch mode {
	case "live":
		if err := e1.ApplyLive(ctx, newCfg); err != nil {
			b.Fatal(err)
		}
		stopped = time.Since(t0) // −1, the interval: effective once the sessions carried the change out
		defer stop1()
	case "warm":
		g2 := bridge.NewManualGate(false, 1)
		e2, stop2 := run(newCfg, g2)
		defer stop2()
		waitOK(e2, len(newCfg.Mappings))
		g1.Set(false, 1)
		if err := e1.WaitIdle(ctx); err != nil {
			b.Fatal(err)
		}
		stopped = time.Since(t0) // −1 is effective once the old engine is closed
		g2.Set(true, 1)
		stop1()
	default:
		stop1()
		stopped = time.Since(t0)
		e2, stop2 := run(newCfg, nil)
		defer stop2()
		waitOK(e2, len(newCfg.Mappings))
	}
	time.Sleep(2 * time.Second) // the tail after the apply
	t1 := time.Now()

	affectedNode := fmt.Sprintf("nsu=%s;s=v%d", simNS, affected)
	var untouched []time.Time
	var res applyResult
	last := map[string]any{}
	for _, j := range dst.Journal() {
		if j.Node == affectedNode {
			if j.Time.After(t0) && res.effective == 0 {
				res.effective = j.Time.Sub(t0)
			}
			continue
		}
		if j.Time.After(t0) && j.Time.Before(t1) {
			if prev, ok := last[j.Node]; ok && reflect.DeepEqual(prev, j.Value) {
				res.repeated++
			}
		}
		last[j.Node] = j.Value
		if j.Time.After(t0.Add(-2*time.Second)) && j.Time.Before(t1) {
			untouched = append(untouched, j.Time)
		}
	}
	switch {
	case affected == n-1: // −1: effective once the old engine stopped, or the live change returned
		res.effective = stopped
	case mode == "live" && affected == 1: // the interval: its new items exist once ApplyLive returned
		res.effective = stopped
	case mode == "live":
		// A write of the affected node before the change was made is the
		// old flow's.
		res.effective = max(res.effective, stopped)
	}
	sort.Slice(untouched, func(i, j int) bool { return untouched[i].Before(untouched[j]) })
	for i := 1; i < len(untouched); i++ {
		g := untouched[i].Sub(untouched[i-1])
		if untouched[i].Before(t0) {
			res.normalGap = max(res.normalGap, g)
		} else if g > res.gap {
			res.gap, res.gapAt = g, untouched[i-1].Sub(t0)
		}
	}
	return res
}

// BenchmarkApplyLivePlan measures the engine's own share of a live
// change at BENCH_APPLY_N mappings (+1 mapping, no server: the
// difference worked out and the tables replaced), without the sessions'.
//
//	go test -run '^$' -bench ApplyLivePlan ./bridge/
func BenchmarkApplyLivePlan(b *testing.B) {
	n := envInt("BENCH_APPLY_N", 100000)
	cfgs := [2]*mapping.Config{benchConfig("opc.tcp://127.0.0.1:1", "opc.tcp://127.0.0.1:2", n),
		benchConfig("opc.tcp://127.0.0.1:1", "opc.tcp://127.0.0.1:2", n)}
	cfgs[1].Mappings = append(cfgs[1].Mappings, benchMapping(n))
	for _, c := range cfgs {
		if err := c.Validate(); err != nil {
			b.Fatal(err)
		}
	}
	e, err := bridge.New(bridge.Options{Config: cfgs[0], Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := e.ApplyLive(context.Background(), cfgs[(i+1)%2]); err != nil {
			b.Fatal(err)
		}
	}
}
