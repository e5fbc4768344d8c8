package bridge

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
)

// The value rules of a flow, table-tested on the state machine alone: no
// server, no engine, no goroutine. Each case feeds values to the forward
// (A → B) or reverse (B → A) flow of one mapping and checks the verdict,
// what would be written, and the flow's state.

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// at is t0 plus n milliseconds.
func at(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

// fixture is one mapping's flows, as the engine builds them.
type fixture struct {
	ms       *mstate
	fwd, rev *flow
	queueing atomic.Bool
}

// newFixture builds the flows of m (both: a bidirectional mapping) with
// targets of type dst (0: not known yet).
func newFixture(tb testing.TB, m *mapping.Mapping, both bool, dst ua.TypeID) *fixture {
	tb.Helper()
	if m.ID == "" {
		m.ID = "m"
	}
	a, b := &conn{name: "a"}, &conn{name: "b"}
	x := &fixture{ms: &mstate{m: m, tol: mapping.DefaultEngine().ClockSkew}}
	x.fwd = &flow{ms: x.ms, from: a, to: b}
	x.ms.fwd = x.fwd
	if both {
		x.rev = &flow{ms: x.ms, reverse: true, from: b, to: a, handle: 1}
		x.ms.rev = x.rev
	}
	x.queueing.Store(true)
	if dst != 0 {
		for _, f := range []*flow{x.fwd, x.rev} {
			if f != nil {
				vt := valueType{id: dst, valueRank: -1}
				tr, err := newTransform(m, f.reverse, vt)
				f.targetTyped(tr, vt, err)
			}
		}
	}
	return x
}

// state returns the state of the flow in direction rev.
func (x *fixture) state(rev bool) State {
	for _, st := range x.ms.appendStatus(nil) {
		if st.Reverse == rev {
			return st.State
		}
	}
	return -1
}

// in is one value delivered to a flow and what must come of it.
type in struct {
	rev    bool          // to the reverse flow (a value read from B)
	v      any           // nil: a null value
	status ua.StatusCode // 0: Good
	src    time.Time     // SourceTimestamp (zero: none)
	srv    time.Time     // ServerTimestamp (zero: none)
	queue  *bool         // nil: queueing (active)
	// session: the source's session was rebuilt before this value.
	session bool
	// peer: the value comes from the peer stream (observe), not the
	// source, with status as the source's; noStatus: from a previous
	// release's active, which streams no status.
	peer, noStatus bool

	want       verdict
	write      any           // value written to the flow's target (nil: none)
	writeTS    time.Time     // its source timestamp (zero: not checked)
	writeCode  ua.StatusCode // its status (0: Good)
	repair     any           // value written back to the flow's source (nil: none)
	state      State         // the flow's state after (-1: not checked)
	checkState bool
}

var no = new(bool)

func dv(v any, status ua.StatusCode, src, srv time.Time) *ua.DataValue {
	d := &ua.DataValue{Status: status, SourceTimestamp: src, ServerTimestamp: srv}
	if v != nil {
		d.Value = ua.MustVariant(v)
		d.EncodingMask |= ua.DataValueValue
	}
	if status != 0 {
		d.EncodingMask |= ua.DataValueStatusCode
	}
	return d
}

func TestFlowValueRules(t *testing.T) {
	now := at(100000) // the receive time of every value
	double := func() *mapping.Mapping { return &mapping.Mapping{} }
	for _, tc := range []struct {
		name string
		m    *mapping.Mapping
		both bool
		dst  ua.TypeID
		ins  []in
	}{
		// Ordering.
		{name: "newer values are written in turn", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(1), want: vAccepted, write: 1.0, writeTS: at(1), state: StateOK, checkState: true},
			{v: 2.0, src: at(2), want: vAccepted, write: 2.0, writeTS: at(2)},
		}},
		{name: "within a session an older timestamp is taken in the server's order", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{v: 2.0, src: at(2), want: vAccepted, write: 2.0},
			{v: 1.0, src: at(1), want: vAccepted, write: 1.0, state: StateOK, checkState: true},
			{v: 3.0, src: at(3), want: vAccepted, write: 3.0},
		}},
		// Clocks (item 1 of issue 14): never frozen, always visible.
		{name: "a source clock stepping back 1 h: values flow, state clock", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(90000), want: vAccepted, write: 1.0},
			{v: 2.0, src: at(90000 - 3600000), want: vAccepted, write: 2.0, state: StateClock, checkState: true},
			{v: 3.0, src: at(90001 - 3600000), want: vAccepted, write: 3.0, state: StateClock, checkState: true},
		}},
		{name: "a source clock 1 h ahead: values flow, state clock", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(100000 + 3600000), want: vAccepted, write: 1.0, state: StateClock, checkState: true},
			{v: 2.0, src: at(100001 + 3600000), want: vAccepted, write: 2.0},
		}},
		{name: "a step back within the skew tolerance is not a clock fault", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(90000), want: vAccepted, write: 1.0},
			{v: 2.0, src: at(89000), want: vAccepted, write: 2.0, state: StateOK, checkState: true},
		}},
		{name: "a new session: a cached value newer within the tolerance wins", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(90000), want: vAccepted, write: 1.0},
			{session: true, v: 0.5, src: at(89000), want: vStale, state: StateOK, checkState: true},
			{v: 2.0, src: at(89500), want: vAccepted, write: 2.0},
		}},
		{name: "a new session after the source clock stepped back 1 h: taken, state clock", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(90000), want: vAccepted, write: 1.0},
			{session: true, v: 2.0, src: at(90000 - 3600000), want: vAccepted, write: 2.0, state: StateClock, checkState: true},
		}},
		{name: "a peer's cached value: a fresh one within the tolerance older is stale", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{peer: true, v: 3.0, src: at(90000)},
			{v: 2.0, src: at(89000), queue: no, want: vStale},
			{v: 3.0, src: at(90000), queue: no, want: vAccepted},  // the standby's own session catches up
			{v: 4.0, src: at(89999), want: vAccepted, write: 4.0}, // now in the session's order
		}},
		{name: "a peer's cached value: the source clock stepped back 1 h: the fresh one is taken", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{peer: true, v: 3.0, src: at(90000)},
			{v: 2.0, src: at(90000 - 3600000), want: vAccepted, write: 2.0, state: StateClock, checkState: true},
		}},
		{name: "same timestamp, same value: unchanged", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{v: 2.0, src: at(2), want: vAccepted, write: 2.0},
			{v: 2.0, src: at(2), want: vUnchanged},
		}},
		{name: "standby caches without writing", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(1), queue: no, want: vAccepted, state: StateOK, checkState: true},
			{v: 1.0, src: at(2), want: vUnchanged},
		}},
		// The one timestamp rule: source, else server, else receive time.
		{name: "no source timestamp: the server's", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, srv: at(5), want: vAccepted, write: 1.0, writeTS: at(5)},
			{v: 2.0, srv: at(4), want: vAccepted, write: 2.0, writeTS: at(4)},
		}},
		{name: "no timestamps: the receive time", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, want: vAccepted, write: 1.0, writeTS: now},
		}},
		{name: "source timestamp before the server's", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(3), srv: at(9), want: vAccepted, write: 1.0, writeTS: at(3)},
		}},
		// Echo: our write coming back from the other side of a both mapping.
		{name: "echo with the written timestamp is not written back", m: double(), both: true, dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(1), want: vAccepted, write: 1.0},
			{rev: true, v: 1.0, src: at(1), want: vEcho},
			{rev: true, v: 5.0, src: at(2), want: vAccepted, write: 5.0},
		}},
		{name: "echo from a server that stamps its own time", m: double(), both: true, dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(1), want: vAccepted, write: 1.0},
			{rev: true, v: 1.0, src: at(40), want: vEcho},
		}},
		// Conflict on a both mapping: newest wins on both sides.
		{name: "a change older beyond the tolerance while our write is on its way loses", m: double(), both: true, dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(5000), want: vAccepted, write: 1.0},
			{rev: true, v: 2.0, src: at(3), want: vStale, repair: 1.0}, // written again: B ends on 1 too
		}},
		{name: "a conflict within the tolerance: the later received wins on both sides", m: double(), both: true, dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(5), want: vAccepted, write: 1.0},
			{rev: true, v: 2.0, src: at(3), want: vAccepted, write: 2.0},
			{rev: true, v: 1.0, src: at(5), want: vConflictLost, repair: 2.0}, // our write of 1 landed on B after
		}},
		{name: "both servers 5 min apart: changes flow both ways, the skew is shown", m: double(), both: true, dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(99000), want: vAccepted, write: 1.0},
			{rev: true, v: 1.0, src: at(99000), want: vEcho, state: StateOK, checkState: true},
			{rev: true, v: 2.0, src: at(99000 - 300000), want: vAccepted, write: 2.0, state: StateClock, checkState: true},
			{v: 2.0, src: at(99000 - 300000), want: vEcho},
			{v: 3.0, src: at(99500), want: vAccepted, write: 3.0},
		}},
		// Issue 14 item 6: a first value that is an echo resolves the flow.
		{name: "both: a first value that is an echo leaves pending", m: double(), both: true, dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(1), want: vAccepted, write: 1.0},
			{rev: true, v: 1.0, src: at(1), want: vEcho, state: StateOK, checkState: true},
		}},
		{name: "our older write landed over a newer change: repaired", m: double(), both: true, dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(1), want: vAccepted, write: 1.0},                 // A changed: written to B
			{rev: true, v: 2.0, src: at(3), want: vAccepted, write: 2.0},      // B changed after: written to A
			{rev: true, v: 1.0, src: at(1), want: vConflictLost, repair: 2.0}, // then our write landed on B
		}},
		// Hold: Bad and Uncertain are never written as values.
		{name: "bad source holds the last good value", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(1), want: vAccepted, write: 1.0},
			{v: 0.0, status: ua.StatusBadSensorFailure, src: at(2), want: vBadSource, state: StateHeld, checkState: true},
			{v: 1.0, src: at(3), want: vAccepted, write: 1.0, state: StateOK, checkState: true}, // a status change is a change
			{v: 1.0, src: at(4), want: vUnchanged},
		}},
		{name: "uncertain source holds too", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(1), want: vAccepted, write: 1.0},
			{v: 7.0, status: ua.StatusUncertainLastUsableValue, src: at(2), want: vBadSource, state: StateHeld, checkState: true},
			{v: 7.0, src: at(3), want: vAccepted, write: 7.0, state: StateOK, checkState: true},
		}},
		{name: "on_bad write_status: last good value with the status", m: &mapping.Mapping{OnBad: mapping.WriteStatus}, dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(1), want: vAccepted, write: 1.0},
			{status: ua.StatusBadCommunicationError, src: at(2), want: vBadSource, write: 1.0, writeCode: ua.StatusBadCommunicationError, writeTS: at(2)},
			{status: ua.StatusBadCommunicationError, src: at(2), want: vBadSource},                            // no status change: nothing
			{v: 1.0, src: at(3), want: vAccepted, write: 1.0, writeCode: 0, state: StateOK, checkState: true}, // Bad→Good, same value
		}},
		{name: "on_bad write_status before any good value: nothing", m: &mapping.Mapping{OnBad: mapping.WriteStatus}, dst: ua.TypeIDDouble, ins: []in{
			{status: ua.StatusBadCommunicationError, src: at(2), want: vBadSource, state: StateHeld, checkState: true},
		}},
		// Quality (issue 14 item 3): the status is part of the value.
		{name: "on_bad write_status: another Bad code is a change", m: &mapping.Mapping{OnBad: mapping.WriteStatus}, dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(1), want: vAccepted, write: 1.0},
			{status: ua.StatusBadCommunicationError, src: at(2), want: vBadSource, write: 1.0, writeCode: ua.StatusBadCommunicationError},
			{status: ua.StatusBadSensorFailure, src: at(3), want: vBadSource, write: 1.0, writeCode: ua.StatusBadSensorFailure},
		}},
		{name: "a Good value after Bad passes the deadband", m: &mapping.Mapping{OnBad: mapping.WriteStatus,
			Deadband: &mapping.Deadband{Type: mapping.DeadbandAbsolute, Value: 5}}, dst: ua.TypeIDDouble, ins: []in{
			{v: 10.0, src: at(1), want: vAccepted, write: 10.0},
			{v: 10.0, status: ua.StatusBadSensorFailure, src: at(2), want: vBadSource, write: 10.0, writeCode: ua.StatusBadSensorFailure},
			{v: 11.0, src: at(3), want: vAccepted, write: 11.0, writeCode: 0},
			{v: 12.0, src: at(4), want: vUnchanged},
		}},
		{name: "the active reported Bad; the standby's own Good reading is a change", m: &mapping.Mapping{OnBad: mapping.WriteStatus}, dst: ua.TypeIDDouble, ins: []in{
			{peer: true, v: 1.0, status: ua.StatusBadSensorFailure, src: at(1)},
			{v: 1.0, src: at(2), want: vAccepted, write: 1.0, writeCode: 0},
		}},
		{name: "the active reported Bad; the standby's own Bad reading is no change", m: &mapping.Mapping{OnBad: mapping.WriteStatus}, dst: ua.TypeIDDouble, ins: []in{
			{peer: true, v: 1.0, status: ua.StatusBadSensorFailure, src: at(1)},
			{status: ua.StatusBadSensorFailure, src: at(2), want: vBadSource, state: StateHeld, checkState: true},
		}},
		// Deadband (client side, on source values).
		{name: "absolute deadband", m: &mapping.Mapping{Deadband: &mapping.Deadband{Type: mapping.DeadbandAbsolute, Value: 0.5}}, dst: ua.TypeIDDouble, ins: []in{
			{v: 10.0, src: at(1), want: vAccepted, write: 10.0},
			{v: 10.3, src: at(2), want: vUnchanged},
			{v: 10.45, src: at(3), want: vUnchanged}, // against the last accepted 10, not 10.3
			{v: 10.6, src: at(4), want: vAccepted, write: 10.6},
		}},
		// Conversion decisions.
		{name: "a value that does not fit makes the flow bad, the next good one heals it",
			m: &mapping.Mapping{Convert: &mapping.Conversion{Overflow: mapping.Reject}}, dst: ua.TypeIDInt16, ins: []in{
				{v: 40000.0, src: at(1), want: vConvError, state: StateBad, checkState: true},
				{v: 5.0, src: at(2), want: vAccepted, write: int16(5), state: StateOK, checkState: true},
			}},
		{name: "clamped overflow", m: &mapping.Mapping{Convert: &mapping.Conversion{Overflow: mapping.Clamp}}, dst: ua.TypeIDInt16, ins: []in{
			{v: 40000.0, src: at(1), want: vAccepted, write: int16(32767)},
		}},
		{name: "a fraction into an integer is rejected by default", m: &mapping.Mapping{}, dst: ua.TypeIDInt32, ins: []in{
			{v: 2.5, src: at(1), want: vConvError, state: StateBad, checkState: true},
		}},
		{name: "before the target type is known the raw value is kept", m: double(), dst: 0, ins: []in{
			{v: 1.0, src: at(1), want: vNoTargetType, state: StatePending, checkState: true},
			{v: 2.0, src: at(2), want: vNoTargetType},
		}},
		// Nothing to do.
		{name: "a null value is ignored", m: double(), dst: ua.TypeIDDouble, ins: []in{
			{v: nil, src: at(1), want: vIgnored},
		}},
		{name: "a disabled mapping ignores everything", m: &mapping.Mapping{Enabled: new(bool)}, dst: ua.TypeIDDouble, ins: []in{
			{v: 1.0, src: at(1), want: vIgnored},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newFixture(t, tc.m, tc.both, tc.dst)
			if !tc.m.IsEnabled() {
				x.fwd.state = StateDisabled
			}
			for i, s := range tc.ins {
				f := x.fwd
				if s.rev {
					f = x.rev
				}
				x.queueing.Store(s.queue == nil || *s.queue)
				if s.session {
					f.sourceResolved(ua.NewNumericNodeID(1, 1), nil)
				}
				if s.peer {
					f.observe(FlowState{Value: ua.MustVariant(s.v), SourceTS: s.src, Status: s.status, StatusKnown: !s.noStatus})
					continue
				}
				write, repair, v := f.accept(dv(s.v, s.status, s.src, s.srv), now, &x.queueing)
				if v != s.want {
					t.Errorf("value %d (%v): verdict %v, want %v", i, s.v, v, s.want)
				}
				checkDV(t, i, "write", write, s.write, s.writeTS, s.writeCode)
				checkDV(t, i, "repair", repair, s.repair, time.Time{}, 0)
				if s.checkState {
					if st := x.state(s.rev); st != s.state {
						t.Errorf("value %d (%v): state %v, want %v", i, s.v, st, s.state)
					}
				}
			}
		})
	}
}

