package bridge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
)

// TestWriteValueSizeNeverShort checks the size estimate against the real
// encoding: a request bounded by estimates must fit its bound.
func TestWriteValueSizeNeverShort(t *testing.T) {
	nids := []*ua.NodeID{ua.NewStringNodeID(2, "Plant/Area 1/Line 3/Temperature"), ua.NewNumericNodeID(3, 70000),
		ua.NewNumericNodeID(0, 5), ua.NewByteStringNodeID(1, []byte("opaque"))}
	vals := []any{true, int8(-1), byte(2), int16(3), uint16(4), int32(5), uint32(6), int64(7), uint64(8), float32(9),
		10.5, "", strings.Repeat("ü", 1000), time.Unix(1700000000, 0), []byte{1, 2, 3}, make([]float64, 70000),
		[]int32{1, 2}, []string{"a", "bc"}, []bool{true}, ua.NewLocalizedText("text"), &ua.QualifiedName{NamespaceIndex: 1, Name: "q"}}
	for _, nid := range nids {
		for _, v := range vals {
			dv := &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp | ua.DataValueStatusCode,
				Value: ua.MustVariant(v), SourceTimestamp: time.Now(), Status: ua.StatusUncertain}
			b, err := ua.Encode(&ua.WriteValue{NodeID: nid, AttributeID: ua.AttributeIDValue, Value: dv})
			if err != nil {
				t.Fatalf("%T: %v", v, err)
			}
			if est := writeValueSize(nid, dv); est < len(b) || est > len(b)+64 {
				t.Errorf("%s %T: estimated %d bytes, encoded %d", nid, v, est, len(b))
			}
		}
	}
}

// TestSizeLearner: refusals halve the cap, then it settles just below
// the smallest refused size; a value refused alone resets it.
func TestSizeLearner(t *testing.T) {
	const serverMax = 100 // refuses more than this, unannounced
	var l sizeLearner
	refusals := 0
	for req := 0; req < 2000; req++ {
		n := l.cap(1000)
		if n > serverMax {
			l.failed(n)
			refusals++
			continue
		}
		l.worked(n)
	}
	if got := l.cap(1000); got != serverMax {
		t.Errorf("cap %d after 2000 requests, want %d", got, serverMax)
	}
	if refusals > 12 {
		t.Errorf("%d refusals: the learner probes too often", refusals)
	}
	l.forget()
	if got := l.cap(1000); got != 1000 {
		t.Errorf("cap %d after forget, want 1000", got)
	}
}

// BenchmarkTake measures the writer's batching (newest value per node,
// the byte bound and the length checks) per value: 1,000 values enqueued
// and taken into requests.
func BenchmarkTake(b *testing.B) {
	const n = 1000
	cfg := &mapping.Config{Servers: []mapping.Server{
		{Name: "a", Endpoints: []string{"opc.tcp://127.0.0.1:1"}},
		{Name: "b", Endpoints: []string{"opc.tcp://127.0.0.1:2"}},
	}}
	for i := 0; i < n; i++ {
		m := mapping.Mapping{Source: mapping.NodeRef{Server: "a", Node: fmt.Sprintf("ns=1;s=v%d", i)},
			Target: mapping.NodeRef{Server: "b", Node: fmt.Sprintf("ns=1;s=Plant/Area/v%d", i)}}
		m.ID = mapping.DeriveID(m.Source, m.Target)
		cfg.Mappings = append(cfg.Mappings, m)
	}
	e, err := New(Options{Config: cfg})
	if err != nil {
		b.Fatal(err)
	}
	w := e.connList()[1].w
	vals := make([]queuedValue, n)
	for i, f := range w.c.writeFlows() {
		f.targetResolved(ua.NewStringNodeID(1, fmt.Sprintf("Plant/Area/v%d", i)), nil)
		vals[i] = queuedValue{f.wslot, &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp,
			Value: ua.MustVariant(float64(i)), SourceTimestamp: time.Now()}}
	}
	lim := writeLimits{maxBytes: defaultMaxRequestBytes, maxArrayLength: 65535, maxStringLen: 65535}
	b.ReportAllocs()
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		w.enqueue(vals)
		for {
			wb := w.take(500, lim)
			batch := wb.vals
			if len(batch) == 0 {
				break
			}
			for _, q := range batch {
				w.slots[q.slot].inflight = false
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/value")
}
