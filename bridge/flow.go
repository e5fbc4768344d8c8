package bridge

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
)

// State is the health of one mapping in the engine.
type State int32

// Mapping states.
const (
	// StatePending: not yet subscribed or not yet resolved.
	StatePending State = iota
	// StateOK: values flow.
	StateOK
	// StateHeld: the source reports Bad or Uncertain; the target holds
	// its last good value.
	StateHeld
	// StateBad: a value could not be converted or a write was refused;
	// the reason says why.
	StateBad
	// StateQuarantined: a server rejected the node (unknown node, type
	// mismatch, unknown namespace…); retried with backoff.
	StateQuarantined
	// StateDisabled: the mapping is disabled in the config.
	StateDisabled
	// StateClock: values flow, but the source's timestamps stepped back
	// or run ahead of this node's clock by more than the skew tolerance
	// (mapping.Engine.ClockSkew), or (both) one side's clock is behind
	// the other's; the reason says by how much. It clears clockHold
	// after the last such value.
	StateClock
	// StateStale: the source server is disconnected; the target keeps the
	// last value read before. It ends with the first value of the next
	// session.
	StateStale
)

var stateNames = [...]string{"pending", "ok", "held", "bad", "quarantined", "disabled", "clock", "stale"}

// States returns every mapping state in order (for exporters that list
// states with no flow as 0).
func States() []State {
	out := make([]State, len(stateNames))
	for i := range out {
		out[i] = State(i)
	}
	return out
}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// side is the server side of a flow that a fault belongs to.
type side uint8

const (
	sideNone   side = iota
	sideSource      // the node the flow reads (monitored item, resolution)
	sideTarget      // the node the flow writes (resolution, type, write refused)
)

// verdict is what a flow decided about one source value (accept). The
// engine counts them; tests assert them.
type verdict uint8

const (
	vIgnored      verdict = iota // disabled flow or null value
	vBadSource                   // Bad/Uncertain: never a value; held or status written
	vEcho                        // our own write coming back from the other side
	vConflictLost                // echo of our older write over a newer change: repaired
	vStale                       // older than the newest the mapping holds
	vNoTargetType                // kept raw until the target's type is known
	vUnchanged                   // within the deadband of the last accepted value
	vConvError                   // conversion to the target type failed: flow bad
	vAccepted                    // new last good value (written when queueing)
)

var verdictNames = [...]string{"ignored", "bad source", "echo", "conflict lost", "stale",
	"no target type", "unchanged", "conversion error", "accepted"}

