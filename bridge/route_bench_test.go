package bridge

import (
	"fmt"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
)

// BenchmarkRoute measures the value path without servers: notifications
// of 1,000 items routed to their flows, accepted, and queued on the
// destination writer (as a session's dispatcher does). Reported per value.
func BenchmarkRoute(b *testing.B) {
	const n = 10000
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
		tr, err := e.transformFor(ms.m, false, vt)
		if err != nil {
			b.Fatal(err)
		}
		ms.fwd.targetTyped(tr, vt, nil)
	}
	e.queueing.Store(true)
	r := newRouter(e, e.conns[0])
	const batch = 1000
	items := make([]*ua.MonitoredItemNotification, batch)
	dvs := make([]ua.DataValue, batch)
	vars := make([]*ua.Variant, batch)
	for i := range items {
		items[i] = &ua.MonitoredItemNotification{}
		vars[i] = ua.MustVariant(float64(i))
	}
	t0 := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		ts := t0.Add(time.Duration(it) * time.Millisecond)
		off := (it * batch) % n
		for i := range items {
			dvs[i] = ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp,
				Value: vars[(i+it)%batch], SourceTimestamp: ts}
			items[i].ClientHandle = uint32(2 * (off + i))
			items[i].Value = &dvs[i]
		}
		r.route(items, ts)
		e.conns[1].w.clear() // the writer would send them
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/value")
}
