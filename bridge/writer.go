package bridge

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uacp"
	"go.uber.org/zap"
)

// queuedValue is a value bound for one writer slot.
type queuedValue struct {
	slot int
	dv   *ua.DataValue
}

// slot is the pending state of one destination node.
type slot struct {
	dv *ua.DataValue // newest value not yet sent (nil: none)
	// nid and nidSize cache the encoded size of the node id last used.
	nid *ua.NodeID
	// f is the flow that writes this node (nil: removed by a live
	// config change; the slot is never used again).
	f       *flow
	nidSize int32
	queued  bool // slot index is in the queue
	// inflight: a Write for this node is outstanding.
	inflight bool
	// held: the gate opened and the reconcile has not compared this
	// node yet; its value waits (hold, release).
	held bool
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
	// learn is what the server's refusals taught about the size of a
	// request it takes; it outlives sessions (see sizeLearner).
	learn sizeLearner

	// lim and limSess are the byte and length limits of the session
	// lim was taken from; only run's goroutine uses them.
	lim     writeLimits
	limSess *session

	// bufs holds the wbufs of answered requests for the next ones.
	bufs sync.Pool

	wakeCh chan struct{}
	// busy counts Write requests in flight.
	busy atomic.Int32
	// ready is 1 + the epoch under which this writer's reconcile began
	// (0: not yet): the writer sends only under that epoch, and only
	// what its reconcile has compared (slot.held).
	ready atomic.Uint64
}

// mayWrite reports whether this writer may send now: the gate is open
// under the epoch of the last activation and this writer's own reconcile
// began under it. It is the fence, asked before every request.
func (w *writer) mayWrite() bool {
	e := w.c.e
	return e.mayWrite() && w.ready.Load() == e.writeEpoch.Load()+1
}

func newWriter(c *conn) *writer {
	w := &writer{c: c, slots: make([]slot, len(c.writeFlows())), wakeCh: make(chan struct{}, 1)}
	for i, f := range c.writeFlows() {
		w.slots[i].f = f
	}
	return w
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
		w.unholdSlot(i)
	}
	w.mu.Unlock()
	w.wake()
}

// unhold ends the hold of every slot (the reconcile ended).
func (w *writer) unhold() {
	w.mu.Lock()
	for i := range w.slots {
		w.unholdSlot(i)
	}
	w.mu.Unlock()
	w.wake()
}

// unholdSlot ends the hold of slot i and queues what waited in it. The
// caller holds w.mu.
func (w *writer) unholdSlot(i int) {
	w.slots[i].held = false
	w.requeueSlot(i)
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
	b := w.take(w.c.writeBatch(cl), cl.writeLim)
	if len(b.vals) == 0 {
		w.bufs.Put(b)
		return
	}
	w.busy.Add(1)
	defer func() { w.busy.Add(-1); w.wake() }()
	w.send(ctx, cl, b)
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
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wakeCh:
		}
		for {
			cl := w.c.current()
			if cl == nil || !w.mayWrite() {
				break
			}
			if cl != w.limSess {
				// A new session: what bounds its requests was read at its
				// start (sessionInfo; what is not offered stays unbounded).
				w.lim = cl.writeLim
				w.limSess = cl
				w.c.log.Debug("write limits", zap.Int("max_request_bytes", w.lim.maxBytes),
					zap.Int("max_array_length", w.lim.maxArrayLength), zap.Int("max_string_length", w.lim.maxStringLen),
					zap.Int("max_bytestring_length", w.lim.maxByteString))
			}
			// The limits are read for each request: a live config change
			// may change them (writes_in_flight, write_batch). A request
			// that ends wakes run again.
			if int(w.busy.Load()) >= w.c.e.settings().WritesInFlight {
				break
			}
			b := w.take(w.c.writeBatch(cl), w.lim)
			if len(b.vals) == 0 {
				w.bufs.Put(b)
				break
			}
			wg.Add(1)
			w.busy.Add(1)
			go func() {
				defer wg.Done()
				defer func() { w.busy.Add(-1); w.wake() }()
				w.send(ctx, cl, b)
			}()
		}
	}
}

