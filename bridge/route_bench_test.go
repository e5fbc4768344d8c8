package bridge

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
)

// benchEngine builds an engine of n read mappings a → b whose flows are
// typed (Double) and, with resolved, resolved and verified on b: ready
// for values, with no server.
func benchEngine(b *testing.B, n int, resolved bool) *Engine {
	cfg := &mapping.Config{Servers: []mapping.Server{
		{Name: "a", Endpoints: []string{"opc.tcp://127.0.0.1:1"}},
		{Name: "b", Endpoints: []string{"opc.tcp://127.0.0.1:2"}},
	}}
	for i := 0; i < n; i++ {
		m := mapping.Mapping{Source: mapping.NodeRef{Server: "a", Node: fmt.Sprintf("ns=1;s=v%d", i)},
			Target: mapping.NodeRef{Server: "b", Node: fmt.Sprintf("ns=1;s=v%d", i)}}
		m.ID = mapping.DeriveID(m.Source, m.Target)
		cfg.Mappings = append(cfg.Mappings, m)
	}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	e, err := New(Options{Config: cfg})
	if err != nil {
		b.Fatal(err)
	}
	vt := valueType{id: ua.TypeIDDouble, valueRank: -1}
	for _, ms := range e.tab.Load().maps {
		if resolved {
			nid, err := ms.fwd.resolveDst([]string{"http://opcfoundation.org/UA/", "urn:b"})
			if err != nil {
				b.Fatal(err)
			}
			ms.fwd.targetResolved(nid, nil)
			ms.fwd.targetUnread() // verified: values are queued
		}
		tr, err := e.transformFor(ms.m, false, vt)
		if err != nil {
			b.Fatal(err)
		}
		ms.fwd.targetTyped(tr, vt, nil)
	}
	e.queueing.Store(true)
	return e
}

// benchNotes fills items with a notification of batch changes for the
// it-th round over n mappings (handles 2·k: forward flows).
type benchNotes struct {
	items []*ua.MonitoredItemNotification
	dvs   []ua.DataValue
	vars  []*ua.Variant
	t0    time.Time
	// order is the order the n mappings change in: shuffled, as the
	// changes of a server's variables come (in handle order the
	// hardware prefetcher would hide what a flow's first touch costs).
	order []int
}

func newBenchNotes(batch, n int) *benchNotes {
	nb := &benchNotes{items: make([]*ua.MonitoredItemNotification, batch), dvs: make([]ua.DataValue, batch),
		vars: make([]*ua.Variant, batch), t0: time.Now(), order: rand.New(rand.NewPCG(1, 2)).Perm(n)}
	for i := range nb.items {
		nb.items[i] = &ua.MonitoredItemNotification{}
		nb.vars[i] = ua.MustVariant(float64(i))
	}
	return nb
}

func (nb *benchNotes) round(it, n int) (items []*ua.MonitoredItemNotification, now time.Time) {
	batch := len(nb.items)
	ts := nb.t0.Add(time.Duration(it) * time.Millisecond)
	off := (it * batch) % n
	for i := range nb.items {
		nb.dvs[i] = ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp,
			Value: nb.vars[(i+it)%batch], SourceTimestamp: ts}
		nb.items[i].ClientHandle = uint32(2 * nb.order[off+i])
		nb.items[i].Value = &nb.dvs[i]
	}
	return nb.items, ts
}

// BenchmarkRoute measures the value path without servers: notifications
// of 1,000 items routed to their flows, accepted, and queued on the
// destination writer (as a session's dispatcher does). Reported per value.
func BenchmarkRoute(b *testing.B) {
	const n, batch = 10000, 1000
	e := benchEngine(b, n, false)
	r := newRouter(e, e.connList()[0])
	nb := newBenchNotes(batch, n)
	b.ReportAllocs()
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		r.route(nb.round(it, n))
		e.connList()[1].w.clear() // the writer would send them
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/value")
}

// BenchmarkValuePath measures the whole value path without servers, as
// the engine runs it for one notification of 1,000 changes: routed,
// accepted, queued, taken from the writer's queue, built into a Write
// request and settled as written. What is left is gopcua's: decoding
// the notification, encoding the request, the round trip. Reported per
// value; -benchmem's allocs/op are per 1,000 values.
func BenchmarkValuePath(b *testing.B) {
	b.Run("10k", func(b *testing.B) { benchValuePath(b, 10000) })
	// 100k flows do not fit in the CPU's caches: every value's flow is a
	// miss, as in the engine at that size.
	b.Run("100k", func(b *testing.B) { benchValuePath(b, 100000) })
}

func benchValuePath(b *testing.B, n int) {
	const batch = 1000
	e := benchEngine(b, n, true)
	r := newRouter(e, e.connList()[0])
	w := e.connList()[1].w
	nb := newBenchNotes(batch, n)
	results := make([]ua.StatusCode, batch)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for it := 0; it < b.N; it++ {
		r.route(nb.round(it, n))
		for {
			wb := w.take(batch, writeLimits{})
			vals := wb.vals
			if len(vals) == 0 {
				w.bufs.Put(wb)
				break
			}
			if req := wb.request(false); len(req.NodesToWrite) != len(vals) {
				b.Fatal("short request")
			}
			w.settle(vals, results[:len(vals)], nil)
			wb.reset()
			w.bufs.Put(wb)
		}
	}
	b.StopTimer()
	// CPU time (GC included) is steadier than wall time on a busy machine.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N*batch), "cpu-ns/value")
	if got := e.connList()[1].stats.writes.Load(); got != uint64(b.N*batch) {
		b.Fatalf("%d values written, want %d", got, b.N*batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/value")
}

// processCPU returns the CPU time this process has used (user + system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