func checkDV(t *testing.T, i int, what string, got *ua.DataValue, want any, ts time.Time, code ua.StatusCode) {
	t.Helper()
	switch {
	case want == nil && got == nil:
	case want == nil:
		t.Errorf("value %d: %s %v, want none", i, what, got.Value.Value())
	case got == nil:
		t.Errorf("value %d: no %s, want %v", i, what, want)
	case got.Value == nil || got.Value.Value() != want:
		t.Errorf("value %d: %s %#v, want %#v", i, what, got.Value.Value(), want)
	case !ts.IsZero() && !got.SourceTimestamp.Equal(ts):
		t.Errorf("value %d: %s source timestamp %v, want %v", i, what, got.SourceTimestamp, ts)
	case got.Status != code:
		t.Errorf("value %d: %s status %v, want %v", i, what, got.Status, code)
	}
}

// TestFlowTargetTypeArrives: the raw value kept before the target type
// was known is converted and resolves the flow when the type arrives.
func TestFlowTargetTypeArrives(t *testing.T) {
	m := &mapping.Mapping{Convert: &mapping.Conversion{Rounding: mapping.RoundNearest}}
	x := newFixture(t, m, false, 0)
	if _, _, v := x.fwd.accept(dv(2.6, 0, at(1), time.Time{}), at(2), &x.queueing); v != vNoTargetType {
		t.Fatalf("verdict %v", v)
	}
	vt := valueType{id: ua.TypeIDInt32, valueRank: -1}
	tr, err := newTransform(m, false, vt)
	if err != nil {
		t.Fatal(err)
	}
	x.fwd.targetTyped(tr, vt, nil)
	st := x.ms.appendStatus(nil)[0]
	if st.State != StateOK || st.Value == nil || st.Value.Value() != int32(3) || !st.SourceTS.Equal(at(1)) {
		t.Fatalf("after the type arrived: %v %v at %v, want ok 3 at %v", st.State, st.Value, st.SourceTS, at(1))
	}
	// The resync (reconcile) writes it where the target differs.
	if w := x.fwd.reconcileWith(dv(int32(0), 0, at(0), time.Time{}), true); w == nil || w.Value.Value() != int32(3) {
		t.Fatalf("reconcile wrote %v, want 3", w)
	}
}