// take removes from the queue the values of the next request and marks
// them in flight: at most max values (less when the server taught the
// writer a smaller size: learn) and at most lim.maxBytes encoded. A
// value the server cannot take at all under lim (an array or string
// longer than it advertises, a value larger than a request may be) is
// refused here, its flow marked bad with the reason, and never sent.
// The values and their node ids are b.vals and b.ids (empty: nothing to
// send; the caller gives b back to w.bufs).
func (w *writer) take(max int, lim writeLimits) (b *wbuf) {
	b, _ = w.bufs.Get().(*wbuf)
	if b == nil {
		b = new(wbuf)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	max = w.learn.cap(max)
	n := min(len(w.queue), max)
	batch := slices.Grow(b.vals[:0], n)
	ids := slices.Grow(b.ids[:0], n)
	defer func() { b.vals, b.ids = batch, ids }()
	bytes := requestOverhead
	k := 0
	for ; k < len(w.queue) && len(batch) < n; k++ {
		i := w.queue[k]
		s := &w.slots[i]
		if s.dv == nil || s.f == nil {
			s.queued, s.dv = false, nil
			continue
		}
		if s.held {
			s.queued = false // a held value is queued again by release
			continue
		}
		id := s.f.dstID.Load() // without the flow's lock: a lock per value less
		if id == nil {
			// Not resolved on this session (quarantined): keep the value
			// for the resync after it resolves.
			s.queued = false
			continue
		}
		if s.nid != id {
			s.nid, s.nidSize = id, int32(nodeIDSize(id))
		}
		size := int(s.nidSize) + dataValueSize(s.dv)
		if code := lim.check(s.dv, size); code != ua.StatusGood {
			s.queued = false
			w.refuse(i, s.dv, code, size, lim)
			s.dv = nil
			continue
		}
		if len(batch) > 0 && lim.maxBytes > 0 && bytes+size > lim.maxBytes {
			break // the next request takes it
		}
		s.queued = false
		bytes += size
		batch = append(batch, queuedValue{i, s.dv})
		ids = append(ids, id)
		s.dv = nil
		s.inflight = true
	}
	w.queue = append(w.queue[:0], w.queue[k:]...)
	return b
}

// refuse marks the flow of slot i bad for a value the server cannot take
// (code) and logs why, once per value. The caller holds w.mu.
func (w *writer) refuse(i int, dv *ua.DataValue, code ua.StatusCode, size int, lim writeLimits) {
	f := w.slots[i].f
	f.writeRefused(code)
	w.c.stats.writeErrors.Add(1)
	fields := []zap.Field{zap.String("mapping", f.ms.m.ID), zap.String("status", statusName(code)), zap.Int("encoded_bytes", size),
		zap.Int("max_request_bytes", lim.maxBytes)}
	if dv != nil && dv.Value != nil {
		fields = append(fields, zap.Int32("array_length", dv.Value.ArrayLength()), zap.Int("max_array_length", lim.maxArrayLength),
			zap.Int("max_string_length", lim.maxStringLen), zap.Int("max_bytestring_length", lim.maxByteString))
	}
	w.c.log.Warn("value too large for the target server: not written", fields...)
}

// send writes one batch (b, from take) and settles every item.
func (w *writer) send(ctx context.Context, cl *session, b *wbuf) {
	c := w.c
	w.mu.Lock()
	noTS := w.noTimestamps
	w.mu.Unlock()
	batch := b.vals
	req := b.request(noTS)
	// Counted in flight before the last look at the gate: the lease
	// watcher (fence.go) either sees this Write or the lapse closed the
	// gate before it was sent.
	cl.writes.Add(1)
	defer cl.writes.Add(-1)
	// Last look at the fence, as close to the wire as we can get.
	if !w.mayWrite() {
		w.settle(batch, nil, errNotActive)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, c.tmo().Request)
	start := time.Now()
	c.stats.writeRequests.Add(1) // counted as sent: an unanswered one too
	// The lease is asked once more just before the request goes to the
	// socket (fence.go, leaseCtx).
	res, err := cl.client.Write(withLease(rctx, c.e.gate), req)
	cancel()
	if err == nil && res != nil && len(res.Results) != len(batch) {
		err = errors.New("write response has a wrong number of results")
	}
	if err != nil && isLimitError(err) {
		// Refused for its size: split, or refuse a single value; the
		// session is not at fault unless the server closed the channel.
		var ue *uacp.Error
		if errors.As(err, &ue) {
			cl.writeFailed.Store(true)
			cl.abort(err)
		}
		w.tooLarge(batch, err)
		return
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
	w.mu.Lock()
	w.learn.worked(len(batch))
	w.mu.Unlock()
	w.settle(batch, res.Results, nil)
	// Answered: gopcua is done with the request, and settle with the
	// values. (A request that failed is left to the GC: it may still sit
	// in gopcua's send queue.)
	b.reset()
	w.bufs.Put(b)
}

// wbuf is the memory of one Write request: the values take took, their
// node ids, the request and its WriteValues. A writer reuses those of
// answered requests (writer.bufs): a request of 1,000 values would
// otherwise allocate ~90 KB, a good part of the value path's garbage.
type wbuf struct {
	vals []queuedValue
	ids  []*ua.NodeID
	req  ua.WriteRequest
	wvs  []ua.WriteValue
	ptrs []*ua.WriteValue
	bare []ua.DataValue
}

// request builds the Write request of b's values (noTS: without their
// timestamps) in b's memory.
func (b *wbuf) request(noTS bool) *ua.WriteRequest {
	n := len(b.vals)
	b.wvs = slices.Grow(b.wvs[:0], n)[:n]
	b.ptrs = slices.Grow(b.ptrs[:0], n)[:n]
	if noTS {
		b.bare = slices.Grow(b.bare[:0], n)[:n]
	}
	for i, q := range b.vals {
		dv := q.dv
		if noTS {
			b.bare[i] = ua.DataValue{EncodingMask: dv.EncodingMask &^ (ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp),
				Value: dv.Value, Status: dv.Status}
			dv = &b.bare[i]
		}
		b.wvs[i] = ua.WriteValue{NodeID: b.ids[i], AttributeID: ua.AttributeIDValue, Value: dv}
		b.ptrs[i] = &b.wvs[i]
	}
	b.req = ua.WriteRequest{NodesToWrite: b.ptrs}
	return &b.req
}

// reset drops b's references to values and nodes (kept for reuse, b
// must not keep them alive) but keeps its memory.
func (b *wbuf) reset() {
	clear(b.vals)
	clear(b.ids)
	clear(b.wvs)
	clear(b.ptrs)
	clear(b.bare)
	b.vals, b.ids, b.wvs, b.ptrs, b.bare = b.vals[:0], b.ids[:0], b.wvs[:0], b.ptrs[:0], b.bare[:0]
	b.req = ua.WriteRequest{}
}

// tooLarge settles a batch the server refused for its size (err, a
// limit error): a batch of several values goes back to the queue and the
// writer learns to send half as many; a single value is refused, its
// flow marked bad with the reason, and never retried (a newer value of
// the flow is tried afresh).
func (w *writer) tooLarge(batch []queuedValue, err error) {
	c := w.c
	code := ua.StatusBadRequestTooLarge
	var sc ua.StatusCode
	var ue *uacp.Error
	switch {
	case errors.As(err, &sc):
		code = sc
	case errors.As(err, &ue):
		code = ua.StatusCode(ue.ErrorCode)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(batch) == 1 {
		q := batch[0]
		w.slots[q.slot].inflight = false
		w.learn.forget()
		c.stats.writeErrors.Add(1)
		if f := w.slots[q.slot].f; f != nil {
			f.writeRefused(code)
			c.log.Warn("target server refuses a single value for its size: not written", zap.String("mapping", f.ms.m.ID),
				zap.String("status", statusName(code)), zap.Error(err))
		}
		w.requeueSlot(q.slot)
		return
	}
	w.learn.failed(len(batch))
	c.log.Info("target server refused a write request for its size: splitting it",
		zap.Int("values", len(batch)), zap.Int("next_max", w.learn.cap(len(batch))), zap.String("status", statusName(code)))
	for _, q := range batch {
		s := &w.slots[q.slot]
		s.inflight = false
		if s.dv == nil {
			s.dv = q.dv
		}
		w.requeueSlot(q.slot)
	}
}

// requeueSlot queues slot i if it holds a value; the caller holds w.mu.
func (w *writer) requeueSlot(i int) {
	s := &w.slots[i]
	if s.dv != nil && !s.queued && !s.inflight {
		s.queued = true
		w.queue = append(w.queue, i)
	}
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
	ok := make([]done, 0, len(batch)) // one allocation, not a growing slice
	w.mu.Lock()
	for i, q := range batch {
		s := &w.slots[q.slot]
		s.inflight = false
		code := ua.StatusBadCommunicationError
		if reqErr == nil {
			code = results[i]
		}
		switch {
		case s.f == nil:
			// Removed by a live config change while in flight.
		case code == ua.StatusOK || isGood(code):
			ok = append(ok, done{s.f, q.dv})
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
			s.f.writeRefused(code)
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

	var lat histBatch // one atomic add per bucket and batch, not per value
	for _, d := range ok {
		f := d.f
		f.wrote(d.dv)
		if !d.dv.SourceTimestamp.IsZero() {
			lat.observe(now.Sub(d.dv.SourceTimestamp))
		}
		c.e.written(f, d.dv)
	}
	lat.addTo(&c.e.stats.latency)
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

// sizeLearner remembers, per server, the largest number of values in one
// Write request that the server takes when it refuses larger ones without
// advertising a limit (BadTooManyOperations, BadRequestTooLarge, …).
// Each refusal halves the cap; after a run of full requests at the cap
// it grows halfway towards the smallest size refused (a binary search, so
// a server's true limit is found in a few steps and a refusal is never
// repeated in a loop). Not safe for concurrent use: the writer's mutex
// guards it.
type sizeLearner struct {
	limit int // cap on values per request; 0: none learned
	bad   int // smallest size refused; 0: none
	good  int // largest size taken since the last refusal
	runs  int // full requests at the cap since it last changed
}

// learnGrowAfter is how many full requests at the cap must succeed
// before the cap is raised towards the smallest refused size.
const learnGrowAfter = 32

func (l *sizeLearner) cap(max int) int {
	if l.limit > 0 && l.limit < max {
		return l.limit
	}
	return max
}

func (l *sizeLearner) failed(n int) {
	if l.bad == 0 || n < l.bad {
		l.bad = n
	}
	if l.good > 0 && l.good < n {
		l.limit = l.good // the size that worked last
	} else {
		l.limit = max(1, n/2)
	}
	l.runs = 0
}

func (l *sizeLearner) worked(n int) {
	l.good = max(l.good, n)
	if l.limit == 0 || n < l.limit {
		return
	}
	if l.runs++; l.runs < learnGrowAfter {
		return
	}
	l.runs = 0
	if next := (l.limit + l.bad) / 2; next > l.limit {
		l.limit = next
	}
}

// forget drops what was learned: a single value was refused for its own
// size, so the refusals that halved the cap may have been its doing.
func (l *sizeLearner) forget() { *l = sizeLearner{} }
