package redundancy

import (
	"sync"
	"time"
)

// Gate is the write permission the node hands to the mirror engine. It is
// open only while all of these hold:
//   - this node is the promoted active under an epoch (setOpen);
//   - it holds a lease: a quorum confirmed its leadership less than Lease
//     ago, measured on the monotonic clock, so a process frozen by SIGSTOP
//     finds its lease expired when it wakes and writes nothing;
//   - the fence wait after an unplanned takeover has passed (Config.FenceWait:
//     the old active provably cannot write any more);
//   - the replicated state names this node as the active of that epoch (a
//     node that has applied another node's promotion never writes, whatever
//     its local role says).
//
// Safe for concurrent use.
type Gate struct {
	mu         sync.Mutex
	open       bool
	epoch      uint64
	leaseUntil time.Time
	holdUntil  time.Time   // no write before (fence wait)
	hold       *time.Timer // signals Changed when holdUntil passes
	changed    chan struct{}

	self string
	// replicated returns the active and epoch of the replicated state;
	// nil: not checked. It must not call back into the gate.
	replicated func() (active string, epoch uint64)

	// Held gates (gatehold.go): a held gate is closed whatever its parent
	// says; subs are the Changed channels of the held gates made from
	// this one (guarded by mu).
	parent *Gate
	held   bool
	subs   map[*Gate]struct{}
}

func newGate(self string, replicated func() (string, uint64)) *Gate {
	return &Gate{changed: make(chan struct{}, 1), self: self, replicated: replicated}
}

// Permit reports whether the engine may write now, and the epoch.
func (g *Gate) Permit() (uint64, bool) {
	if g.parent != nil {
		return g.heldPermit()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	ok := g.open && now.Before(g.leaseUntil) && !now.Before(g.holdUntil) && g.recordedActive()
	return g.epoch, ok
}

// recordedActive: the replicated state names this node active under the
// gate's epoch. Called with g.mu held.
func (g *Gate) recordedActive() bool {
	if g.replicated == nil {
		return true
	}
	a, e := g.replicated()
	return a == g.self && e == g.epoch
}

// LeaseValid reports whether the lease holds now, open gate or not
// (part of bridge.Gate): the engine aborts the sessions with a Write in
// flight when it turns false. It is false too once the replicated state
// names another active or a later epoch than the one the gate was last
// opened under (epoch 0, never opened: only the lease counts).
func (g *Gate) LeaseValid() bool {
	if g.parent != nil {
		return g.parent.LeaseValid()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !time.Now().Before(g.leaseUntil) {
		return false
	}
	if g.replicated != nil && g.epoch != 0 {
		a, e := g.replicated()
		if e > g.epoch || (e == g.epoch && a != g.self) {
			return false
		}
	}
	return true
}

// Changed is signalled after every change of what Permit returns that
// the node can see (open, close, lease regained after a lapse, the fence
// wait over, the replicated state changed).
func (g *Gate) Changed() <-chan struct{} { return g.changed }

func (g *Gate) signal() {
	select {
	case g.changed <- struct{}{}:
	default:
	}
	g.signalHeld()
}

// setOpen opens (under epoch) or closes the gate, with no fence wait.
func (g *Gate) setOpen(open bool, epoch uint64) { g.openAfter(open, epoch, time.Time{}) }

// openAfter opens the gate under epoch but permits no write before
// notBefore (the fence wait), or closes it (open false).
func (g *Gate) openAfter(open bool, epoch uint64, notBefore time.Time) {
	g.mu.Lock()
	g.open = open
	if open {
		g.epoch = epoch
		g.holdUntil = notBefore
	}
	if g.hold != nil {
		g.hold.Stop()
		g.hold = nil
	}
	if d := time.Until(notBefore); open && d > 0 {
		// The timer's function only signals (never blocks): nothing to
		// wait for when it is stopped.
		g.hold = time.AfterFunc(d, g.signal)
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

// stop releases the fence-wait timer.
func (g *Gate) stop() {
	g.mu.Lock()
	if g.hold != nil {
		g.hold.Stop()
		g.hold = nil
	}
	g.mu.Unlock()
}