// TestFlowReconcile: what a flow writes when the gate opens or its
// target reconnects, given the target's current value.
func TestFlowReconcile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		both    bool
		cached  any // last good value at t1 (nil: none)
		target  *ua.DataValue
		want    any // written (nil: nothing)
		written bool
		// onBad and srcBad: the mapping's on_bad and a Bad status read
		// from the source after the cached value.
		onBad    mapping.OnBad
		srcBad   ua.StatusCode
		wantCode ua.StatusCode
		lost     bool // the source's session ended (stale)
		// peer: the cached value was reported by the active (observe), in
		// turn with each status of peerCodes (0: Good), and this node's own
		// session of the source delivered nothing (noStatus: an active of
		// the previous release, which streams none); srcGood: then this
		// node's own session reads the source Good.
		peer      bool
		peerCodes []ua.StatusCode
		noStatus  bool
		srcGood   bool
	}{
		{name: "nothing cached: nothing", target: dv(1.0, 0, at(0), time.Time{})},
		{name: "target differs: the last good value", cached: 2.0, target: dv(1.0, 0, at(0), time.Time{}), want: 2.0},
		{name: "target unreadable: the last good value", cached: 2.0, want: 2.0},
		{name: "target bad: the last good value", cached: 2.0, target: dv(2.0, ua.StatusBadNotReadable, at(0), time.Time{}), want: 2.0},
		{name: "target equal: recorded as written", cached: 2.0, target: dv(2.0, 0, at(0), time.Time{}), written: true},
		{name: "both, target newer: it flows the other way", both: true, cached: 2.0, target: dv(1.0, 0, at(5), time.Time{})},
		{name: "both, target older: the last good value", both: true, cached: 2.0, target: dv(1.0, 0, at(0), time.Time{}), want: 2.0},
		// Quality (issue 14 item 3): never Good over a Bad source.
		{name: "write_status, source bad, target good: the status goes out", onBad: mapping.WriteStatus, srcBad: ua.StatusBadNoCommunication,
			cached: 2.0, target: dv(2.0, 0, at(0), time.Time{}), want: 2.0, wantCode: ua.StatusBadNoCommunication},
		{name: "write_status, source bad, target already bad: nothing", onBad: mapping.WriteStatus, srcBad: ua.StatusBadNoCommunication,
			cached: 2.0, target: dv(2.0, ua.StatusBadNoCommunication, at(0), time.Time{}), written: true},
		{name: "write_status, source good again, target bad: Good", onBad: mapping.WriteStatus,
			cached: 2.0, target: dv(2.0, ua.StatusBadNoCommunication, at(0), time.Time{}), want: 2.0},
		{name: "hold, source bad: the target holds the last good value", srcBad: ua.StatusBadNoCommunication,
			cached: 2.0, target: dv(2.0, 0, at(0), time.Time{}), written: true},
		{name: "source disconnected, target bad: never Good over it", onBad: mapping.WriteStatus, lost: true,
			cached: 2.0, target: dv(2.0, ua.StatusBadNoCommunication, at(0), time.Time{})},
		{name: "write_status, target with another Bad code: the source's", onBad: mapping.WriteStatus, srcBad: ua.StatusBadNoCommunication,
			cached: 2.0, target: dv(2.0, ua.StatusBadSensorFailure, at(0), time.Time{}), want: 2.0, wantCode: ua.StatusBadNoCommunication},
		{name: "hold, source bad, target differs: the last good value marked Uncertain, never Good", srcBad: ua.StatusBadNoCommunication,
			cached: 2.0, target: dv(0.0, 0, at(0), time.Time{}), want: 2.0, wantCode: ua.StatusUncertainLastUsableValue},
		// The source's status as the active reported it (the peer stream).
		{name: "write_status, the active reported Bad, target Bad: nothing", onBad: mapping.WriteStatus, peer: true,
			peerCodes: []ua.StatusCode{ua.StatusBadNoCommunication}, cached: 2.0, target: dv(2.0, ua.StatusBadNoCommunication, at(0), time.Time{}), written: true},
		{name: "write_status, the active reported Bad, target Good: the status goes out", onBad: mapping.WriteStatus, peer: true,
			peerCodes: []ua.StatusCode{ua.StatusBadNoCommunication}, cached: 2.0, target: dv(2.0, 0, at(0), time.Time{}), want: 2.0, wantCode: ua.StatusBadNoCommunication},
		{name: "write_status, the active reported Bad then Good (same value), target Bad: Good", onBad: mapping.WriteStatus, peer: true,
			peerCodes: []ua.StatusCode{ua.StatusBadNoCommunication, 0}, cached: 2.0, target: dv(2.0, ua.StatusBadNoCommunication, at(0), time.Time{}), want: 2.0},
		{name: "write_status, the active reported Bad, this node reads Good since: Good", onBad: mapping.WriteStatus, peer: true, srcGood: true,
			peerCodes: []ua.StatusCode{ua.StatusBadNoCommunication}, cached: 2.0, target: dv(2.0, ua.StatusBadNoCommunication, at(0), time.Time{}), want: 2.0},
		{name: "hold, the active reported Bad, target holds the value: nothing", peer: true,
			peerCodes: []ua.StatusCode{ua.StatusBadNoCommunication}, cached: 2.0, target: dv(2.0, 0, at(0), time.Time{}), written: true},
		{name: "hold, the active reported Bad, target differs: marked Uncertain, never Good", peer: true,
			peerCodes: []ua.StatusCode{ua.StatusBadNoCommunication}, cached: 2.0, target: dv(0.0, 0, at(0), time.Time{}), want: 2.0, wantCode: ua.StatusUncertainLastUsableValue},
		{name: "previous-release active (no status), target Bad: never Good over it", onBad: mapping.WriteStatus, peer: true, noStatus: true,
			cached: 2.0, target: dv(2.0, ua.StatusBadNoCommunication, at(0), time.Time{})},
		{name: "previous-release active (no status), this node reads Bad: the status goes out", onBad: mapping.WriteStatus, peer: true, noStatus: true,
			srcBad: ua.StatusBadNoCommunication, cached: 2.0, target: dv(2.0, 0, at(0), time.Time{}), want: 2.0, wantCode: ua.StatusBadNoCommunication},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newFixture(t, &mapping.Mapping{OnBad: tc.onBad}, tc.both, ua.TypeIDDouble)
			switch {
			case tc.peer && tc.noStatus:
				x.fwd.observe(FlowState{Value: ua.MustVariant(tc.cached), SourceTS: at(1)})
			case tc.peer:
				for _, code := range tc.peerCodes {
					x.fwd.observe(FlowState{Value: ua.MustVariant(tc.cached), SourceTS: at(1), Status: code, StatusKnown: true})
				}
			case tc.cached != nil:
				x.fwd.accept(dv(tc.cached, 0, at(1), time.Time{}), at(1), nil)
			}
			if tc.srcGood {
				x.fwd.accept(dv(tc.cached, 0, at(1), time.Time{}), at(1), nil)
			}
			if tc.srcBad != 0 {
				x.fwd.accept(dv(nil, tc.srcBad, at(2), time.Time{}), at(2), nil)
			}
			if tc.lost {
				x.fwd.sourceLost("source server a disconnected")
			}
			got := x.fwd.reconcileWith(tc.target, true)
			checkDV(t, 0, "reconcile", got, tc.want, at(1), tc.wantCode)
			st := x.ms.appendStatus(nil)[0]
			if want := tc.written || tc.peer; want != (st.Written != nil) { // the active's write is recorded
				t.Errorf("written %v, want recorded %v", st.Written, want)
			}
		})
	}
}

