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
	// unverifiedDropped: not read yet, and the writer dropped a value
	// pending from before the session (writeNode).
	unverifiedDropped
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

// writeNode returns the target node the writer sends the flow's pending
// value to (nil: not resolved on the target's session), or stale: the
// target is unverified, and the value, queued before the target's
// session was rebuilt (during an outage, or a Write the lost session
// failed), is dropped. The resync that reads the target writes the
// cached value, never older than the dropped one, if the target differs
// (sent at once, the dropped value raced with that read: a target that
// already held it was written, and one read before the Write landed was
// written twice); if the read fails, targetUnread writes the cache
// without comparing. Called by the writer under its lock; it takes ms.mu.
func (f *flow) writeNode() (id *ua.NodeID, stale bool) {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	if f.verify != verified {
		f.verify = unverifiedDropped
		return nil, true
	}
	return f.dstID.Load(), false
}

// targetUnread ends an unverified state whose read failed: the flow then
// writes without comparing, never not at all; a value writeNode dropped
// is written (the cache, as reconcileWith has it for a target not read).
// It takes ms.mu.
func (f *flow) targetUnread() {
	f.ms.mu.Lock()
	dropped := f.verify == unverifiedDropped
	f.verify = verified
	f.tgtCur = nil
	f.ms.mu.Unlock()
	if dropped {
		if dv := f.reconcileWith(nil, false); dv != nil {
			f.to.w.enqueue([]queuedValue{{f.wslot, dv}})
		}
	}
}
