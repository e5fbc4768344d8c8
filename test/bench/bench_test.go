// Package bench compares the mirror engine with a bare relay — a minimal
// gopcua subscribe → batched Write program with no engine — on the same
// workload, in one run, and prints the figures. Run it with
//
//	go test -run '^$' -bench Mirror -benchtime 1x ./test/bench/
//
// The simulation servers run as separate processes, so the figures of
// this process (CPU, heap) belong to the relay or the engine alone.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/test/harness"
)

const ns = "urn:uamirror:simserver"

type result struct {
	kind       string
	mappings   int
	rate       float64
	written    float64 // values/s at the target
	p50, p99   time.Duration
	cpu        float64 // fraction of one core
	heapPerMap float64 // bytes per mapping (heap in use above baseline)
	rssPerMap  float64 // bytes per mapping (RSS above baseline)
	liveAfter  time.Duration
	// startCPU is the CPU time until every item was live of this
	// process, the source server and the target server: on the shared
	// 2-core machine the start-up is CPU-bound, and what each side costs
	// is steadier than the wall time.
	startCPU [3]time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("%-6s %7d maps %7.0f chg/s │ %8.0f val/s │ p50 %7s p99 %7s │ cpu %5.1f%% │ heap %6.0f B/map rss %6.0f B/map │ live in %s (cpu self %s src %s dst %s)",
		r.kind, r.mappings, r.rate, r.written, r.p50.Round(100*time.Microsecond), r.p99.Round(100*time.Microsecond),
		100*r.cpu, r.heapPerMap, r.rssPerMap, r.liveAfter.Round(time.Millisecond),
		r.startCPU[0].Round(10*time.Millisecond), r.startCPU[1].Round(10*time.Millisecond), r.startCPU[2].Round(10*time.Millisecond))
}

// BenchmarkMirror runs relay and engine side by side at 10k mappings
// (10k and 50k changes/s) and at 100k mappings (50k changes/s).
func BenchmarkMirror(b *testing.B) {
	// The uamirror binary runs with GOGC=50 unless GOGC is set (see
	// cmd/uamirror/root.go); measure the same way.
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(50))
	}
	if os.Getenv("BENCH_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 512 // finer than the default 512 KiB; costs CPU
	}
	cases := []struct {
		n    int
		rate float64
	}{{10000, 10000}, {10000, 50000}, {100000, 50000}}
	switch os.Getenv("BENCH_CASES") {
	case "small":
		cases = cases[:2]
	case "one":
		cases = cases[1:2]
	case "big":
		cases = cases[2:]
	}
	kinds := []string{"relay", "engine"}
	switch k := os.Getenv("BENCH_KIND"); k {
	case "relay", "engine":
		kinds = []string{k} // for a profile of one of them
	}
	// BENCH_ROUNDS runs relay and engine alternately (A B A B…) so that
	// a busy machine weighs on both alike.
	rounds := 1
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && n > 1 {
		rounds = n
	}
	var rows []result
	for _, c := range cases {
		for range rounds {
			for _, kind := range kinds {
				r := runWorkload(b, kind, c.n, c.rate)
				b.Log(r)
				fmt.Println(r)
				rows = append(rows, r)
			}
		}
	}
	if len(kinds) == 2 {
		printRatios(rows)
	}
}

// printRatios prints, per case, the engine's figures over the relay's:
// the median of each pair's ratio (rows alternate relay, engine).
func printRatios(rows []result) {
	type key struct {
		n    int
		rate float64
	}
	var order []key
	ratios := map[key][][4]float64{}
	for i := 0; i+1 < len(rows); i += 2 {
		r, e := rows[i], rows[i+1]
		k := key{r.mappings, r.rate}
		if _, ok := ratios[k]; !ok {
			order = append(order, k)
		}
		ratios[k] = append(ratios[k], [4]float64{e.written / r.written,
			(e.cpu / e.written) / (r.cpu / r.written), e.rssPerMap / r.rssPerMap,
			e.liveAfter.Seconds() / r.liveAfter.Seconds()})
	}
	fmt.Println("\nengine / relay, median of the pairs: throughput, CPU per value, RSS per mapping, time to live")
	for _, k := range order {
		var cols [4]float64
		for j := range cols {
			var xs []float64
			for _, r := range ratios[k] {
				xs = append(xs, r[j])
			}
			cols[j] = median(xs)
		}
		fmt.Printf("  %6d maps %6.0f chg/s: %.3f  %.3f  %.3f  %.3f  (%d pairs)\n", k.n, k.rate,
			cols[0], cols[1], cols[2], cols[3], len(ratios[k]))
	}
}

