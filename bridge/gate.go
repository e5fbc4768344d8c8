package bridge

import (
	"sync"
)

// Gate decides whether the engine may write, and under which epoch, and
// holds the write fence. The redundancy layer implements it (the active
// node of a pair holds the gate open under a lease); the engine never
// imports that layer.
//
// Permit must be cheap and safe for concurrent use: the engine calls it
// before every Write request it sends. Changed returns a channel that
// receives (at least once, coalesced) after every change of what Permit
// returns; the engine re-reads Permit then. An engine whose gate opens
// under a new epoch reconciles the targets before it writes anything.
//
// LeaseValid reports whether the write lease still holds now; it may
// lapse on the clock, without a Changed signal. It must be cheap and safe
// for concurrent use: the engine's lease watcher calls it every
// LeaseWatchInterval and on every Changed signal. When it turns false the
// engine resets, within LeaseAbortBound, the socket of every session with
// a Write unanswered (fence.go): the kernel drops what it has not sent,
// so a Write delayed by the network cannot land after a new active's. A
// gate merely closed under a valid lease (a planned handover) lets
// in-flight Writes finish; Engine.AbortWrites ends them at once. A gate
// without a lease reports true.
//
// LeaseValid is part of Gate, not an optional capability, so that an
// implementation that drops or renames it no longer compiles as a Gate
// instead of silently fencing nothing.
type Gate interface {
	Permit() (epoch uint64, ok bool)
	Changed() <-chan struct{}
	LeaseValid() bool
}

// ManualGate is a Gate set by hand: always open for a single node
// (`uamirror run` without a pair), or switched by tests. The zero value
// is closed with epoch 0 and a valid lease. Safe for concurrent use.
type ManualGate struct {
	mu      sync.Mutex
	epoch   uint64
	open    bool
	lapsed  bool
	changed chan struct{}
}

// NewManualGate returns a gate in the given state.
func NewManualGate(open bool, epoch uint64) *ManualGate {
	g := &ManualGate{}
	g.Set(open, epoch)
	return g
}

func (g *ManualGate) ch() chan struct{} {
	if g.changed == nil {
		g.changed = make(chan struct{}, 1)
	}
	return g.changed
}

// Set changes the permission and wakes the engine.
func (g *ManualGate) Set(open bool, epoch uint64) {
	g.mu.Lock()
	g.open, g.epoch = open, epoch
	ch := g.ch()
	g.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Permit implements Gate.
func (g *ManualGate) Permit() (uint64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.epoch, g.open && !g.lapsed
}

// SetLease makes the lease valid or lapsed. A lapse closes the gate
// (Permit reports false) and makes the engine reset the sessions with a
// Write in flight. Unlike a clock lapse it is signalled on Changed.
func (g *ManualGate) SetLease(valid bool) {
	g.mu.Lock()
	g.lapsed = !valid
	ch := g.ch()
	g.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
}

// LeaseValid implements Gate: true unless SetLease(false).
func (g *ManualGate) LeaseValid() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.lapsed
}

// Changed implements Gate.
func (g *ManualGate) Changed() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ch()
}