func (v verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// flow is one direction of one mapping: values read from node src on
// server from, written to node dst on server to. A `both` mapping has two
// flows. Its handle (the monitored item's ClientHandle) is
// mappingIndex*2 + (1 if reverse). Immutable fields are set at build
// time; mutable ones live in the mapping's mstate under its lock.
//
// The flow owns its state machine: every change of its mutable fields
// goes through one of its methods, which take the mapping's lock
// themselves (callers never do). The methods never block on anything but
// that lock and never call out of the flow, so they are safe from any
// goroutine: the dispatcher of the source's session (accept), the
// writer of the target's (wrote, writeRefused), a session supervisor
// (resolution, monitoring) and the role loop (reconcileWith).
type flow struct {
	// The fields fit the 224-byte size class (a flow exists per mapping
	// and direction). warmFlows reads the immutable ones at offsets no
	// more than a cache line apart, from the first byte to the last, so
	// that every line a flow spans is brought in (224 is not a multiple
	// of 64: a flow may start mid-line). TestFlowLayout checks both.
	// Timestamps are stamps (8 B); what few flows need is out of line.
	ms   *mstate
	from *conn
	to   *conn

	// Mutable, guarded by ms.mu (dstID: also read without it):
	tr *transform
	// lastSrc is the last accepted source value (the deadband baseline).
	lastSrc *ua.Variant
	// good is the last good transformed value and its source timestamp
	// (goodTS): the last-good-value cache.
	good *ua.Variant
	// written is the last value confirmed written to dst.
	written *ua.Variant

	// publishing interval of the monitored item's subscription (sampling
	// and queueSize below; immutable).
	publishing time.Duration
	// dstID is the target node resolved on the destination's current
	// session; written under ms.mu, read without it by the writer.
	dstID atomic.Pointer[ua.NodeID]
	// echoes are values this flow wrote to dst that may come back through
	// the opposite flow's subscription (both mappings only).
	echoes *[4]echo // allocated for both mappings only
	// goodSeq and srcSeq are the mapping's order numbers (ms.seq) of good
	// and of lastSrc: in a both mapping they say which side changed last,
	// whatever the two servers' clocks say.
	goodSeq uint64
	srcSeq  uint64
	// tgtCur is the target's value read while its session came up, while
	// no good value was cached yet (firstwrite.go).
	tgtCur *seenValue
	// rare is what few flows need: a clock anomaly, a percent deadband
	// on the source's EURange (nil: neither yet).
	rare *flowRare

	// sampling interval of the monitored item (immutable).
	sampling time.Duration
	reason   string

	lastSrcTS stamp
	goodTS    stamp
	writtenTS stamp
	// wslot is this flow's slot in the destination writer.
	wslot int
	// Ordering (see accept). sessTS is the timestamp of the last value
	// of the source's current session (sessSeen: there was one).
	sessTS stamp
	// statusTS is the source timestamp of the reading srcStatus came
	// from.
	statusTS stamp
	// hold is the max_hold state (hold.go).
	hold holdState

	state State
	// srcStatus is the source's status as this node knows it, part of
	// the cached value: a status change is a change (deadband or not),
	// and a reconcile never writes Good over a Bad source. It is the
	// status of the last value read from the source (accept) or, while
	// this node's own session of the source delivers nothing (srcLive
	// false), the one the active reported with its last write (observe;
	// statusPeer). statusKnown: there was one (unknown counts as Good for
	// a change, never for writing over a Bad target).
	srcStatus ua.StatusCode

	reverse     bool
	typeKnown   bool
	statusKnown bool
	statusPeer  bool
	// srcLive: the source's current session delivered a value and has
	// not ended.
	srcLive bool
	// heldReport: an on_bad hold flow's source turned Bad or Uncertain
	// while the engine is active; the status is to be reported to the
	// pair (takeHeldReport), since nothing is written.
	heldReport bool
	// qside is the side a quarantine belongs to (StateQuarantined only).
	qside    side
	sessSeen bool
	// memberChanged: the current session is another member of a server
	// set than the one the cached value came from; its first value must
	// not be older than the cache at all (Part 4, 6.6.2: a member may lag
	// behind), not merely within the clock skew.
	memberChanged bool
	// goodPeer says the cached good value came from the peer stream
	// (observe).
	goodPeer bool
	// verify: whether the target's current value has been read since its
	// session came up, and a value pending for it was dropped meanwhile
	// (firstwrite.go; one byte: the flow stays in its 224 B size class).
	verify verifyState
	// marked: the last good value has been marked (and, while active,
	// queued) with UncertainLastUsableValue for the current hold
	// (hold.go).
	marked bool
	nEcho  uint8
	// srcOK: the source node resolved on the source server's current
	// session, in namespace srcNS; node(false) builds its id again from
	// the config's string (a resolved id kept would cost ~60 B a flow,
	// and is needed only when monitored items are created or the
	// sources read).
	srcOK bool
	srcNS uint16

	handle    uint32
	queueSize uint32 // of the monitored item
}

// flowRare is what few flows need, out of line: the last clock anomaly
// (StateClock; clockAt zero: none yet), and the percent deadband on the
// source's EURange: eu is the span of the EURange, the range of a
// percent deadband without scaling (readEURanges); band is f.tr with
// that deadband (nil: f.tr's own applies).
type flowRare struct {
	clockAt  time.Time
	clockWhy string
	eu       float64
	band     *transform
}

// rarely returns f.rare, allocated if need be. Caller holds ms.mu.
func (f *flow) rarely() *flowRare {
	if f.rare == nil {
		f.rare = new(flowRare)
	}
	return f.rare
}

// warmAhead is how many values of a notification the router warms
// (warmFlows) before it hands them to their flows.
const warmAhead = 64

// warmFlows reads, for each value of items, immutable words spread over
// its flow (see flow) and one beside its mapping state's lock, and
// returns something of them (so that the loads are kept; ms.index is
// not one of them: a live change moves it; the mapping itself is not
// read on the value path).
// Between two changes of the same node, thousands of
// other flows pass, so at 10k mappings and more a value's flow is no
// longer in the CPU's caches. These loads have no lock between them and
// the CPU has many of the misses in flight at once; in accept each
// would wait behind the lock of the value before (a locked instruction
// is a fence). Only immutable fields: no lock needed.
func warmFlows(flows []*flow, items []*ua.MonitoredItemNotification) uintptr {
	var x uintptr
	for _, item := range items {
		if h := int(item.ClientHandle); h < len(flows) {
			if f := flows[h]; f != nil {
				x += uintptr(unsafe.Pointer(f.ms)) + uintptr(f.publishing) + uintptr(f.sampling) + uintptr(f.wslot) +
					uintptr(f.handle) + uintptr(f.queueSize) + uintptr(unsafe.Pointer(f.ms.fwd))
			}
		}
	}
	return x
}

// mstate is the engine's state of one mapping: its one or two flows and
// the lock that guards their mutable fields. Different mappings never
// share a lock, so the value path takes no global lock.
type mstate struct {
	mu    sync.Mutex
	index int
	m     *mapping.Mapping
	fwd   *flow // source → target (read, both)
	rev   *flow // target → source (write, both)
	// tol is the clock skew tolerance (mapping.Engine.ClockSkew): source
	// timestamps are compared only across sources (a both conflict, a
	// cached peer value against a fresh one), and only beyond it.
	tol time.Duration
	// seq numbers the values the mapping accepted, in the order it
	// accepted them (the receive order).
	seq uint64
	// maxHold is the mapping's effective max_hold (0: off; immutable;
	// hold.go).
	maxHold time.Duration
}

// both reports whether the mapping is bidirectional.
func (ms *mstate) both() bool { return ms.fwd != nil && ms.rev != nil }

// valueTime is the one timestamp rule of the value path: a value's time
// is its SourceTimestamp, else its ServerTimestamp, else now (the time it
// was received).
func valueTime(dv *ua.DataValue, now time.Time) time.Time {
	if !dv.SourceTimestamp.IsZero() {
		return dv.SourceTimestamp
	}
	if !dv.ServerTimestamp.IsZero() {
		return dv.ServerTimestamp
	}
	return now
}

// valueDV is a DataValue to write: value and source timestamp.
func valueDV(v *ua.Variant, ts time.Time) *ua.DataValue {
	return &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp, Value: v, SourceTimestamp: ts}
}

