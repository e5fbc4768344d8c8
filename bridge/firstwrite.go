package bridge

import (
	"time"

	"github.com/gopcua/opcua/ua"
)

// First writes compare (issue 16, item 4). A target that already holds
// the value is not written: at engine start, after an apply and after a
// reconnect. A flow is unverified from the moment its target resolves on
// a new session until the target's current value has been read
// (reconcileWith, called by the resync of every new target session and by
// every reconcile when the gate opens). While unverified, accept only
// updates the cache; the reconcile then compares the cached value with
// the target and writes only a difference. A flow whose target was read
// before any value was cached (the usual case at start: the target's
// session came up before the source's first notification) keeps what the
// target held, and its first accepted value is compared with it.
//
// These methods are the flow's own state machine (flow.go); the caller
// holds ms.mu unless the doc says otherwise.

// tgtCurMaxAge bounds how long a target value read before the first
// notification stands for what the target holds.
const tgtCurMaxAge = 10 * time.Second

// seenValue is a target's value as read, and when.
type seenValue struct {
	v  *ua.Variant
	at time.Time
}

// verifyState is whether a flow's target has been read since its session
// came up.
type verifyState uint8

const (
	verified   verifyState = iota
	unverified             // not read yet: accept queues nothing
)

// holdFirstWrite reports whether accept must not queue out (with source
// timestamp ts) although the engine is active: the target is unverified
// (the reconcile that follows writes what differs), or out is the value
// the target was read holding (recorded as written). Caller holds ms.mu.
func (f *flow) holdFirstWrite(out *ua.Variant, ts stamp) bool {
	if f.verify != verified {
		return true
	}
	cur := f.tgtCur
	if cur == nil {
		return false
	}
	f.tgtCur = nil
	if time.Since(cur.at) > tgtCurMaxAge || !variantEqual(cur.v, out) {
		return false
	}
	if ts.after(f.writtenTS) {
		f.written, f.writtenTS = out, ts
	}
	return true
}

// targetRead records that the target's current value cur (nil: not read)
// has been seen: the flow is verified, and while it caches no value yet,
// cur is kept for the first accepted value to be compared with. Caller
// holds ms.mu.
func (f *flow) targetRead(cur *ua.DataValue) {
	f.verify = verified
	f.tgtCur = nil
	if f.good == nil && cur != nil && isGood(cur.Status) && cur.Value != nil {
		f.tgtCur = &seenValue{v: cur.Value, at: time.Now()}
	}
}

// targetUnread ends an unverified state whose read failed: the flow then
// writes without comparing, never not at all. It takes ms.mu.
func (f *flow) targetUnread() {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	f.verify = verified
	f.tgtCur = nil
}
