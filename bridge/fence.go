package bridge

import (
	"context"
	"errors"
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
	for _, c := range e.conns {
		abort(c, c.live.Load())
		for _, m := range c.memberList() { // a server set: every member's session
			abort(c, m.live.Load())
		}
	}
	return n
}