// accept is the value handler: one value read from the flow's source (a
// notification, or a resync read), with now the time it was received. It
// updates the last-good-value cache and decides. With queue (the engine
// is active and the value came from a subscription) it returns the value
// to write to the target (write), or, when a conflict was lost on a both
// mapping, the newer value to write back to this flow's own source
// through the opposite flow (repair). Without queue (nil or false) it
// only updates the cache: the caller reconciles against the target.
// queue is read under the mapping's lock, so a value accepted while the
// gate opens is either queued or seen by the reconcile (reconcileWith).
//
// Ordering: within one session of the source, values are taken in the
// server's order whatever their timestamps; a timestamp that steps back
// or runs ahead of this node's clock beyond the skew tolerance sets the
// flow to StateClock (the value is still taken). Timestamps decide only
// between two sources, and only beyond the tolerance: a cached value from
// a peer or an earlier session that is newer (a fresh value within the
// tolerance of it is stale), and a both conflict (a change on one side
// while our write to that side is on its way).
//
// The rules, in order: a disabled flow ignores everything; Bad and
// Uncertain values are never written as values (the flow is held; with
// on_bad write_status the last good value goes out carrying the status,
// once per status change); our own write coming back from the other side
// is an echo, not a change (and if it landed over a newer change there,
// that change is repaired); a value older than a cached one from another
// source is stale (a conflict lost, for both); before the target type is
// known the raw value is kept; a value within the deadband of the last
// accepted one changes nothing (unless the status changed); a value that
// does not convert makes the flow bad; anything else is the new last good
// value.
func (f *flow) accept(dv *ua.DataValue, now time.Time, queueing *atomic.Bool) (write, repair *ua.DataValue, v verdict) {
	return f.acceptOwned(dv, now, queueing, false)
}

