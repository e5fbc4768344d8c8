package bridge

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
)

// Held values with an age limit (max_hold, opt-in).
//
// A target whose source is Bad/Uncertain or unreachable holds its last
// good value, and to whoever reads the target that value looks live. With
// max_hold set, once a flow has been held longer than that, the engine
// writes the last good value again with status UncertainLastUsableValue
// (Part 4, 7.34.2 / Part 8, 6.3.2: "the value is the last usable value")
// and the mapping shows held, with the time the hold began. The next Good
// value from the source is written even if it equals the held one (a
// deadband does not keep the Uncertain status on the target), and a
// reconcile (gate opened, target reconnected) writes a marked flow's value
// with the Uncertain status rather than as a live one.
//
// The hold state lives in the flow, under the mapping's lock; holdWatch
// is the only goroutine that marks, accept and reconcileWith (flow.go)
// read and clear it.

// holdState is a flow's max_hold state, guarded by the mapping's lock.
// (The effective max_hold is the mapping's, mstate.maxHold; whether the
// hold marked the value is flow.marked: a bool beside the flow's others
// takes no padding.)
type holdState struct {
	// since is when the current hold began: the first Bad/Uncertain
	// value, or the source server seen unreachable (zero: not held).
	since stamp
}

// holdStatus is the status written with a held value past max_hold.
var holdStatus = ua.StatusUncertainLastUsableValue

// holdBegin records that the flow's source reported a Bad or Uncertain
// value at now. Caller holds ms.mu.
func (f *flow) holdBegin(now time.Time) {
	if f.hold.since.isZero() {
		f.hold.since = toStamp(now)
	}
}

// holdEnd records a Good value from the source: the hold ends. It reports
// whether the target was marked Uncertain and so needs the Good value
// even if it did not change. Caller holds ms.mu.
func (f *flow) holdEnd() (wasMarked bool) {
	wasMarked = f.marked
	f.hold.since, f.marked = 0, false
	return wasMarked
}

// heldDV is what reconcileWith writes for a marked flow: the last good
// value with the Uncertain status, or nil when the target (cur) already
// shows exactly that. Caller holds ms.mu.
func (f *flow) heldDV(cur *ua.DataValue) *ua.DataValue {
	if cur != nil && cur.Status == holdStatus && cur.Value != nil && variantEqual(cur.Value, f.good) {
		return nil
	}
	return f.markedDV()
}

// markedDV is the last good value with status UncertainLastUsableValue and
// its own source timestamp. Caller holds ms.mu.
func (f *flow) markedDV() *ua.DataValue {
	return &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueStatusCode | ua.DataValueSourceTimestamp,
		Value: f.good, Status: holdStatus, SourceTimestamp: f.goodTS.time()}
}

// holdBad is what reconcileWith writes for an on_bad hold flow whose
// source is Bad or Uncertain (read by this node, or reported by the
// active): never the last good value as a live Good one. A target that
// holds that value (cur) keeps it as it is (recorded as written); one
// that does not (restarted, or never written) gets it marked
// UncertainLastUsableValue, as past max_hold, and the next Good value
// from the source replaces it even if unchanged. Caller holds ms.mu.
func (f *flow) holdBad(cur *ua.DataValue) *ua.DataValue {
	if cur != nil && cur.Value != nil && variantEqual(cur.Value, f.good) {
		if f.goodTS.after(f.writtenTS) {
			f.written, f.writtenTS = f.good, f.goodTS
		}
		return nil
	}
	f.marked = true
	return f.markedDV()
}

// takeHeldReport returns, once, the state to report to the pair after
// an on_bad hold flow's source turned Bad or Uncertain while the engine
// was active (accept set heldReport): the last good value the target
// holds, with the status and the timestamp of the source's reading.
// Nothing was written, so no write reports it. It takes ms.mu.
func (f *flow) takeHeldReport() (FlowState, bool) {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	if !f.heldReport {
		return FlowState{}, false
	}
	f.heldReport = false
	return FlowState{MappingID: f.ms.m.ID, Reverse: f.reverse, Value: f.good, SourceTS: f.statusTS.time(),
		Status: f.srcStatus, StatusKnown: true, Held: true}, true
}

