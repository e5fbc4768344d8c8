package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/nodeopcua"
	"github.com/uamirror/uamirror/test/tcpproxy"
)

// envInt reads a positive integer from the environment, else def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkPlantTakeover is the plant-scale takeover: PLANT_SOURCES
// simulation server processes (default 10) with PLANT_MAPPINGS mappings
// in all (default 20,000) spread over four targets — two simulation
// servers, a node-opcua server with an operation limit (MaxNodesPerWrite
// 500), and a simulation server whose link is
// frozen at the takeover. The engine starts as a standby, every mapping
// live; then the link of the fourth target freezes and the gate opens.
// It reports, per target, the time from the takeover until its first
// value was written, and until the engine reports itself reconciled.
//
//	PLANT_SOURCES=10 PLANT_MAPPINGS=20000 go test -run '^$' -bench PlantTakeover -benchtime 1x ./test/bench/
func BenchmarkPlantTakeover(b *testing.B) {
	sources := envInt("PLANT_SOURCES", 10)
	total := envInt("PLANT_MAPPINGS", 20000)
	per := total / sources
	const targets = 4
	perTarget := (per*sources + targets - 1) / targets
	rate := envInt("PLANT_RATE", 200) // changes/s per source

	var srcEPs []string
	for k := 0; k < sources; k++ {
		p := harness.Start(b, "simserver", "--vars", strconv.Itoa(per), "--type", "Double", "--rate", strconv.Itoa(rate))
		defer p.Kill()
		srcEPs = append(srcEPs, p.Ready("endpoint"))
	}
	t0 := harness.Start(b, "simserver", "--vars", strconv.Itoa(perTarget), "--type", "Double")
	defer t0.Kill()
	t1 := harness.Start(b, "simserver", "--vars", strconv.Itoa(perTarget), "--type", "Double")
	defer t1.Kill()
	hung := harness.Start(b, "simserver", "--vars", strconv.Itoa(perTarget), "--type", "Double")
	defer hung.Kill()
	no := nodeopcua.Start(b, nodeopcua.Options{Vars: perTarget, Type: "Double", MaxNodesPerWrite: 500})
	px, err := tcpproxy.New(hostPort(hung.Ready("endpoint")))
	if err != nil {
		b.Fatal(err)
	}
	defer px.Close()

	timeouts := mapping.Timeouts{Connect: 10 * time.Second, Request: 5 * time.Second, KeepAlive: 60 * time.Second,
		Session: 120 * time.Second, DataAge: 120 * time.Second}
	cfg := &mapping.Config{Servers: []mapping.Server{
		{Name: "t0", Endpoints: []string{t0.Ready("endpoint")}, Timeouts: timeouts},
		{Name: "t1", Endpoints: []string{t1.Ready("endpoint")}, Timeouts: timeouts},
		{Name: "tnode", Endpoints: []string{no.Endpoint()}, Timeouts: timeouts},
		{Name: "thung", Endpoints: []string{"opc.tcp://" + px.Addr()}, Timeouts: timeouts},
	}}
	tnames := []string{"t0", "t1", "tnode", "thung"}
	for k, ep := range srcEPs {
		cfg.Servers = append(cfg.Servers, mapping.Server{Name: fmt.Sprintf("s%d", k), Endpoints: []string{ep}, Timeouts: timeouts})
	}
	g := 0
	for k := 0; k < sources; k++ {
		for j := 0; j < per; j++ {
			tgt, idx := g%targets, g/targets
			tnode := fmt.Sprintf("nsu=%s;s=v%d", ns, idx)
			if tnames[tgt] == "tnode" {
				tnode = fmt.Sprintf("nsu=%s;s=v%d", no.Namespace(), idx)
			}
			cfg.Mappings = append(cfg.Mappings, mapping.Mapping{ID: strconv.Itoa(g),
				Source: mapping.NodeRef{Server: fmt.Sprintf("s%d", k), Node: fmt.Sprintf("nsu=%s;s=v%d", ns, j)},
				Target: mapping.NodeRef{Server: tnames[tgt], Node: tnode}})
			g++
		}
	}
	gate := bridge.NewManualGate(false, 0)
	e, err := bridge.New(bridge.Options{Config: cfg, Gate: gate, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = e.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	start := time.Now()
	if !harness.WaitFor(300*time.Second, func() bool { return e.Stats().States[bridge.StateOK] == len(cfg.Mappings) }) {
		b.Fatalf("not all %d mappings live after 300 s: %v", len(cfg.Mappings), e.Stats().States)
	}
	b.Logf("%d sources, %d mappings, %d changes/s: live as standby after %s", sources, len(cfg.Mappings), rate*sources,
		time.Since(start).Round(time.Millisecond))
	// Let the standby's cache move on from what the targets hold.
	warm := time.Now().Add(2 * time.Second)
	harness.WaitFor(5*time.Second, func() bool { return time.Now().After(warm) })

	writes := func() map[string]uint64 {
		m := map[string]uint64{}
		for _, s := range e.Stats().Servers {
			m[s.Name] = s.Writes
		}
		return m
	}
	before := writes()
	px.Freeze()
	defer px.Restore()
	takeover := time.Now()
	gate.Set(true, 1)
	firstWrite := map[string]time.Duration{}
	harness.WaitFor(60*time.Second, func() bool {
		now := writes()
		for _, n := range tnames[:3] {
			if _, ok := firstWrite[n]; !ok && now[n] > before[n] {
				firstWrite[n] = time.Since(takeover)
			}
		}
		return len(firstWrite) == 3
	})
	harness.WaitFor(60*time.Second, func() bool { _, ok := e.Writing(); return ok })
	reconciled := time.Since(takeover)
	var worst time.Duration
	for _, n := range tnames[:3] {
		d, ok := firstWrite[n]
		if !ok {
			b.Errorf("%s: nothing written within 60 s of the takeover", n)
		}
		worst = max(worst, d)
		fmt.Printf("plant: target %-5s first value written %8s after the takeover\n", n, d.Round(time.Millisecond))
	}
	fmt.Printf("plant: %d sources, %d mappings, %d targets (one hung): every live target written within %s; engine reconciled (hung one given up) after %s\n",
		sources, len(cfg.Mappings), targets, worst.Round(time.Millisecond), reconciled.Round(time.Millisecond))
	b.ReportMetric(float64(worst.Milliseconds()), "ms-to-others")
}

// hostPort strips the scheme of an opc.tcp endpoint.
func hostPort(ep string) string {
	const p = "opc.tcp://"
	if len(ep) > len(p) && ep[:len(p)] == p {
		ep = ep[len(p):]
	}
	for i := 0; i < len(ep); i++ {
		if ep[i] == '/' {
			return ep[:i]
		}
	}
	return ep
}
