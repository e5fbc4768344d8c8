package uaserver

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"
)

// BenchmarkSubscribe10k50k measures how many of the server's changes a
// gopcua client subscribed to every variable receives: 10,000 Double
// variables changing at 50,000/s in total (each every 200 ms), one
// subscription with a 100 ms publishing interval, items created in
// batches of 1,000. Counted are the notifications whose source timestamp
// falls in a window (SIMSERVER_BENCH_WINDOW, default 5s) against the
// changes made in that window. The server revises the queue size to 1, so
// a change is lost only if its variable changes again before the next
// publish. The change count is read at the window's edges, so it may be
// off by one tick (500 changes, 0.2 %) either way. Run it without -race (the race detector slows gopcua's codec
// several times):
//
//	go test -run XXX -bench Subscribe10k50k ./uaserver/
func BenchmarkSubscribe10k50k(b *testing.B) {
	const vars, rate = 10000, 50000
	window := 5 * time.Second
	if v := os.Getenv("SIMSERVER_BENCH_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("SIMSERVER_BENCH_WINDOW: %v", err)
		}
		window = d
	}
	for range b.N { // one scenario per run; it takes longer than -benchtime
		runSubscribeBench(b, vars, rate, window)
	}
}

func runSubscribeBench(b *testing.B, vars int, rate float64, window time.Duration) {
	s := startServer(b, Config{Vars: vars, Type: TypeDouble, Rate: rate, Logger: zap.NewNop()})
	ch := make(chan *opcua.PublishNotificationData, 64)
	// The window is fixed before the consumer starts, far enough ahead
	// for connecting, creating the items and warming up.
	created := time.Now()
	t0 := created.Add(4 * time.Second)
	t1 := t0.Add(window)
	var (
		inWindow atomic.Int64
		latest   atomic.Int64 // newest source timestamp received (Unix ns)
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case d := <-ch:
				dcn, ok := d.Value.(*ua.DataChangeNotification)
				if !ok {
					continue
				}
				var n, newest int64
				for _, it := range dcn.MonitoredItems {
					ts := it.Value.SourceTimestamp
					if !ts.Before(t0) && ts.Before(t1) {
						n++
					}
					newest = max(newest, ts.UnixNano())
				}
				inWindow.Add(n)
				if newest > latest.Load() {
					latest.Store(newest)
				}
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	c := connect(b, s.Endpoint())
	nodes := make([]*ua.NodeID, vars)
	for i := range nodes {
		nodes[i] = s.NodeID(i)
	}
	sub, err := c.Subscribe(testCtx(b), &opcua.SubscriptionParameters{Interval: 100 * time.Millisecond}, ch)
	if err != nil {
		b.Fatal(err)
	}
	for start := 0; start < vars; start += 1000 {
		var reqs []*ua.MonitoredItemCreateRequest
		for i := start; i < start+1000; i++ {
			reqs = append(reqs, opcua.NewMonitoredItemCreateRequestWithDefaults(nodes[i], ua.AttributeIDValue, uint32(i)))
		}
		if _, err := sub.Monitor(testCtx(b), ua.TimestampsToReturnBoth, reqs...); err != nil {
			b.Fatal(err)
		}
	}
	createDur := time.Since(created)
	if time.Now().After(t0) {
		b.Fatalf("creating %d items took %v, past the window start", vars, createDur)
	}
	b.ResetTimer()
	<-time.After(time.Until(t0))
	st0, cpu0 := s.Stats(), cpuTime()
	<-time.After(time.Until(t1))
	st1, cpu1 := s.Stats(), cpuTime()
	b.StopTimer()
	// Changes reach a subscription in the order they are made and a
	// Publish response carries all it has, so once a change made after
	// the window has arrived, every change of the window has.
	waitFor(b, 10*time.Second, "the window's last publish", func() bool { return latest.Load() >= t1.UnixNano() })

	changes := st1.Changes - st0.Changes
	got := inWindow.Load()
	pct := 100 * float64(got) / float64(changes)
	cpu := 100 * (cpu1 - cpu0).Seconds() / window.Seconds()
	b.ReportMetric(pct, "%received")
	b.ReportMetric(float64(changes)/window.Seconds(), "changes/s")
	b.ReportMetric(float64(got)/window.Seconds(), "notifications/s")
	b.ReportMetric(cpu, "%cpu")
	b.Logf("received %d of %d changes (%.1f %%) in %v; items created in %v; dropped by server %d; "+
		"process CPU %.0f %% of one core (server and client)", got, changes, pct, window, createDur,
		st1.Dropped-st0.Dropped, cpu)
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
