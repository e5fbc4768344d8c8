package bridge

import (
	"sync"
)

// Gate decides whether the engine may write, and under which epoch. The
// redundancy layer implements it (the active node of a pair holds the
// gate open); the engine never imports that layer.
//
// Permit must be cheap and safe for concurrent use: the engine calls it
// before every Write request it sends. Changed returns a channel that
// receives (at least once, coalesced) after every change of what Permit
// returns; the engine re-reads Permit then. An engine whose gate opens
// under a new epoch reconciles the targets before it writes anything.
type Gate interface {
	Permit() (epoch uint64, ok bool)
	Changed() <-chan struct{}
}

// LeaseGate is the optional Gate capability of a lease: LeaseValid
// reports whether the write lease still holds now (it lapses on the clock,
// without a Changed signal). The engine's lease watcher uses it to reset,
// within LeaseAbortBound, the socket of every session whose Writes are
// still unanswered when the lease lapses (fence.go): the abortive close
// (dial.go) drops what the kernel has not sent yet, so a Write delayed by
// the network cannot land after a new active's. A gate merely closed
// under a valid lease (a planned handover) lets in-flight Writes finish.
// It must be cheap and safe for concurrent use.
type LeaseGate interface {
	Gate
	LeaseValid() bool
}

// ManualGate is a Gate set by hand: always open for a single node
// (`uamirror run` without a pair), or switched by tests. The zero value
// is closed with epoch 0. Safe for concurrent use.
type ManualGate struct {
	mu      sync.Mutex
	epoch   uint64
	open    bool
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
	return g.epoch, g.open
}

// Changed implements Gate.
func (g *ManualGate) Changed() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ch()
}