// TestFlowHeldReport: an on_bad hold flow writes nothing when its source
// turns Bad, so the active reports the status to the pair once per
// status change (takeHeldReport); a standby reports nothing, and
// write_status reports through its write.
func TestFlowHeldReport(t *testing.T) {
	for _, tc := range []struct {
		name  string
		onBad mapping.OnBad
		queue bool
		codes []ua.StatusCode // Bad statuses read after the good value
		want  []bool          // a report after each
	}{
		{"hold, active: one report per status change", mapping.Hold, true,
			[]ua.StatusCode{ua.StatusBadSensorFailure, ua.StatusBadSensorFailure, ua.StatusBadNoCommunication}, []bool{true, false, true}},
		{"hold, standby: none", mapping.Hold, false, []ua.StatusCode{ua.StatusBadSensorFailure}, []bool{false}},
		{"write_status: none (the write reports it)", mapping.WriteStatus, true, []ua.StatusCode{ua.StatusBadSensorFailure}, []bool{false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newFixture(t, &mapping.Mapping{ID: "m1", OnBad: tc.onBad}, false, ua.TypeIDDouble)
			x.queueing.Store(tc.queue)
			x.fwd.accept(dv(3.0, 0, at(1), time.Time{}), at(1), &x.queueing)
			for i, code := range tc.codes {
				x.fwd.accept(dv(0.0, code, at(2+i), time.Time{}), at(2+i), &x.queueing)
				got, ok := x.fwd.takeHeldReport()
				if ok != tc.want[i] {
					t.Fatalf("status %d (%v): report %v, want %v", i, code, ok, tc.want[i])
				}
				want := FlowState{MappingID: "m1", Value: ua.MustVariant(3.0), SourceTS: at(2 + i), Status: code, StatusKnown: true, Held: true}
				if ok && (got.MappingID != want.MappingID || got.Value.Value() != 3.0 || !got.SourceTS.Equal(want.SourceTS) ||
					got.Status != code || !got.StatusKnown || !got.Held) {
					t.Fatalf("status %d: report %+v, want %+v", i, got, want)
				}
				if _, again := x.fwd.takeHeldReport(); again {
					t.Fatalf("status %d: reported twice", i)
				}
			}
		})
	}
}