// acceptOwned is accept for a caller that hands dv over (own): the
// router, whose notification's DataValues nobody reads after it. The
// value to write is then dv itself, overwritten, not a new DataValue:
// one allocation less per value forwarded.
func (f *flow) acceptOwned(dv *ua.DataValue, now time.Time, queueing *atomic.Bool, own bool) (write, repair *ua.DataValue, v verdict) {
	ms := f.ms
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if f.state == StateDisabled {
		return nil, nil, vIgnored
	}
	ts := valueTime(dv, now)
	st := toStamp(ts)
	queue := queueing != nil && queueing.Load()
	first := !f.sessSeen // the session's first value: its current one
	// After a switch to another member of a server set, nothing older
	// than the cache is taken until that member has caught up.
	strict := f.memberChanged
	f.checkClock(st, now)
	statusChanged := dv.Status != f.srcStatus
	f.srcStatus, f.statusTS, f.statusKnown, f.statusPeer, f.srcLive = dv.Status, st, true, false, true
	if dv.Status != ua.StatusOK && !isGood(dv.Status) {
		f.holdBegin(now)
		if f.state != StateBad && f.state != StateQuarantined {
			f.setState(StateHeld, "source status "+statusName(dv.Status))
		}
		if f.good == nil || !statusChanged || !queue {
			return nil, nil, vBadSource
		}
		if ms.m.OnBad == mapping.WriteStatus {
			// The last good value, carrying the bad status: targets that
			// show quality show it; the value itself stays the good one.
			return &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueStatusCode | ua.DataValueSourceTimestamp,
				Value: f.good, Status: dv.Status, SourceTimestamp: ts}, nil, vBadSource
		}
		f.heldReport = true // hold: nothing written, the pair is told
		return nil, nil, vBadSource
	}
	if dv.Value == nil {
		return nil, nil, vIgnored
	}
	val := fromWire(dv.Value)
	opp := f.opposite()
	if opp != nil && opp.takeEcho(val, ts) {
		if f.lastSrc != nil && f.srcSeq > opp.goodSeq && queue {
			// A true conflict we lost the race on: our (older) write landed
			// on this side after this side's own newer change. Put the
			// newer value back, so both sides end on the newest.
			opp.addEcho(f.lastSrc, f.lastSrcTS.time())
			return nil, valueDV(f.lastSrc, f.lastSrcTS.time()), vConflictLost
		}
		f.lastSrc, f.lastSrcTS, f.srcSeq = val, st, opp.goodSeq
		f.settle(now) // a first value that is an echo resolves the flow too
		return nil, nil, vEcho
	}
	// Against a value cached from the peer (or, for a session's first
	// value, from an earlier session) timestamps decide.
	foreign := f.good != nil && (f.goodPeer || first || strict)
	if strict && (f.good == nil || !f.goodTS.after(st)) {
		f.memberChanged = false // the new member has caught up
	}
	if strict && foreign && f.goodTS.sub(st) > ms.tol {
		// Not a clock step of one server: a member behind the one left.
		// Dropped, and shown (state clock), never frozen silently.
		f.clockAnomaly(now, "member's value "+f.goodTS.sub(st).Round(time.Millisecond).String()+
			" older than the one already written from the member left: dropped until it catches up")
		f.settle(now)
		return nil, nil, vStale
	}
	if foreign && f.goodTS.after(st) && f.goodTS.sub(st) <= ms.tol {
		// A fresh value just older than the cached one: the cache is
		// ahead, within the clock skew.
		f.settle(now)
		return nil, nil, vStale
	}
	if foreign && f.goodTS.sub(st) > ms.tol {
		f.clockAnomaly(now, "source timestamp "+f.goodTS.sub(st).Round(time.Millisecond).String()+" older than the cached value")
	}
	if opp != nil && opp.good != nil && opp.goodTS.sub(st) > ms.tol {
		if opp.inFlight(now) {
			// A both conflict: this side changed while our write of the
			// other side's (newer) value to it was on its way. That value
			// wins; it is written again, since a server that coalesces may
			// have taken our write before this change (its echo lost), and
			// both sides must end on the same value.
			f.settle(now)
			if !queue {
				return nil, nil, vStale
			}
			opp.addEcho(opp.good, opp.goodTS.time())
			return nil, valueDV(opp.good, opp.goodTS.time()), vStale
		}
		if !first {
			// (A session's first value is the node's current value, stamped
			// whenever it last changed: no reading of the server's clock.)
			f.clockAnomaly(now, "source timestamp "+opp.goodTS.sub(st).Round(time.Millisecond).String()+
				" older than the other side's earlier change: the two servers' clocks differ by more than clock_skew")
		}
	}
	if f.tr == nil {
		// Destination type not known yet: keep the raw value; when the
		// destination connects, targetTyped converts it and the resync
		// writes it.
		ms.seq++
		f.lastSrc, f.lastSrcTS, f.srcSeq = val, st, ms.seq
		f.holdEnd()
		return nil, nil, vNoTargetType
	}
	db := f.tr
	if f.rare != nil && f.rare.band != nil {
		db = f.rare.band
	}
	// A target marked Uncertain (max_hold) gets this Good value even if
	// it did not change.
	wasMarked := f.holdEnd()
	if f.good != nil && !statusChanged && !wasMarked && !db.changed(f.lastSrc, val) {
		f.goodPeer = false // the session has caught up with the cache
		f.settle(now)
		return nil, nil, vUnchanged
	}
	out, err := f.tr.apply(val)
	if err != nil {
		f.setState(StateBad, err.Error())
		return nil, nil, vConvError
	}
	ms.seq++
	f.lastSrc, f.lastSrcTS, f.srcSeq = val, st, ms.seq
	f.good, f.goodTS, f.goodSeq, f.goodPeer = out, st, ms.seq, false
	if f.state != StateQuarantined {
		f.setState(StateOK, "")
		f.settle(now)
	}
	if !queue || f.holdFirstWrite(out, st) {
		return nil, nil, vAccepted
	}
	if ms.both() {
		f.addEcho(out, ts)
	}
	if own {
		*dv = ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp, Value: out, SourceTimestamp: ts}
		return dv, nil, vAccepted
	}
	return valueDV(out, ts), nil, vAccepted
}

// clockHold is how long StateClock stays after the last clock anomaly.
const clockHold = time.Minute

// checkClock checks ts, the timestamp of a value of the source's current
// session received at now, against the session's previous one (a step
// back) and this node's clock (ahead), and records it as the session's
// latest. Caller holds ms.mu.
func (f *flow) checkClock(ts stamp, now time.Time) {
	tol := f.ms.tol
	switch {
	case ts.sub(toStamp(now)) > tol:
		f.clockAnomaly(now, "source timestamp "+ts.sub(toStamp(now)).Round(time.Millisecond).String()+" ahead of this node's clock")
	case f.sessSeen && f.sessTS.sub(ts) > tol:
		f.clockAnomaly(now, "source timestamps stepped back by "+f.sessTS.sub(ts).Round(time.Millisecond).String())
	}
	f.sessTS, f.sessSeen = ts, true
}

