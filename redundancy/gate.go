package redundancy

import (
	"sync"
	"time"
)

// Gate is the write permission the node hands to the mirror engine. It is
// open only while this node is the promoted active under an epoch AND
// holds a lease: a quorum confirmed its leadership less than Lease ago.
// The lease is measured on the monotonic clock, so a process frozen by
// SIGSTOP finds its lease expired when it wakes and writes nothing.
// Safe for concurrent use.
type Gate struct {
	mu         sync.Mutex
	open       bool
	epoch      uint64
	leaseUntil time.Time
	changed    chan struct{}
}

func newGate() *Gate { return &Gate{changed: make(chan struct{}, 1)} }

// Permit reports whether the engine may write now, and the epoch.
func (g *Gate) Permit() (uint64, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.epoch, g.open && time.Now().Before(g.leaseUntil)
}

// LeaseValid reports whether the lease holds now, open gate or not
// (bridge.LeaseGate).
func (g *Gate) LeaseValid() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return time.Now().Before(g.leaseUntil)
}

// Changed is signalled after every change of what Permit returns that
// the node can see (open, close, lease regained after a lapse).
func (g *Gate) Changed() <-chan struct{} { return g.changed }

func (g *Gate) signal() {
	select {
	case g.changed <- struct{}{}:
	default:
	}
}

// setOpen opens (under epoch) or closes the gate.
func (g *Gate) setOpen(open bool, epoch uint64) {
	g.mu.Lock()
	g.open = open
	if open {
		g.epoch = epoch
	}
	g.mu.Unlock()
	g.signal()
}

// extend records a quorum confirmation started at start.
func (g *Gate) extend(until time.Time) {
	g.mu.Lock()
	lapsed := !time.Now().Before(g.leaseUntil)
	if until.After(g.leaseUntil) {
		g.leaseUntil = until
	}
	open := g.open
	g.mu.Unlock()
	if lapsed && open {
		g.signal()
	}
}

// revoke ends the lease at once.
func (g *Gate) revoke() {
	g.mu.Lock()
	g.leaseUntil = time.Time{}
	g.mu.Unlock()
	g.signal()
}
