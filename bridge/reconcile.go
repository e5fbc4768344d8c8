package bridge

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// holdWriters holds every writer's values (writer.hold) when the gate
// opens, before accept may queue: each writer then sends only what its
// reconcile has compared. Called from roleLoop only.
func (e *Engine) holdWriters() {
	for _, c := range e.conns {
		c.w.hold()
	}
}

// reconcileWriters reconciles the targets of every writer when the gate
// opens under epoch, all writers in parallel, each within its own
// deadline (reconcileDeadline), so a slow or hung target server delays no
// other. A writer sends from the start of its reconcile: each batch of
// its targets is compared and released as soon as it has been read, and
// a node not compared yet sends nothing (holdWriters, writer.hold). A
// writer whose reconcile failed or ran out of time sends anyway (as
// before a reconcile existed for it: values that changed); its server's
// session is judged by its keep-alive, and a new session resyncs its
// targets. It returns, after every reconcile ended, the number of values
// queued. Called from roleLoop only, after holdWriters.
func (e *Engine) reconcileWriters(ctx context.Context, epoch uint64) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for _, c := range e.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			c.w.ready.Store(epoch + 1)
			rctx, cancel := context.WithTimeout(ctx, reconcileDeadline(c))
			n := 0
			if len(c.writeFlows()) > 0 {
				n = e.reconcile(rctx, c.writeFlows(), false, true)
			}
			late := rctx.Err() != nil
			cancel()
			c.w.unhold() // whatever the reconcile did not reach
			mu.Lock()
			total += n
			mu.Unlock()
			if late {
				c.log.Warn("reconcile ran out of time: writing without it", zap.Uint64("epoch", epoch),
					zap.Duration("after", time.Since(start)))
			}
		}()
	}
	wg.Wait()
	return total
}

// hold holds every slot of w until release: values are kept, not sent.
// Called when the gate opens, before accept may queue: nothing is sent
// to a node before the reconcile has compared it.
func (w *writer) hold() {
	w.mu.Lock()
	for i := range w.slots {
		w.slots[i].held = true
	}
	w.mu.Unlock()
}

// release ends the hold of slots, whose nodes the reconcile has
// compared, and enqueues vals, the values it found to differ.
func (w *writer) release(slots []int, vals []queuedValue) {
	w.enqueue(vals) // still held: taken with what waited in the slot
	w.mu.Lock()
	for _, i := range slots {
		w.slots[i].held = false
		w.requeueSlot(i)
	}
	w.mu.Unlock()
	w.wake()
}

// unhold ends the hold of every slot (the reconcile ended).
func (w *writer) unhold() {
	w.mu.Lock()
	for i := range w.slots {
		w.slots[i].held = false
		w.requeueSlot(i)
	}
	w.mu.Unlock()
	w.wake()
}

// sendNow sends one request of what is queued from the caller's
// goroutine and returns once it has been answered (or failed): the first
// values a reconcile compared are written before its other reads are
// sent, so they do not queue behind those at the server. It is a request
// like run's (counted in busy, behind the same fence in send), one beyond
// WritesInFlight at most; nothing is sent if the writer may not write or
// has nothing queued (run may have taken it already).
func (w *writer) sendNow(ctx context.Context) {
	cl := w.c.current()
	if cl == nil || !w.mayWrite() {
		return
	}
	batch, ids := w.take(w.c.writeBatch(cl), cl.writeLim)
	if len(batch) == 0 {
		return
	}
	w.busy.Add(1)
	defer func() { w.busy.Add(-1); w.wake() }()
	w.send(ctx, cl, batch, ids)
}

// reconcileDeadline bounds one writer's reconcile: its reads stop at the
// first error (readAll) and each has the request timeout, so twice that
// covers a server that answers slowly.
func reconcileDeadline(c *conn) time.Duration { return 2 * c.tmo().Request }
