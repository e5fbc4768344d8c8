package bridge

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// The write fence: when this node's write lease lapses, no Write it sent
// may land later. The engine's lease watcher (Engine.fence, one goroutine
// owned by Run) closes the TCP socket of every session with a Write
// unanswered itself — abortively (SO_LINGER 0, dial.go: RST, the kernel's
// send queue dropped) and at once: not through the session's fault
// channel (its loop may sit in a keep-alive Read for the request
// timeout), and never after a graceful CloseSession (gopcua's Client.Close
// waits for that answer with the socket and its unsent bytes still open).
//
// Bytes that already left this host cannot be recalled; what the kernel
// still holds is gone once the socket is reset.

// LeaseWatchInterval is how often the lease watcher looks at the lease
// while the engine runs. A lease lapse is seen at most this long after it
// happens; a revocation the gate signals on Changed is seen at once.
const LeaseWatchInterval = 20 * time.Millisecond

// abortCloseBound bounds the close itself: one close(2) on a
// non-blocking socket, which resets it and drops its send queue without
// waiting for the peer.
const abortCloseBound = 5 * time.Millisecond

// LeaseAbortBound is the longest time from a lapse of the write lease
// (Gate.LeaseValid turning false) to the reset of every session socket
// with a Write unanswered, on a running process: LeaseWatchInterval +
// abortCloseBound. A new active must wait out the old active's lease plus
// this bound (plus a margin for the old host's scheduling) before its
// first write. A process that is stopped (SIGSTOP) or starved acts only
// when it runs again: the lease, measured on the monotonic clock, bounds
// that case (the redundancy layer's rule).
const LeaseAbortBound = LeaseWatchInterval + abortCloseBound

// errLeaseLapsed ends a session whose Write was unanswered when the
// write lease lapsed.
var errLeaseLapsed = errors.New("write lease lapsed with a Write unanswered: session socket reset so the request cannot land late")

// errWritesAborted ends a session whose Write was unanswered when
// AbortWrites was called.
var errWritesAborted = errors.New("writes in flight aborted: session socket reset so the request cannot land late")

// nudgeFence makes the lease watcher look at the lease now; it never
// blocks (a 1-buffered channel merges nudges).
func (e *Engine) nudgeFence() {
	select {
	case e.fenceWake <- struct{}{}:
	default:
	}
}

// fence is the lease watcher. It runs until ctx is done; Run owns it.
// Nothing it calls can block on the network: it reads atomics, asks the
// gate (cheap by the Gate contract) and closes sockets.
func (e *Engine) fence(ctx context.Context) {
	t := time.NewTicker(LeaseWatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.fenceWake:
		}
		if !e.gate.LeaseValid() {
			e.abortInFlight(errLeaseLapsed)
		}
	}
}

// AbortWrites resets at once the socket of every session with a Write
// request unanswered, as a lapse of the lease does (see LeaseAbortBound),
// and returns how many it reset. Values not yet sent stay queued; a
// closed gate keeps them from being sent. The redundancy layer calls it
// when a planned handover cannot wait for the Writes in flight to finish.
// Safe for concurrent use; it never blocks on the network.
func (e *Engine) AbortWrites() int { return e.abortInFlight(errWritesAborted) }

// abortInFlight resets every live session with a Write in flight.
func (e *Engine) abortInFlight(why error) int {
	n := 0
	abort := func(c *conn, s *session) {
		if s == nil || s.writes.Load() == 0 {
			return
		}
		if s.abort(why) {
			n++
			c.stats.leaseAborts.Add(1)
			c.log.Warn("session socket reset with a Write unanswered", zap.Error(why))
		}
	}
	for _, c := range e.connList() {
		abort(c, c.live.Load())
		for _, m := range c.memberList() { // a server set: every member's session
			abort(c, m.live.Load())
		}
	}
	return n
}

// leaseCtx is the context of a Write request: it asks the lease again
// each time it is asked whether it is done, and once it has seen the
// lease lapsed it stays done. gopcua (v0.9.0, uasc
// sendAsyncWithTimeout) asks ctx.Done() immediately before it signs and
// hands each chunk of a request to the socket: the last look at the lease
// we can get before the kernel. (A net.Conn that checks the lease in its
// own Write cannot be installed: uacp.Conn embeds a concrete
// *net.TCPConn.) A process frozen (SIGSTOP) or starved between the gate's
// last Permit and the send finds its lease lapsed there when it runs
// again — the lease is measured on the monotonic clock — and the request
// is not sent; only the signing and write(2) of one chunk remain between
// this check and the wire. The request fails with errLeaseLapsed and the
// writer resets the session.
type leaseCtx struct {
	context.Context
	gate   Gate
	lapsed atomic.Bool
}

// closedDone is the Done channel of a leaseCtx whose lease lapsed.
var closedDone = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func withLease(ctx context.Context, g Gate) *leaseCtx { return &leaseCtx{Context: ctx, gate: g} }

func (c *leaseCtx) expired() bool {
	if c.lapsed.Load() {
		return true
	}
	if !c.gate.LeaseValid() {
		c.lapsed.Store(true)
		return true
	}
	return false
}

// Done is closed once the lease has lapsed or the parent is done. Unlike
// the context contract, it returns another channel after a lapse: a
// leaseCtx is handed only to gopcua's Write, which selects on Done anew
// at each step.
func (c *leaseCtx) Done() <-chan struct{} {
	if c.expired() {
		return closedDone
	}
	return c.Context.Done()
}

// Err is errLeaseLapsed once the lease has lapsed, else the parent's.
func (c *leaseCtx) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if c.expired() {
		return errLeaseLapsed
	}
	return nil
}