// TestFlowQuarantineSides: a quarantine belongs to a side, typed; a
// retry only touches its own side, and no decision reads reason text.
func TestFlowQuarantineSides(t *testing.T) {
	x := newFixture(t, &mapping.Mapping{}, false, ua.TypeIDDouble)
	f := x.fwd
	vt := valueType{id: ua.TypeIDDouble, valueRank: -1}
	tr, _ := newTransform(x.ms.m, false, vt)

	f.monitored(ua.StatusBadNodeIDUnknown)
	if f.quarantinedOn() != sideSource || f.retryTarget() {
		t.Fatalf("rejected monitored item: quarantined on %v, retryTarget true", f.quarantinedOn())
	}
	f.targetTyped(tr, vt, nil) // the target is fine: the source quarantine stays
	if f.quarantinedOn() != sideSource {
		t.Fatalf("a target event ended a source quarantine")
	}
	f.monitored(ua.StatusOK)
	if st := x.state(false); st != StatePending {
		t.Fatalf("monitored after a source quarantine: %v, want pending (no value yet)", st)
	}

	f.writeRefused(ua.StatusBadNodeIDUnknown)
	if f.quarantinedOn() != sideTarget {
		t.Fatalf("unknown target node: quarantined on %v, want target", f.quarantinedOn())
	}
	f.monitored(ua.StatusOK) // a source event does not end a target quarantine
	if f.quarantinedOn() != sideTarget {
		t.Fatalf("a source event ended a target quarantine")
	}
	if !f.retryTarget() {
		t.Fatal("retryTarget false for a target quarantine")
	}
	if !f.targetResolved(ua.NewNumericNodeID(1, 1), nil) {
		t.Fatal("the target's type is not read again on retry")
	}
	f.targetTyped(tr, vt, nil)
	if st := x.state(false); st != StatePending {
		t.Fatalf("after the target type was read again: %v, want pending", st)
	}

	f.writeRefused(ua.StatusBadTypeMismatch)
	if f.quarantinedOn() != sideTarget || !f.retryTarget() {
		t.Fatalf("type mismatch on write: %v, want quarantined on the target with its type read again", x.state(false))
	}
	f.targetResolved(ua.NewNumericNodeID(1, 1), nil)
	f.targetTyped(tr, vt, nil)
	f.writeRefused(ua.StatusBadNotWritable)
	if st := x.state(false); st != StateBad || f.quarantinedOn() != sideNone {
		t.Fatalf("not writable: %v, want bad", st)
	}
	f.wrote(dv(1.0, 0, at(1), time.Time{}))
	if st := x.state(false); st != StateOK {
		t.Fatalf("after a successful write: %v, want ok", st)
	}
	f.sourceResolved(nil, errors.New("namespace gone"))
	if f.quarantinedOn() != sideSource || f.node(false) != nil {
		t.Fatal("an unresolvable source is not quarantined on the source side")
	}
}