func median(xs []float64) float64 {
	sort.Float64s(xs)
	if len(xs) == 0 {
		return 0
	}
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

func runWorkload(b *testing.B, kind string, n int, rate float64) result {
	dir := b.TempDir()
	journal := filepath.Join(dir, "target.journal")
	src := harness.Start(b, "simserver", "--vars", strconv.Itoa(n), "--type", "Double", "--rate", fmt.Sprint(rate))
	dst := harness.Start(b, "simserver", "--vars", strconv.Itoa(n), "--type", "Double", "--journal", journal)
	defer src.Kill()
	defer dst.Kill()
	// The baseline without what an earlier run of this process freed
	// but the runtime kept: that memory would be reused before RSS grows,
	// and the run after a large one would look smaller than it is.
	debug.FreeOSMemory()
	heap0, rss0 := heapInUse(), rss()
	startProf := startProfile(b, "start", kind, n, rate)
	self0, src0, dst0 := cpuTime(), procCPU(src.Pid()), procCPU(dst.Pid())

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	start := time.Now()
	var live func() bool
	var eng *bridge.Engine
	switch kind {
	case "relay":
		r := &relay{n: n}
		wg.Add(1)
		go func() { defer wg.Done(); r.run(ctx, b, src.Ready("endpoint"), dst.Ready("endpoint")) }()
		live = r.live
	default:
		cfg := &mapping.Config{Servers: []mapping.Server{
			{Name: "src", Endpoints: []string{src.Ready("endpoint")}},
			{Name: "dst", Endpoints: []string{dst.Ready("endpoint")}},
		}, Mappings: make([]mapping.Mapping, 0, n)}
		for i := 0; i < n; i++ {
			id := "nsu=" + ns + ";s=v" + strconv.Itoa(i)
			cfg.Mappings = append(cfg.Mappings, mapping.Mapping{ID: strconv.Itoa(i),
				Source: mapping.NodeRef{Server: "src", Node: id}, Target: mapping.NodeRef{Server: "dst", Node: id}})
		}
		log := zap.NewNop()
		if os.Getenv("BENCH_LOG") != "" { // the engine's info log, to see where start-up goes
			log, _ = zap.NewDevelopment(zap.IncreaseLevel(zap.InfoLevel))
		}
		e, err := bridge.New(bridge.Options{Config: cfg, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = e.Run(ctx) }()
		eng = e
		// Every mapping ok: its first value received and its target's
		// type known — the relay's "live" (every item's first value
		// received) plus the type. Stats looks at every mapping (~2.5 ms
		// at 100k, far more on a loaded machine, where polling it alone
		// took a fifth of the engine's start-up CPU); it is asked only
		// once the source's session is up, which it is within
		// microseconds of its last monitored item being created, before
		// which not every mapping can be ok.
		live = func() bool {
			return e.ServerState("src") == bridge.Connected && e.Stats().States[bridge.StateOK] == n
		}
	}
	if !waitLive(120*time.Second, live) {
		b.Fatalf("%s: not all %d items live after 120 s", kind, n)
	}
	liveAfter := time.Since(start)
	startCPU := [3]time.Duration{cpuTime() - self0, procCPU(src.Pid()) - src0, procCPU(dst.Pid()) - dst0}
	stopProfile(b, startProf)
	// Warm up, then measure a window.
	warm := time.Now().Add(2 * time.Second)
	harness.WaitFor(3*time.Second, func() bool { return time.Now().After(warm) })
	prof := startProfile(b, "cpu", kind, n, rate)
	cpu0 := cpuTime()
	var st0 bridge.Stats
	if eng != nil {
		st0 = eng.Stats()
	}
	t0 := time.Now()
	window := 5 * time.Second
	harness.WaitFor(window+time.Second, func() bool { return time.Since(t0) >= window })
	t1 := time.Now()
	cpu1 := cpuTime()
	stopProfile(b, prof)
	if eng != nil {
		st1 := eng.Stats()
		d := t1.Sub(t0).Seconds()
		b.Logf("engine: write round trip p50 %s p99 %s; notifications %.0f/s, writes %.0f/s, write requests %.0f/s, pending %d",
			st1.WriteLatency.Quantile(0.5), st1.WriteLatency.Quantile(0.99),
			float64(st1.Servers[0].Notifications-st0.Servers[0].Notifications)/d,
			float64(st1.Servers[1].Writes-st0.Servers[1].Writes)/d,
			float64(st1.Servers[1].WriteRequests-st0.Servers[1].WriteRequests)/d, st1.Servers[1].Pending)
	}
	runtime.GC()
	heap1, rss1 := heapInUse(), rss()
	{
		// What RSS holds beyond the heap in use: free pages the runtime
		// keeps (the GC's headroom, or a start-up peak not yet returned).
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		b.Logf("%s: heap idle kept %.0f B/map, heap sys %.0f MB, next GC %.0f MB, stacks %.0f MB, other sys %.0f MB", kind,
			float64(m.HeapIdle-m.HeapReleased)/float64(n), float64(m.HeapSys)/1e6, float64(m.NextGC)/1e6,
			float64(m.StackSys)/1e6, float64(m.Sys-m.HeapSys-m.StackSys)/1e6)
	}
	if dir := os.Getenv("BENCH_HEAPPROFILE"); dir != "" {
		// What the relay or the engine holds in the window (allocations
		// sampled from the start of the run: see BenchmarkMirror).
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("heap-%s-%d-%.0f.pprof", kind, n, rate)))
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	cancel()
	wg.Wait()
	dst.Stop(10 * time.Second)

	written, lats := journalWindow(b, journal, t0, t1)
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	q := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[int(p*float64(len(lats)-1))]
	}
	return result{kind: kind, mappings: n, rate: rate, written: float64(written) / t1.Sub(t0).Seconds(),
		p50: q(0.5), p99: q(0.99), cpu: (cpu1 - cpu0).Seconds() / t1.Sub(t0).Seconds(),
		heapPerMap: float64(int64(heap1)-int64(heap0)) / float64(n), rssPerMap: float64(int64(rss1)-int64(rss0)) / float64(n),
		liveAfter: liveAfter, startCPU: startCPU}
}

