package bridge_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/simserver"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/tcpproxy"
)

// BenchmarkServerSetGap measures the gap at the target when the member in
// use of a redundant source set dies (its link cut: connections closed,
// new ones refused) or drops its ServiceLevel to 0, in hot and warm mode,
// with the default timers (keep-alive 1 s, publishing 100 ms). Both
// members change 200 variables 2,000 times a second; the gap is the
// longest time between two writes accepted by the target around the
// fault (normal: one publishing interval).
//
//	go test -run '^$' -bench ServerSetGap -benchtime 5x ./bridge/
func BenchmarkServerSetGap(b *testing.B) {
	for _, mode := range []string{mapping.SetHot, mapping.SetWarm} {
		for _, fault := range []string{"kill", "level0"} {
			b.Run(mode+"/"+fault, func(b *testing.B) {
				var gaps, switchGaps []time.Duration
				var base time.Duration
				for i := 0; i < b.N; i++ {
					g, sg, bg := setGapOnce(b, mode, fault)
					gaps = append(gaps, g)
					switchGaps = append(switchGaps, sg)
					base = max(base, bg)
				}
				b.ReportMetric(float64(base.Milliseconds()), "no-fault-gap-max-ms")
				sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
				b.ReportMetric(float64(gaps[len(gaps)/2].Milliseconds()), "gap-p50-ms")
				b.ReportMetric(float64(gaps[len(gaps)-1].Milliseconds()), "gap-max-ms")
				var sum time.Duration
				for _, g := range switchGaps {
					sum += g
				}
				b.ReportMetric(float64(sum.Milliseconds())/float64(len(switchGaps)), "journaled-gap-ms")
				b.Logf("%s/%s: target gaps %v; journaled gaps %v", mode, fault, gaps, switchGaps)
			})
		}
	}
}

// setGapOnce runs one fault and returns the gap at the target, the gap
// the engine journaled and the longest gap in the second before the
// fault (the baseline: about one publishing interval).
func setGapOnce(b *testing.B, mode, fault string) (gap, journaled, baseline time.Duration) {
	b.StopTimer()
	const n, rate = 200, 2000
	start := func(rate float64) *simserver.Server {
		s, err := simserver.New(simserver.Config{Vars: n, Type: "Double", Rate: rate, Logger: zap.NewNop(), JournalMemory: true})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		return s
	}
	a1, a2, t := start(rate), start(rate), start(0)
	defer func() { _ = a1.Close(); _ = a2.Close(); _ = t.Close() }()
	p1, err := tcpproxy.New(hostPort(a1.Endpoint()))
	if err != nil {
		b.Fatal(err)
	}
	defer p1.Close()
	ep1 := "opc.tcp://" + p1.Addr()
	cfg := &mapping.Config{Servers: []mapping.Server{
		{Name: "a", Endpoints: []string{ep1, a2.Endpoint()}, Redundancy: mapping.ServerSet{Mode: mode}},
		{Name: "b", Endpoints: []string{t.Endpoint()}},
	}}
	for i := 0; i < n; i++ {
		m := mapping.Mapping{Source: mapping.NodeRef{Server: "a", Node: node(i)}, Target: mapping.NodeRef{Server: "b", Node: node(i)}}
		m.ID = mapping.DeriveID(m.Source, m.Target)
		cfg.Mappings = append(cfg.Mappings, m)
	}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var switched []bridge.ServerSwitch
	e, err := bridge.New(bridge.Options{Config: cfg, Logger: zap.NewNop(), OnServerSwitch: func(ev bridge.ServerSwitch) {
		mu.Lock()
		switched = append(switched, ev)
		mu.Unlock()
	}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = e.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	if !harness.WaitFor(30*time.Second, func() bool {
		ep, ok := inUse(e, "a")
		return ep == ep1 && ok && len(t.Journal()) > 5*n
	}) {
		b.Fatal("set not mirroring")
	}
	time.Sleep(time.Second) // steady state before the fault (a measurement window, not synchronisation)
	b.StartTimer()
	t0 := time.Now()
	switch fault {
	case "kill":
		p1.Cut()
	case "level0":
		a1.SetServiceLevel(0)
	}
	if !harness.WaitFor(30*time.Second, func() bool { ep, ok := inUse(e, "a"); return ep == a2.Endpoint() && ok }) {
		b.Fatal("no switch")
	}
	b.StopTimer()
	time.Sleep(time.Second) // writes after the switch
	var times []time.Time
	for _, j := range t.Journal() {
		if j.Time.After(t0.Add(-time.Second)) {
			times = append(times, j.Time)
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	for i := 1; i < len(times); i++ {
		d := times[i].Sub(times[i-1])
		if times[i].Before(t0) {
			baseline = max(baseline, d)
		} else {
			gap = max(gap, d)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(switched) != 1 {
		b.Fatalf("switches %v, want 1", switched)
	}
	return gap, switched[0].Gap, baseline
}