// clockAnomaly records a clock anomaly seen at now. Caller holds ms.mu.
func (f *flow) clockAnomaly(now time.Time, why string) {
	r := f.rarely()
	r.clockAt, r.clockWhy = now, why
}

// settle sets the state of a flow whose source delivered a good value at
// now: ok, or clock while a clock anomaly is recent. Held, stale,
// pending and clock flows recover; bad and quarantined ones do not (a
// good conversion or write, or a retry, ends those). Caller holds ms.mu.
func (f *flow) settle(now time.Time) {
	switch f.state {
	case StatePending, StateOK, StateHeld, StateStale, StateClock:
	default:
		return
	}
	if r := f.rare; r != nil && !r.clockAt.IsZero() && now.Sub(r.clockAt) < clockHold {
		f.setState(StateClock, r.clockWhy)
		return
	}
	f.setState(StateOK, "")
}

// inFlight reports whether a value this flow wrote may still come back
// as an echo (written less than echoWindow before now). Caller holds
// ms.mu.
func (f *flow) inFlight(now time.Time) bool {
	for i := 0; i < int(f.nEcho); i++ {
		if now.Sub(f.echoes[i].at) < echoWindow {
			return true
		}
	}
	return false
}

// reconcileWith decides, from the target's current value cur (nil: not
// read), whether the target needs the last good value, and returns it
// (nil: nothing to write). Used when the gate opens and after a target
// (re)connects. An equal value is recorded as written.
func (f *flow) reconcileWith(cur *ua.DataValue, takeover bool) *ua.DataValue {
	ms := f.ms
	ms.mu.Lock()
	defer ms.mu.Unlock()
	f.targetRead(cur)
	good, ts := f.good, f.goodTS.time()
	opp := f.opposite()
	if good == nil || f.state == StateDisabled {
		return nil // nothing yet, or disabled
	}
	if opp != nil && opp.good != nil {
		// Both: the other direction's change wins, and that flow writes
		// it, when it is newer by more than the clock skew, or, within
		// the skew, when it was received last (as in accept).
		if d := opp.goodTS.sub(f.goodTS); d > ms.tol || d >= -ms.tol && opp.goodSeq > f.goodSeq {
			return nil
		}
	}
	if f.marked {
		return f.heldDV(cur) // held past max_hold: never as a live value
	}
	curGood := cur != nil && isGood(cur.Status)
	if opp != nil && curGood && cur.Value != nil && !variantEqual(cur.Value, opp.lastSrc) &&
		cur.SourceTimestamp.After(ts) {
		// In a both mapping the destination is a source too, and it holds
		// a value the other direction has not seen yet, stamped newer:
		// it wins and flows the other way; never overwrite it.
		return nil
	}
	if takeover && opp == nil && curGood && cur.Value != nil && cur.SourceTimestamp.After(ts) && cur.SourceTimestamp.Sub(ts) <= ms.tol {
		// At a takeover the target already holds a newer value of this
		// source, written by the other writer (the engine this one
		// replaces, the node that was active) after this flow's cache was
		// filled: writing the cached one would put an older value after a
		// newer one. The source's next change comes through this flow
		// anyway. (Beyond the clock skew it is a clock step of the source,
		// written as usual; a target that comes back, or a new node, is no
		// takeover: its value is not one of ours.)
		return nil
	}
	// The status is part of the value: never Good over a Bad source,
	// whether this node's own subscription read the status or the active
	// reported it (observe).
	bad := f.statusKnown && !isGood(f.srcStatus)
	if bad && ms.m.OnBad != mapping.WriteStatus {
		return f.holdBad(cur)
	}
	if ms.m.OnBad == mapping.WriteStatus && (f.state == StateStale || !f.statusKnown) && cur != nil && cur.Value != nil && !isGood(cur.Status) {
		// The source is disconnected, or its status was never read nor
		// reported (an active of the previous release streams none): what
		// this node knows of it is old or nothing, and the target says Bad
		// (the last active may have written it). Never Good over that; the
		// source's next value decides. (With hold a Bad target is the
		// target's own doing, and the last good value is written.)
		return nil
	}
	// With on_bad write_status a target of a Bad source carries that
	// status; otherwise it holds the last good value, Good.
	status := ua.StatusOK
	if bad {
		status = f.srcStatus
	}
	sameStatus := curGood && isGood(status) || cur != nil && cur.Status == status
	if sameStatus && cur.Value != nil && variantEqual(cur.Value, good) {
		if f.goodTS.after(f.writtenTS) {
			f.written, f.writtenTS = good, f.goodTS
		}
		return nil
	}
	if ms.both() {
		f.addEcho(good, ts)
	}
	dv := valueDV(good, ts)
	if status != ua.StatusOK {
		dv.EncodingMask |= ua.DataValueStatusCode
		dv.Status = status
	}
	return dv
}