// livePoll is how often the start-up wait asks whether every item is
// live, for relay and engine alike: the engine's answer (Stats) looks at
// every mapping, and polled every few milliseconds at 100k mappings it
// would take a good part of a core from the start-up it measures.
const livePoll = 50 * time.Millisecond

// waitLive polls live every livePoll until it reports true (true) or
// timeout passes (false).
func waitLive(timeout time.Duration, live func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(livePoll)
	defer tick.Stop()
	for !live() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// startProfile starts a CPU profile of what follows into
// $BENCH_CPUPROFILE/<what>-<kind>-<n>-<rate>.pprof when that variable
// names a directory ("cpu": the measured window, "start": the time until
// every item is live); it returns nil otherwise.
func startProfile(b *testing.B, what, kind string, n int, rate float64) *os.File {
	dir := os.Getenv("BENCH_CPUPROFILE")
	if dir == "" {
		return nil
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%s-%d-%.0f.pprof", what, kind, n, rate)))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return f
}

func stopProfile(b *testing.B, f *os.File) {
	if f == nil {
		return
	}
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// journalWindow counts the target's accepted writes in [t0, t1) and their
// latency (accepted time − source timestamp).
func journalWindow(b *testing.B, path string, t0, t1 time.Time) (int, []time.Duration) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var lats []time.Duration
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var j struct {
		Time time.Time `json:"time"`
		TS   time.Time `json:"source_timestamp"`
	}
	for sc.Scan() {
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			continue
		}
		if j.Time.Before(t0) || !j.Time.Before(t1) {
			continue
		}
		lats = append(lats, j.Time.Sub(j.TS))
	}
	return len(lats), lats
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, res uint64
	fmt.Sscan(string(b), &size, &res)
	return res * uint64(os.Getpagesize())
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU returns the CPU time (user + system) process pid has used, 0
// if it cannot be read.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count fields after
	// its closing parenthesis. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks
}

// relay is the physical baseline: subscribe to every source item, write
// each notification batch to the target in Write requests of ≤ 1,000
// values, up to 4 in flight. No transforms, no ordering guarantees, no
// recovery.
type relay struct {
	n    int
	mu   sync.Mutex
	seen map[uint32]bool
}

func (r *relay) live() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen) == r.n
}