// holdCheck is holdWatch's look at one flow at now. srcDown is when the
// flow's source server was first seen unreachable in its current outage
// (zero: reachable). When the flow has been held for max_hold or longer
// and is not yet marked, it is marked (state held, with the reason) and,
// if the engine is queueing (read under the lock, as in accept), the
// marked value to write is returned. A standby marks without writing; its
// reconcile on takeover writes the marked value.
func (f *flow) holdCheck(now, srcDown time.Time, queueing *atomic.Bool) *ua.DataValue {
	ms := f.ms
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if f.state == StateDisabled || f.state == StateQuarantined || f.state == StateBad {
		return nil
	}
	badSource := f.state == StateHeld
	if !badSource && srcDown.IsZero() {
		if !f.marked {
			f.hold.since = 0 // a short outage that ended
		}
		return nil
	}
	if down := toStamp(srcDown); !down.isZero() && (f.hold.since.isZero() || down.before(f.hold.since)) {
		f.hold.since = down
	}
	if f.marked || f.good == nil || toStamp(now).sub(f.hold.since) < f.ms.maxHold {
		return nil
	}
	if badSource && srcDown.IsZero() && ms.m.OnBad == mapping.WriteStatus {
		// The target already carries the source's bad status.
		return nil
	}
	cause := f.reason
	if !srcDown.IsZero() {
		cause = "source unreachable"
	}
	f.marked = true
	f.setState(StateHeld, fmt.Sprintf("%s; held past max_hold %s: last usable value marked Uncertain", cause, f.ms.maxHold))
	if queueing == nil || !queueing.Load() {
		return nil
	}
	return f.markedDV()
}

// heldSince returns when the flow's current hold began (zero: not held).
// Caller holds ms.mu.
func (f *flow) heldSince() time.Time {
	if f.state != StateHeld {
		return time.Time{}
	}
	return f.hold.since.time()
}

// holdTick is holdWatch's period for the shortest max_hold: a tenth of
// it, within [20 ms, 1 s]; a flow is marked at most one tick late.
func holdTick(shortest time.Duration) time.Duration {
	return min(max(shortest/10, 20*time.Millisecond), time.Second)
}

// holdFlows returns the flows of tab with a max_hold, and the shortest.
func holdFlows(tab *flowTable) (flows []*flow, shortest time.Duration) {
	for _, f := range tab.flows {
		if f == nil || f.ms.maxHold == 0 {
			continue
		}
		flows = append(flows, f)
		if shortest == 0 || f.ms.maxHold < shortest {
			shortest = f.ms.maxHold
		}
	}
	return flows, shortest
}

// holdWatch marks flows held longer than their max_hold and queues their
// marked values. It runs in a goroutine owned by Engine.Run and returns
// when ctx ends. It takes up the flows of a table a live change put in
// place (tabChanged); while no mapping sets max_hold it only waits.
func (e *Engine) holdWatch(ctx context.Context) {
	var tab *flowTable
	var flows []*flow
	var t *time.Ticker
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	downSince := make(map[*conn]time.Time, len(e.connList()))
	out := map[*writer][]queuedValue{}
	for {
		if cur := e.tab.Load(); cur != tab {
			tab = cur
			var shortest time.Duration
			flows, shortest = holdFlows(cur)
			if t != nil {
				t.Stop()
				t = nil
			}
			if len(flows) > 0 {
				t = time.NewTicker(holdTick(shortest))
			}
			// A live change may have removed servers: forget them (one
			// leaves the list after its flows retired, so at the next
			// change at the latest).
			live := map[*conn]bool{}
			for _, c := range e.connList() {
				live[c] = true
			}
			for c := range downSince {
				if !live[c] {
					delete(downSince, c)
				}
			}
			clear(out)
		}
		var tick <-chan time.Time
		if t != nil {
			tick = t.C
		}
		select {
		case <-ctx.Done():
			return
		case <-e.tabChanged:
			continue
		case <-tick:
		}
		now := time.Now()
		for _, c := range e.connList() {
			if ConnState(c.state.Load()) == Connected {
				delete(downSince, c)
			} else if _, ok := downSince[c]; !ok {
				downSince[c] = now
			}
		}
		for _, f := range flows {
			if dv := f.holdCheck(now, downSince[f.from], &e.queueing); dv != nil {
				out[f.to.w] = append(out[f.to.w], queuedValue{f.wslot, dv})
			}
		}
		for w, vals := range out {
			w.enqueue(vals)
			out[w] = vals[:0]
		}
	}
}