// observe records the flow's state s as another node (the active of a
// pair) reported it: s.Value with source timestamp s.SourceTS was written
// to the flow's target (or, held, is held there). The cache never goes
// back to an older value, and a takeover does not write it again. The
// source's status reported with it is this node's knowledge of the
// status while its own session of the source delivers nothing: the
// stream comes in the active's order, so a later report is the newer
// one, but one older than this node's own last reading is not taken.
func (f *flow) observe(s FlowState) {
	ms := f.ms
	ms.mu.Lock()
	defer ms.mu.Unlock()
	v, ts := s.Value, toStamp(s.SourceTS)
	if s.StatusKnown && !f.srcLive && (f.statusPeer || !f.statusKnown || !ts.before(f.statusTS)) {
		f.srcStatus, f.statusTS, f.statusKnown, f.statusPeer = s.Status, ts, true, true
	}
	if ts.after(f.writtenTS) || f.writtenTS.sub(ts) > ms.tol {
		f.written, f.writtenTS = v, ts
	}
	// The active streams in its source session's order: a value older
	// than the cache beyond the clock skew means the source's clock
	// stepped back, and the peer's value is the newer one.
	if f.good == nil || ts.after(f.goodTS) || f.goodTS.sub(ts) > ms.tol {
		ms.seq++
		f.good, f.goodTS, f.goodSeq, f.goodPeer = v, ts, ms.seq, true
	}
}

// wrote records dv as confirmed written to the target. A flow bad from a
// refused write recovers.
func (f *flow) wrote(dv *ua.DataValue) {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	// One Write per node is in flight: they settle in the order sent.
	f.written, f.writtenTS = dv.Value, toStamp(dv.SourceTimestamp)
	if f.state == StateBad && dv.Value != nil {
		f.setState(StateOK, "")
	}
}

// writeRefused records a Write the target refused for this node with a
// bad status: an unknown node quarantines the target side (retried); a
// type mismatch too, and the retry reads the target's type again (a PLC
// download may have changed it); anything else makes the flow bad until
// a write succeeds.
func (f *flow) writeRefused(code ua.StatusCode) {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	switch code {
	case ua.StatusBadNodeIDUnknown, ua.StatusBadNodeIDInvalid:
		f.quarantine(sideTarget, "target: "+statusName(code))
		return
	case ua.StatusBadTypeMismatch:
		f.quarantine(sideTarget, "target: "+statusName(code)+" (its type is read again)")
		return
	}
	f.setState(StateBad, "write refused: "+statusName(code))
}

// sourceMemberChanged records that the source's new session is another
// member of a redundant server set (called after sourceResolved): its
// first value is taken only if it is not older than the cached one.
func (f *flow) sourceMemberChanged() {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	f.memberChanged = true
}

// sourceResolved records the source node resolved on a new session of
// the source server (err: it does not resolve, quarantined).
func (f *flow) sourceResolved(nid *ua.NodeID, err error) {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	// A new session: its order starts afresh, and the cache is from an
	// earlier one.
	f.sessSeen, f.sessTS, f.srcLive = false, 0, false
	if err != nil {
		f.srcOK = false
		if f.state != StateDisabled {
			f.quarantine(sideSource, "source: "+err.Error())
		}
		return
	}
	f.srcOK, f.srcNS = true, nid.Namespace()
}

// sourceLost records that the source server's session ended: a flow
// that had values is stale until the next session delivers one.
func (f *flow) sourceLost(why string) {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	f.srcLive = false // the active's reports of the source's status count now
	switch f.state {
	case StateOK, StateHeld, StateClock:
		f.setState(StateStale, why)
	}
}

// targetResolved records the target node resolved on a new session of
// the target server (err: quarantined). It reports whether the target's
// type must be read (targetTyped).
func (f *flow) targetResolved(nid *ua.NodeID, err error) (needType bool) {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	if err != nil {
		f.dstID.Store(nil)
		if f.state != StateDisabled {
			f.quarantine(sideTarget, "target: "+err.Error())
		}
		return false
	}
	f.dstID.Store(nid)
	f.typeKnown = false   // read on every session
	f.verify = unverified // a new session: what the target holds is read again
	return true
}

// targetUnreadable records that the target's DataType could not be read.
func (f *flow) targetUnreadable(code ua.StatusCode) {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	f.quarantine(sideTarget, "target: "+statusName(code))
}

// targetTyped installs the transform tr for the target's type (made
// for it: the type itself is not kept; err: no transform can serve it,
// the flow is bad). A target quarantine ends; a raw value kept
// meanwhile is converted.
func (f *flow) targetTyped(tr *transform, _ valueType, err error) {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	if err != nil {
		f.setState(StateBad, err.Error())
		return
	}
	if f.state == StateQuarantined && f.qside == sideTarget {
		f.setState(StatePending, "")
	}
	f.setTransform(tr)
}

