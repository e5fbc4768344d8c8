package bridge

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"
)

// queuedValue is a value bound for one writer slot.
type queuedValue struct {
	slot int
	dv   *ua.DataValue
}

// slot is the pending state of one destination node.
type slot struct {
	dv       *ua.DataValue // newest value not yet sent (nil: none)
	queued   bool          // slot index is in the queue
	inflight bool          // a Write for this node is outstanding
}

// writer sends values to one server: newest value per node, batched into
// Write requests, a few in flight, one in flight per node at most. It is
// owned by its conn; run is its only long-lived goroutine and waits for
// the request goroutines it starts.
type writer struct {
	c *conn

	mu    sync.Mutex
	slots []slot
	queue []int
	// noTimestamps is set once the server answered BadWriteNotSupported
	// to a value with a SourceTimestamp: from then on values only.
	noTimestamps bool

	wakeCh chan struct{}
	// busy counts Write requests in flight.
	busy atomic.Int32
}

func newWriter(c *conn) *writer {
	return &writer{c: c, slots: make([]slot, len(c.writeFlows)), wakeCh: make(chan struct{}, 1)}
}

// wake nudges run; it never blocks (a 1-buffered channel merges wakes).
func (w *writer) wake() {
	select {
	case w.wakeCh <- struct{}{}:
	default:
	}
}

// enqueue makes each value the pending value of its slot unless the slot
// already holds a newer one (by source timestamp).
func (w *writer) enqueue(vals []queuedValue) {
	if len(vals) == 0 {
		return
	}
	w.mu.Lock()
	for _, q := range vals {
		s := &w.slots[q.slot]
		if s.dv != nil && s.dv.SourceTimestamp.After(q.dv.SourceTimestamp) {
			continue
		}
		s.dv = q.dv
		if !s.queued && !s.inflight {
			s.queued = true
			w.queue = append(w.queue, q.slot)
		}
	}
	w.mu.Unlock()
	w.wake()
}

// clear drops every pending value (the gate closed).
func (w *writer) clear() {
	w.mu.Lock()
	for _, i := range w.queue {
		w.slots[i].queued = false
		w.slots[i].dv = nil
	}
	for i := range w.slots {
		w.slots[i].dv = nil
	}
	w.queue = w.queue[:0]
	w.mu.Unlock()
}

// pending reports the number of nodes with a value waiting.
func (w *writer) pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

func (w *writer) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	inflight := make(chan struct{}, w.c.e.tune.WritesInFlight)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wakeCh:
		}
		for {
			cl := w.c.current()
			if cl == nil || !w.c.e.mayWrite() {
				break
			}
			select {
			case inflight <- struct{}{}:
			case <-ctx.Done():
				return
			}
			batch, ids := w.take(cl.batchWrite)
			if len(batch) == 0 {
				<-inflight
				break
			}
			wg.Add(1)
			w.busy.Add(1)
			go func() {
				defer wg.Done()
				defer func() { w.busy.Add(-1); <-inflight; w.wake() }()
				w.send(ctx, cl, batch, ids)
			}()
		}
	}
}

// take removes up to max values from the queue and marks them in flight.
func (w *writer) take(max int) ([]queuedValue, []*ua.NodeID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.queue)
	if n > max {
		n = max
	}
	batch := make([]queuedValue, 0, n)
	ids := make([]*ua.NodeID, 0, n)
	k := 0
	for ; k < len(w.queue) && len(batch) < n; k++ {
		i := w.queue[k]
		s := &w.slots[i]
		s.queued = false
		if s.dv == nil {
			continue
		}
		id := w.c.writeFlows[i].node(true)
		if id == nil {
			// Not resolved on this session (quarantined): keep the value
			// for the resync after it resolves.
			continue
		}
		batch = append(batch, queuedValue{i, s.dv})
		ids = append(ids, id)
		s.dv = nil
		s.inflight = true
	}
	w.queue = append(w.queue[:0], w.queue[k:]...)
	return batch, ids
}

