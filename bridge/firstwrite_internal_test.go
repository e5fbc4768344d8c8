package bridge

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
)

// TestFirstWriteDroppedValueUnread: a value pending for a target whose
// new session has not been compared yet is not sent (writeNode drops
// it: the resync compares the cache instead); when the resync's read of
// the target fails (targetUnread), the cache is queued uncompared, never
// not at all; when the read shows the target holding it, nothing is.
func TestFirstWriteDroppedValueUnread(t *testing.T) {
	for _, readFails := range []bool{true, false} {
		m := &mapping.Mapping{ID: "m1"}
		ms := &mstate{m: m}
		to := &conn{name: "b"}
		f := &flow{ms: ms, from: &conn{name: "a"}, to: to}
		ms.fwd = f
		to.w = &writer{c: to, slots: []slot{{f: f}}, wakeCh: make(chan struct{}, 1)}
		e := &Engine{}
		vt := valueType{id: ua.TypeIDDouble, valueRank: -1}
		tr, err := e.transformFor(m, false, vt)
		if err != nil {
			t.Fatal(err)
		}
		f.targetTyped(tr, vt, nil)
		nid := ua.NewStringNodeID(1, "v0")
		f.targetResolved(nid, nil)
		f.targetRead(nil) // the first session's resync

		var queueing atomic.Bool
		queueing.Store(true)
		dv := &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp,
			Value: ua.MustVariant(2.5), SourceTimestamp: time.Now()}
		out, _, _ := f.accept(dv, time.Now(), &queueing)
		if out == nil {
			t.Fatal("a changed value was not queued")
		}
		to.w.enqueue([]queuedValue{{0, out}}) // pending: the target's server is down
		f.targetResolved(nid, nil)            // its new session: unverified
		if batch := to.w.take(10, writeLimits{}).vals; len(batch) != 0 {
			t.Fatalf("the pending value was sent before the resync compared the target: %v", batch)
		}
		if readFails {
			f.targetUnread()
		} else if w := f.reconcileWith(&ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(2.5)}, false); w != nil {
			t.Fatalf("a target holding the value is written again: %v", w)
		}
		wb := to.w.take(10, writeLimits{})
		batch, ids := wb.vals, wb.ids
		switch {
		case readFails && (len(batch) != 1 || batch[0].dv.Value.Value() != 2.5 || ids[0] != nid):
			t.Errorf("after a failed read: %v to %v, want the cache (2.5) once", batch, ids)
		case !readFails && len(batch) != 0:
			t.Errorf("after a read showing the value: %v sent, want nothing", batch)
		}
	}
}
