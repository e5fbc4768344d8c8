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
	for _, c := range e.connList() {
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
	for _, c := range e.connList() {
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

// reconcileDeadline bounds one writer's reconcile: its reads stop at the
// first error (readAll) and each has the request timeout, so twice that
// covers a server that answers slowly.
func reconcileDeadline(c *conn) time.Duration { return 2 * c.tmo().Request }