// TestDeadbandFilter: the server-side deadband a mapping asks for (issue
// 14 item 4): percent of the scaling range, as an absolute deadband in
// the flow's source units, else the server's percent (of its EURange).
func TestDeadbandFilter(t *testing.T) {
	sc := &mapping.Scaling{RawLow: 0, RawHigh: 27648, EngLow: 0, EngHigh: 100}
	for _, tc := range []struct {
		name     string
		m        mapping.Mapping
		reverse  bool
		wantType ua.DeadbandType
		want     float64
	}{
		{"absolute", mapping.Mapping{Deadband: &mapping.Deadband{Type: mapping.DeadbandAbsolute, Value: 0.5}}, false, ua.DeadbandTypeAbsolute, 0.5},
		{"percent of the raw scaling range", mapping.Mapping{Scaling: sc, Deadband: &mapping.Deadband{Type: mapping.DeadbandPercent, Value: 1}}, false, ua.DeadbandTypeAbsolute, 276.48},
		{"percent of the engineering range (reverse)", mapping.Mapping{Scaling: sc, Deadband: &mapping.Deadband{Type: mapping.DeadbandPercent, Value: 1}}, true, ua.DeadbandTypeAbsolute, 1},
		{"percent without scaling: the server's EURange", mapping.Mapping{Deadband: &mapping.Deadband{Type: mapping.DeadbandPercent, Value: 1}}, false, ua.DeadbandTypePercent, 1},
	} {
		typ, v := deadbandFilter(&tc.m, tc.reverse)
		if typ != tc.wantType || v != tc.want {
			t.Errorf("%s: %v %g, want %v %g", tc.name, typ, v, tc.wantType, tc.want)
		}
	}
}