// send writes one batch and settles every item.
func (w *writer) send(ctx context.Context, cl *session, batch []queuedValue, ids []*ua.NodeID) {
	c := w.c
	w.mu.Lock()
	noTS := w.noTimestamps
	w.mu.Unlock()
	req := &ua.WriteRequest{NodesToWrite: make([]*ua.WriteValue, len(batch))}
	for i, q := range batch {
		dv := q.dv
		if noTS {
			dv = &ua.DataValue{EncodingMask: dv.EncodingMask &^ (ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp),
				Value: dv.Value, Status: dv.Status}
		}
		req.NodesToWrite[i] = &ua.WriteValue{NodeID: ids[i], AttributeID: ua.AttributeIDValue, Value: dv}
	}
	// Counted in flight before the last look at the gate: the lease
	// watcher (fence.go) either sees this Write or the lapse closed the
	// gate before it was sent.
	cl.writes.Add(1)
	defer cl.writes.Add(-1)
	// Last look at the fence, as close to the wire as we can get.
	if !c.e.mayWrite() {
		w.settle(batch, nil, errNotActive)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, c.timeouts.Request)
	start := time.Now()
	c.stats.writeRequests.Add(1) // counted as sent: an unanswered one too
	// The lease is asked once more just before the request goes to the
	// socket (fence.go, leaseCtx).
	res, err := cl.client.Write(withLease(rctx, c.e.gate), req)
	cancel()
	if err == nil && res != nil && len(res.Results) != len(batch) {
		err = errors.New("write response has a wrong number of results")
	}
	if err != nil {
		cl.writeFailed.Store(true)
		c.stats.writeErrors.Add(uint64(len(batch)))
		c.log.Debug("write request failed", zap.Int("values", len(batch)), zap.Error(err))
		w.settle(batch, nil, err)
		// The request may still sit in the send queue (a timeout on a
		// stalled link): reset the session now rather than when its loop
		// gets round to the fault (it may be inside a keep-alive Read).
		cl.abort(err)
		return
	}
	c.e.stats.writeLatency.observe(time.Since(start))
	w.settle(batch, res.Results, nil)
}

var errNotActive = errors.New("not active")

// settle ends the in-flight state of a batch: successes are recorded,
// values refused for a retryable reason go back unless a newer one is
// pending, others mark their flow bad.
func (w *writer) settle(batch []queuedValue, results []ua.StatusCode, reqErr error) {
	c := w.c
	now := time.Now()
	var retryNoTS bool
	type done struct {
		f  *flow
		dv *ua.DataValue
	}
	var ok []done
	w.mu.Lock()
	for i, q := range batch {
		s := &w.slots[q.slot]
		s.inflight = false
		code := ua.StatusBadCommunicationError
		if reqErr == nil {
			code = results[i]
		}
		switch {
		case code == ua.StatusOK || isGood(code):
			ok = append(ok, done{c.writeFlows[q.slot], q.dv})
		case code == ua.StatusBadWriteNotSupported && !w.noTimestamps:
			retryNoTS = true
			fallthrough
		case reqErr != nil:
			// Retry after reconnect or fix, unless a newer value waits
			// (or the gate closed: clear dropped everything then).
			if s.dv == nil && !errors.Is(reqErr, errNotActive) {
				s.dv = q.dv
			}
		default:
			c.writeFlows[q.slot].writeRefused(code)
			c.stats.writeErrors.Add(1)
		}
		if s.dv != nil && !s.queued && reqErr == nil {
			s.queued = true
			w.queue = append(w.queue, q.slot)
		}
	}
	if retryNoTS {
		w.noTimestamps = true
		c.log.Warn("server refuses SourceTimestamp on write (BadWriteNotSupported); writing values only from now on")
	}
	w.mu.Unlock()

	for _, d := range ok {
		f := d.f
		f.wrote(d.dv)
		id := f.ms.m.ID // immutable
		if !d.dv.SourceTimestamp.IsZero() {
			c.e.stats.latency.observe(now.Sub(d.dv.SourceTimestamp))
		}
		if c.e.onWrit != nil && d.dv.Value != nil {
			c.e.onWrit(id, f.reverse, d.dv.Value, d.dv.SourceTimestamp)
		}
	}
	c.stats.writes.Add(uint64(len(ok)))
}

// requeue puts every slot that still holds a value back in the queue
// (after a reconnect: values that failed on the old session).
func (w *writer) requeue() {
	w.mu.Lock()
	for i := range w.slots {
		s := &w.slots[i]
		if s.dv != nil && !s.queued && !s.inflight {
			s.queued = true
			w.queue = append(w.queue, i)
		}
	}
	w.mu.Unlock()
	w.wake()
}