func (r *relay) run(ctx context.Context, b *testing.B, srcEP, dstEP string) {
	r.seen = map[uint32]bool{}
	src, err := opcua.NewClient(srcEP, opcua.AutoReconnect(false), opcua.SecurityMode(ua.MessageSecurityModeNone))
	if err != nil {
		b.Error(err)
		return
	}
	dst, err := opcua.NewClient(dstEP, opcua.AutoReconnect(false), opcua.SecurityMode(ua.MessageSecurityModeNone))
	if err != nil {
		b.Error(err)
		return
	}
	if err := src.Connect(ctx); err != nil {
		b.Error(err)
		return
	}
	defer src.Close(context.Background())
	if err := dst.Connect(ctx); err != nil {
		b.Error(err)
		return
	}
	defer dst.Close(context.Background())
	srcNS, _ := src.FindNamespace(ctx, ns)
	dstNS, _ := dst.FindNamespace(ctx, ns)
	dstIDs := make([]*ua.NodeID, r.n)
	for i := range dstIDs {
		dstIDs[i] = ua.NewStringNodeID(dstNS, "v"+strconv.Itoa(i))
	}
	notes := make(chan *opcua.PublishNotificationData, 64)
	sub, err := src.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 100 * time.Millisecond}, notes)
	if err != nil {
		b.Error(err)
		return
	}
	for start := 0; start < r.n; start += 1000 {
		var reqs []*ua.MonitoredItemCreateRequest
		for i := start; i < min(start+1000, r.n); i++ {
			reqs = append(reqs, opcua.NewMonitoredItemCreateRequestWithDefaults(ua.NewStringNodeID(srcNS, "v"+strconv.Itoa(i)), ua.AttributeIDValue, uint32(i)))
		}
		if _, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth, reqs...); err != nil {
			b.Error(err)
			return
		}
	}
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var n *opcua.PublishNotificationData
		select {
		case <-ctx.Done():
			return
		case n = <-notes:
		}
		dc, ok := n.Value.(*ua.DataChangeNotification)
		if !ok {
			continue
		}
		r.mu.Lock()
		if len(r.seen) < r.n {
			for _, it := range dc.MonitoredItems {
				r.seen[it.ClientHandle] = true
			}
		}
		r.mu.Unlock()
		items := dc.MonitoredItems
		for start := 0; start < len(items); start += 1000 {
			req := &ua.WriteRequest{}
			for _, it := range items[start:min(start+1000, len(items))] {
				dv := &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp, Value: it.Value.Value, SourceTimestamp: it.Value.SourceTimestamp}
				req.NodesToWrite = append(req.NodesToWrite, &ua.WriteValue{NodeID: dstIDs[it.ClientHandle], AttributeID: ua.AttributeIDValue, Value: dv})
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				_, _ = dst.Write(ctx, req)
			}()
		}
	}
}
