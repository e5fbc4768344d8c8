package bridge

import (
	"sync"
	"time"

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
)

var stateNames = [...]string{"pending", "ok", "held", "bad", "quarantined", "disabled"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// flow is one direction of one mapping: values read from node src on
// server from, written to node dst on server to. A `both` mapping has two
// flows. Its handle (the monitored item's ClientHandle) is
// mappingIndex*2 + (1 if reverse). Immutable fields are set at build
// time; mutable ones live in the mapping's mstate under its lock.
type flow struct {
	handle  uint32
	ms      *mstate
	reverse bool
	from    *conn
	to      *conn
	// wslot is this flow's slot in the destination writer.
	wslot int
	// sampling and queue size of the monitored item, publishing interval
	// of its subscription.
	sampling   time.Duration
	queueSize  uint32
	publishing time.Duration

	// Mutable, guarded by ms.mu:
	srcID     *ua.NodeID // resolved on the source server's current session
	dstID     *ua.NodeID // resolved on the destination's current session
	dstType   valueType
	typeKnown bool
	tr        *transform
	state     State
	reason    string
	// lastSrc is the last accepted source value (the deadband baseline).
	lastSrc   *ua.Variant
	lastSrcTS time.Time
	// good is the last good transformed value and its source timestamp:
	// the last-good-value cache.
	good   *ua.Variant
	goodTS time.Time
	// written is the last value confirmed written to dst.
	written   *ua.Variant
	writtenTS time.Time
	// echoes are values this flow wrote to dst that may come back through
	// the opposite flow's subscription (both mappings only).
	echoes *[4]echo // allocated for both mappings only
	nEcho  int
	// repair is a value to write back to this flow's source (through the
	// opposite flow's writer) after a lost conflict; taken by dispatch.
	repair *ua.DataValue
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
	// lastTS is the newest source timestamp accepted in either
	// direction: a value older than it lost a conflict (both) or is stale.
	lastTS time.Time
}

// setTransform installs the transform for the destination type dst and
// converts a raw value that arrived before the type was known. Caller
// holds ms.mu.
//
// The cache may already hold a value another node wrote (Observe, on a
// standby): the raw source value replaces it unless it is older. Either
// way the flow is resolved once a source value has arrived — a source
// that never changes must not keep it pending (a pending flow keeps a
// standby from READY).
func (f *flow) setTransform(tr *transform, dst valueType) {
	f.tr, f.dstType, f.typeKnown = tr, dst, true
	if f.lastSrc == nil {
		return
	}
	if f.good == nil || !f.lastSrcTS.Before(f.goodTS) {
		out, err := tr.apply(f.lastSrc)
		if err != nil {
			f.setState(StateBad, err.Error())
			return
		}
		f.good, f.goodTS = out, f.lastSrcTS
		if f.lastSrcTS.After(f.ms.lastTS) {
			f.ms.lastTS = f.lastSrcTS
		}
	}
	if f.state == StatePending {
		f.setState(StateOK, "")
	}
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

// setState changes the flow's state and reason. Caller holds ms.mu.
func (f *flow) setState(s State, reason string) {
	f.state, f.reason = s, reason
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
	if f.nEcho == len(f.echoes) {
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
	for i := f.nEcho - 1; i >= 0 && hit < 0; i-- {
		if f.echoes[i].ts.Equal(ts) && variantEqual(f.echoes[i].v, v) {
			hit = i
		}
	}
	for i := f.nEcho - 1; i >= 0 && hit < 0; i-- {
		if time.Since(f.echoes[i].at) < echoWindow && variantEqual(f.echoes[i].v, v) {
			hit = i
		}
	}
	if hit < 0 {
		return false
	}
	n := copy(f.echoes[:], f.echoes[hit+1:f.nEcho])
	for j := n; j < f.nEcho; j++ {
		f.echoes[j] = echo{}
	}
	f.nEcho = n
	return true
}

// isGood reports a Good status code (Part 4, 7.34.1: the top two bits
// are 00).
func isGood(c ua.StatusCode) bool { return uint32(c)>>30 == 0 }