// monitored records the outcome of creating the source's monitored item.
func (f *flow) monitored(code ua.StatusCode) {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	if code != ua.StatusOK && !isGood(code) {
		f.quarantine(sideSource, "source: "+statusName(code))
		return
	}
	if f.state == StateQuarantined && f.qside == sideSource || f.state == StatePending {
		f.setState(StatePending, "waiting for the first value")
		if f.good != nil {
			f.setState(StateOK, "")
		}
	}
}

// targetType returns the built-in type of the values the flow writes:
// its transform's, from the target's type read on its current session or
// the mapping's convert.to (known false: not read yet, or any type).
func (f *flow) targetType() (ua.TypeID, bool) {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	if !f.typeKnown || f.tr == nil {
		return 0, false
	}
	return f.tr.dst, f.tr.dst != 0
}

// retire ends the flow for good: a live config change removed its
// mapping or replaced it with a new flow (live.go). It takes no value
// from then on (accept ignores a disabled flow) and its writer slot is
// gone or the new flow's.
func (f *flow) retire(why string) {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	f.setState(StateDisabled, why)
}

// moveTo records the mapping's new index in the config after a live
// change.
func (ms *mstate) moveTo(i int) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.index = i
}

// setClockSkew sets the mapping's clock skew tolerance (a live change of
// the engine's clock_skew); the next value is judged by it.
func (ms *mstate) setClockSkew(tol time.Duration) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.tol = tol
}

// monitorable reports whether the flow's source node is to be
// monitored: resolved and not disabled.
func (f *flow) monitorable() bool {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	return f.state != StateDisabled && f.srcOK
}

// node returns the source (dst false) or target node resolved on the
// current session of its server (nil: unresolved).
func (f *flow) node(dst bool) *ua.NodeID {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	if dst {
		return f.dstID.Load()
	}
	if !f.srcOK {
		return nil
	}
	// Validated by New, resolved in srcNS by sourceResolved: no error.
	n, err := mapping.ParseNodeID(f.srcStr())
	if err != nil {
		return nil
	}
	nid, err := n.ResolveIndex(f.srcNS)
	if err != nil {
		return nil
	}
	return nid
}

// quarantinedOn returns the side the flow is quarantined on (sideNone:
// not quarantined).
func (f *flow) quarantinedOn() side {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	if f.state != StateQuarantined {
		return sideNone
	}
	return f.qside
}

// retryTarget prepares a target quarantine for a retry: the target's
// type is read again. It reports whether the flow is quarantined on its
// target.
func (f *flow) retryTarget() bool {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	if f.state != StateQuarantined || f.qside != sideTarget {
		return false
	}
	f.typeKnown = false
	return true
}

// appendStatus appends the status of ms's flows to out under ms's lock.
func (ms *mstate) appendStatus(out []MappingStatus) []MappingStatus {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for _, f := range []*flow{ms.fwd, ms.rev} {
		if f == nil {
			continue
		}
		out = append(out, MappingStatus{ID: ms.m.ID, Index: ms.index, Reverse: f.reverse,
			From: f.from.name, To: f.to.name, State: f.state, Reason: f.reason,
			Value: f.good, SourceTS: f.goodTS.time(), Status: f.srcStatus, Written: f.written, WrittenTS: f.writtenTS.time(),
			HeldSince: f.heldSince()})
	}
	return out
}

// countStates adds the states of ms's flows to n (indexed by State).
// An array, not a map: Stats counts every mapping, and at 100k mappings
// a map increment per flow made a poll of Stats cost milliseconds.
func (ms *mstate) countStates(n *[len(stateNames)]int) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if f := ms.fwd; f != nil && int(f.state) < len(n) {
		n[f.state]++
	}
	if f := ms.rev; f != nil && int(f.state) < len(n) {
		n[f.state]++
	}
}

// setTransform installs the transform for the destination's type and
// converts a raw value that arrived before the type was known. Caller
// holds ms.mu.
//
// The cache may already hold a value another node wrote (observe, on a
// standby): the raw source value replaces it unless it is older. Either
// way the flow is resolved once a source value has arrived — a source
// that never changes must not keep it pending (a pending flow keeps a
// standby from READY).
func (f *flow) setTransform(tr *transform) {
	f.tr, f.typeKnown = tr, true
	f.setBand()
	if f.lastSrc == nil {
		return
	}
	if f.good == nil || !f.lastSrcTS.before(f.goodTS) {
		out, err := tr.apply(f.lastSrc)
		if err != nil {
			f.setState(StateBad, err.Error())
			return
		}
		f.good, f.goodTS, f.goodSeq, f.goodPeer = out, f.lastSrcTS, f.srcSeq, false
	}
	if f.state == StatePending {
		f.setState(StateOK, "")
	}
}

// setEURange records the span of the source's EURange (ok false: it has
// none): a percent deadband without scaling is taken of it.
func (f *flow) setEURange(span float64, ok bool) {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	if !ok {
		span = 0
	}
	if span <= 0 && f.rare == nil {
		return
	}
	f.rarely().eu = span
	f.setBand()
}

