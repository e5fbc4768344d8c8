package bridge

import (
	"context"
	"sync"
)

// Servers added and removed live (live.go). The engine's conns are a
// list replaced whole (Engine.conns, read through connList); each conn's
// goroutines (its supervisor and its writer) are started under Run's
// context and counted in Run's WaitGroup, so Run still returns only
// after every goroutine it owns has exited, and a conn can also be
// stopped and waited for alone.

// connRun is a conn's goroutines as Run (or a live change while Run
// runs) started them.
type connRun struct {
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// connList returns the servers' conns now, in config order (never
// modified: a live change stores a new slice).
func (e *Engine) connList() []*conn { return *e.conns.Load() }

// startConn starts c's supervisor and writer under Run, if Run runs and
// they are not running yet; otherwise Run starts them when it starts.
// Called under runMu.
func (e *Engine) startConn(c *conn) {
	if e.runCtx == nil || c.run != nil {
		return
	}
	ctx, stop := context.WithCancel(e.runCtx)
	r := &connRun{stop: stop}
	c.run = r
	r.wg.Add(2)
	runWG := e.runWG // read here, under runMu: Run clears the field when it ends
	runWG.Add(2)
	go func() { defer runWG.Done(); defer r.wg.Done(); c.supervise(ctx) }()
	go func() { defer runWG.Done(); defer r.wg.Done(); c.w.run(ctx) }()
}

// stopConn stops c's supervisor and writer and returns once they have
// exited (its session closed), or at once when they do not run. Its
// flows must be out of the engine's table already. Safe for concurrent
// use with Run.
func (e *Engine) stopConn(c *conn) {
	e.runMu.Lock()
	r := c.run
	c.run = nil
	e.runMu.Unlock()
	if r == nil {
		return
	}
	r.stop()
	r.wg.Wait()
}

// admitWriter lets the writer of a conn added live send under the gate's
// activation in force (roleLoop sets every writer's ready when the gate
// opens; the one it is about to open may not see the new conn): its
// ready follows writeEpoch until that stops changing under it. Sending
// still needs the gate open (Engine.mayWrite), and the conn's first
// session reconciles its targets before its writer takes the queue as
// after any reconnect.
func (e *Engine) admitWriter(w *writer) {
	for {
		ep := e.writeEpoch.Load()
		w.ready.Store(ep + 1)
		if e.writeEpoch.Load() == ep {
			return
		}
	}
}