// TestPercentDeadbandOfEURange: without scaling, a percent deadband is
// taken of the source's EURange on the client side too; without one,
// every change passes.
func TestPercentDeadbandOfEURange(t *testing.T) {
	m := &mapping.Mapping{Deadband: &mapping.Deadband{Type: mapping.DeadbandPercent, Value: 1}}
	x := newFixture(t, m, false, ua.TypeIDDouble)
	feed := func(v float64, ms int) verdict {
		_, _, vd := x.fwd.accept(dv(v, 0, at(ms), time.Time{}), at(ms), &x.queueing)
		return vd
	}
	if feed(10, 1) != vAccepted || feed(10.5, 2) != vAccepted {
		t.Fatal("without an EURange a percent deadband must pass every change")
	}
	x.fwd.setEURange(200, true) // 1 % of 0..200: 2
	for _, c := range []struct {
		v    float64
		want verdict
	}{{11.5, vUnchanged}, {12.5, vUnchanged}, {12.6, vAccepted}, {13, vUnchanged}} {
		if got := feed(c.v, 3); got != c.want {
			t.Errorf("%g after the EURange 0..200: %v, want %v", c.v, got, c.want)
		}
	}
	// The band survives a new target type (a new transform).
	vt := valueType{id: ua.TypeIDDouble, valueRank: -1}
	tr, _ := newTransform(m, false, vt)
	x.fwd.targetTyped(tr, vt, nil)
	if got := feed(13.5, 4); got != vUnchanged {
		t.Errorf("after a new target type: %v, want unchanged", got)
	}
}

// TestFlowTargetType: the type a standby checks streamed values against
// is the type the flow writes: unknown before the target's type is read,
// then the target's (or convert.to's).
func TestFlowTargetType(t *testing.T) {
	for _, tc := range []struct {
		name  string
		m     *mapping.Mapping
		dst   ua.TypeID
		want  ua.TypeID
		known bool
	}{
		{"not read yet", &mapping.Mapping{}, 0, 0, false},
		{"the target's type", &mapping.Mapping{}, ua.TypeIDDouble, ua.TypeIDDouble, true},
		{"convert.to", &mapping.Mapping{Convert: &mapping.Conversion{To: "Float"}}, ua.TypeIDDouble, ua.TypeIDFloat, true},
	} {
		x := newFixture(t, tc.m, false, tc.dst)
		if got, known := x.fwd.targetType(); got != tc.want || known != tc.known {
			t.Errorf("%s: %v %v, want %v %v", tc.name, got, known, tc.want, tc.known)
		}
	}
}