// euSpan returns the span of the source's EURange (0: unknown).
func (f *flow) euSpan() float64 {
	f.ms.mu.Lock()
	defer f.ms.mu.Unlock()
	if f.rare == nil {
		return 0
	}
	return f.rare.eu
}

// setBand derives the flow's deadband transform from f.tr and the
// EURange. Caller holds ms.mu.
func (f *flow) setBand() {
	r := f.rare
	if r == nil {
		return
	}
	r.band = nil
	db := f.ms.m.Deadband
	if f.tr == nil || r.eu <= 0 || db == nil || db.Type != mapping.DeadbandPercent || f.ms.m.Scaling != nil {
		return
	}
	b := *f.tr
	b.deadband, b.dbAbs = true, db.Value/100*r.eu
	r.band = &b
}

// resolveSrc and resolveDst turn the flow's node strings (from the
// config; validated by New) into node ids of a session with the given
// namespace array. Parsed ids are not kept between sessions: at 100k
// mappings they would cost ~100 B each.
func (f *flow) resolveSrc(ns []string) (*ua.NodeID, error) { return resolveNode(f.srcStr(), ns) }
func (f *flow) resolveDst(ns []string) (*ua.NodeID, error) { return resolveNode(f.dstStr(), ns) }

func (f *flow) srcStr() string {
	if f.reverse {
		return f.ms.m.Target.Node
	}
	return f.ms.m.Source.Node
}

func (f *flow) dstStr() string {
	if f.reverse {
		return f.ms.m.Source.Node
	}
	return f.ms.m.Target.Node
}

func resolveNode(s string, ns []string) (*ua.NodeID, error) {
	n, err := mapping.ParseNodeID(s)
	if err != nil {
		return nil, err
	}
	return n.Resolve(ns)
}

// opposite returns the flow in the other direction of the same mapping
// (nil unless the mapping is both).
func (f *flow) opposite() *flow {
	if f.reverse {
		return f.ms.fwd
	}
	return f.ms.rev
}

// setState changes the flow's state and reason (not to quarantined:
// quarantine). Caller holds ms.mu.
func (f *flow) setState(s State, reason string) {
	f.state, f.reason, f.qside = s, reason, sideNone
}

// quarantine sets the flow quarantined on side sd and tells that side's
// server to retry it (retryQuarantined). Caller holds ms.mu.
func (f *flow) quarantine(sd side, reason string) {
	f.state, f.reason, f.qside = StateQuarantined, reason, sd
	if sd == sideSource {
		f.from.quarantines.Store(true)
	} else {
		f.to.quarantines.Store(true)
	}
}

// echo is a value a flow wrote: what may come back from that side.
type echo struct {
	v  *ua.Variant
	ts time.Time // the source timestamp written with it
	at time.Time // when it was queued
}

// echoWindow bounds how long a value-only match counts as an echo, for
// servers that replace the written SourceTimestamp with their own.
const echoWindow = 2 * time.Second

// addEcho remembers a value written to dst, oldest first; at most four
// are kept. Caller holds ms.mu.
func (f *flow) addEcho(v *ua.Variant, ts time.Time) {
	if f.echoes == nil {
		f.echoes = new([4]echo)
	}
	if int(f.nEcho) == len(f.echoes) {
		copy(f.echoes[:], f.echoes[1:])
		f.nEcho--
	}
	f.echoes[f.nEcho] = echo{v: v, ts: ts, at: time.Now()}
	f.nEcho++
}

// takeEcho reports whether v (with source timestamp ts), read back from
// dst, is the echo of a value this flow wrote: the same value with the
// same source timestamp (servers that keep the written timestamp), or the
// same value within echoWindow of writing it (servers that stamp their
// own). A hit forgets that value and every older one; a miss forgets
// nothing, since our writes may still be on their way. Caller holds ms.mu.
func (f *flow) takeEcho(v *ua.Variant, ts time.Time) bool {
	if f.nEcho == 0 {
		return false
	}
	hit := -1
	for i := int(f.nEcho) - 1; i >= 0 && hit < 0; i-- {
		if f.echoes[i].ts.Equal(ts) && variantEqual(f.echoes[i].v, v) {
			hit = i
		}
	}
	for i := int(f.nEcho) - 1; i >= 0 && hit < 0; i-- {
		if time.Since(f.echoes[i].at) < echoWindow && variantEqual(f.echoes[i].v, v) {
			hit = i
		}
	}
	if hit < 0 {
		return false
	}
	n := copy(f.echoes[:], f.echoes[hit+1:f.nEcho])
	for j := n; j < int(f.nEcho); j++ {
		f.echoes[j] = echo{}
	}
	f.nEcho = uint8(n)
	return true
}

// isGood reports a Good status code (Part 4, 7.34.1: the top two bits
// are 00).
func isGood(c ua.StatusCode) bool { return uint32(c)>>30 == 0 }
