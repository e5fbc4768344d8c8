package bench

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
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
//
// PLANT_CPUPROFILE=file writes a CPU profile of the takeover alone.
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
	// Where each mapping goes, and the time each value was first
	// confirmed written after the takeover (OnWritten: exact, and costs
	// the engine nothing; polling Stats would read 100k mapping states
	// every few milliseconds and compete with the engine for the CPU).
	tgtOf := make(map[string]int, len(cfg.Mappings))
	for k, m := range cfg.Mappings {
		tgtOf[m.ID] = k % targets
	}
	var takeoverNS atomic.Int64 // 0: before the takeover
	// Per target, since the takeover: the first write, the last write of
	// a mapping not written before, and how many mappings were written.
	var firstNS, lastNS, writtenN [targets]atomic.Int64
	seen := make([]atomic.Bool, len(cfg.Mappings))
	idx := make(map[string]int, len(cfg.Mappings))
	for k, m := range cfg.Mappings {
		idx[m.ID] = k
	}
	onWritten := func(st bridge.FlowState) {
		t0 := takeoverNS.Load()
		if t0 == 0 || st.Held {
			return // before the takeover, or nothing written
		}
		k := idx[st.MappingID]
		tg := tgtOf[st.MappingID]
		d := time.Now().UnixNano() - t0
		firstNS[tg].CompareAndSwap(0, d)
		if !seen[k].Swap(true) {
			writtenN[tg].Add(1)
			for {
				l := lastNS[tg].Load()
				if d <= l || lastNS[tg].CompareAndSwap(l, d) {
					break
				}
			}
		}
	}
	gate := bridge.NewManualGate(false, 0)
	e, err := bridge.New(bridge.Options{Config: cfg, Gate: gate, Logger: zap.NewNop(), OnWritten: onWritten})
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
	// What each mapping's cache holds just before the takeover: a target
	// is reconciled once every one of its mappings was written after the
	// takeover or found holding this value or a newer one.
	cached := make([]time.Time, len(cfg.Mappings))
	for _, st := range e.Snapshot() {
		cached[idx[st.ID]] = st.SourceTS
	}

	reqs := func() map[string][2]uint64 {
		m := map[string][2]uint64{}
		for _, s := range e.Stats().Servers {
			m[s.Name] = [2]uint64{s.WriteRequests, s.Writes}
		}
		return m
	}
	reqs0 := reqs()
	px.Freeze()
	defer px.Restore()
	// The takeover is the gate opening. In a pair, an unplanned takeover
	// opens it only after the fence wait (the old lease + AbortBound,
	// ≈ 3.35 s with Linux's default neighbour settings); a planned one
	// at once. That wait is the pair's, not the engine's: it is not here.
	if path := os.Getenv("PLANT_CPUPROFILE"); path != "" {
		// The CPU profile of the takeover alone (until every value is
		// written), not of the start.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	takeover := time.Now()
	takeoverNS.Store(takeover.UnixNano())
	gate.Set(true, 1)
	live := targets - 1 // the last target is the hung one
	var reconciled time.Duration
	harness.WaitFor(60*time.Second, func() bool {
		if _, ok := e.Writing(); ok && reconciled == 0 {
			reconciled = time.Since(takeover)
		}
		for tg := range live {
			if firstNS[tg].Load() == 0 {
				return false
			}
		}
		return reconciled != 0
	})
	// Every value written: each target's count of mappings written since
	// the takeover stops growing (the rest were found equal, checked
	// below); live changes keep coming, but to mappings already counted.
	mapped := make([]int64, live)
	for k := range cfg.Mappings {
		if tg := k % targets; tg < live {
			mapped[tg]++
		}
	}
	var prev [targets]int64
	stable := time.Now()
	harness.WaitFor(120*time.Second, func() bool {
		grew, all := false, true
		for tg := range live {
			n := writtenN[tg].Load()
			grew = grew || n != prev[tg]
			all = all && n == mapped[tg]
			prev[tg] = n
		}
		if grew {
			stable = time.Now()
		}
		return all || time.Since(stable) > 2*time.Second
	})
	pprof.StopCPUProfile()
	// A mapping not written since the takeover must have been found
	// holding the cached value (or a newer one).
	var full [targets]time.Duration
	for tg := range live {
		full[tg] = time.Duration(lastNS[tg].Load())
	}
	for k, m := range cfg.Mappings {
		tg := k % targets
		if tg == live || seen[k].Load() {
			continue
		}
		if st := e.Mapping(m.ID); len(st) != 1 || st[0].Written == nil || st[0].WrittenTS.Before(cached[k]) {
			b.Errorf("%s: mapping %s neither written since the takeover nor found equal", tnames[tg], m.ID)
			break
		}
	}
	reqs1 := reqs()
	var worst, worstFull time.Duration
	for tg, n := range tnames[:targets-1] {
		d := time.Duration(firstNS[tg].Load())
		if d == 0 {
			b.Errorf("%s: nothing written within 60 s of the takeover", n)
		}
		worst, worstFull = max(worst, d), max(worstFull, full[tg])
		fmt.Printf("plant: target %-5s first value written %8s, every value (%d written) %8s after the takeover; %d values in %d Write requests since\n", n,
			d.Round(time.Millisecond), writtenN[tg].Load(), full[tg].Round(time.Millisecond),
			reqs1[n][1]-reqs0[n][1], reqs1[n][0]-reqs0[n][0])
	}
	fmt.Printf("plant: %d sources, %d mappings, %d targets (one hung): every live target written within %s, fully reconciled within %s; engine reconciled (hung one given up) after %s (times from the gate opening; an unplanned takeover adds the fence wait before it)\n",
		sources, len(cfg.Mappings), targets, worst.Round(time.Millisecond), worstFull.Round(time.Millisecond), reconciled.Round(time.Millisecond))
	b.ReportMetric(float64(worst.Milliseconds()), "ms-to-others")
	b.ReportMetric(float64(worstFull.Milliseconds()), "ms-to-reconciled")
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
