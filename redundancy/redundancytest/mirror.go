package redundancytest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/redundancy"
)

// Landing is one write that reached the fake target.
type Landing struct {
	Node  string
	Epoch uint64
	Seq   uint64
	Sent  time.Time // when the writer's gate permitted it
	At    time.Time // when it landed
}

// Target is the fake target server all members' mirrors write to: it
// records every write that lands, in landing order. Safe for concurrent
// use.
type Target struct {
	mu       sync.Mutex
	landings []Landing
}

func (t *Target) land(l Landing) {
	t.mu.Lock()
	t.landings = append(t.landings, l)
	t.mu.Unlock()
}

// Landings returns a copy of every landing so far, in order.
func (t *Target) Landings() []Landing {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Landing(nil), t.landings...)
}

// Violation is a write that landed after a write of a later epoch: two
// writers, an older value after a newer one.
type Violation struct {
	Late  Landing // the older epoch's write, landed late
	After Landing // the first landing of the newer epoch
}

// Violations returns every landing of an epoch older than one that has
// already landed.
func (t *Target) Violations() []Violation {
	var out []Violation
	var newest Landing
	for _, l := range t.Landings() {
		switch {
		case l.Epoch > newest.Epoch:
			newest = l
		case l.Epoch < newest.Epoch:
			out = append(out, Violation{Late: l, After: newest})
		}
	}
	return out
}

// FirstOf returns the first landing of node in epoch.
func (t *Target) FirstOf(node string, epoch uint64) (Landing, bool) {
	for _, l := range t.Landings() {
		if l.Node == node && l.Epoch == epoch {
			return l, true
		}
	}
	return Landing{}, false
}

// LastOf returns the last landing of node.
func (t *Target) LastOf(node string) (Landing, bool) {
	ls := t.Landings()
	for i := len(ls) - 1; i >= 0; i-- {
		if ls[i].Node == node {
			return ls[i], true
		}
	}
	return Landing{}, false
}

// MirrorOptions shape the fake mirror's writes.
type MirrorOptions struct {
	// Interval between writes while the gate permits (default 5ms).
	Interval time.Duration
	// Latency: how long a write is in flight before it lands (default
	// 1ms). A write still in flight when it is aborted never lands.
	Latency time.Duration
	// AbortDelay: how long after the lease lapses (LeaseValid false) the
	// mirror's lease watcher has aborted what is in flight (the engine:
	// one 20 ms poll and an abortive close; a starved host: more).
	// Negative: the watcher never aborts.
	AbortDelay time.Duration
	// NoAborter hides the Aborter capability (an engine that cannot abort
	// on request).
	NoAborter bool
	// ReadyAfter: the mirror's Health is not Ready until this long after
	// its Run started (an engine bringing its sessions up).
	ReadyAfter time.Duration
	// Status is the source status the mirror reports with each write
	// (FlowState.Status; default Good).
	Status ua.StatusCode
	// Refuse, when set, is asked by the mirror factory (and the node's
	// config check) whether this node can build a mirror for a config: a
	// non-nil error refuses it.
	Refuse func(*mapping.Config) error
	// Live makes the mirror a redundancy.LiveApplier that takes every
	// config change in place (LiveApplied records it); LiveRefused makes
	// it one that refuses every change live (the node then rebuilds).
	Live, LiveRefused bool
}

func (o MirrorOptions) withDefaults() MirrorOptions {
	if o.Interval == 0 {
		o.Interval = 5 * time.Millisecond
	}
	if o.Latency == 0 {
		o.Latency = time.Millisecond
	}
	return o
}

// Mirror is a fake mirror engine: while its gate permits it sends one
// write every Interval, each landing on the Target after Latency unless
// it is aborted first; its lease watcher aborts in-flight writes
// AbortDelay after the lease lapses. One goroutine (Run's) sends,
// delivers and aborts; the other methods are safe for concurrent use.
type Mirror struct {
	node      string
	gate      *redundancy.Gate
	target    *Target
	onWritten func(redundancy.FlowState)
	o         MirrorOptions
	// Config is the config the node built this mirror for; Built when.
	Config *mapping.Config
	Built  time.Time
	// started is when Run started (unix nanos; 0: not yet).
	started atomic.Int64

	mu       sync.Mutex
	inflight []*write
	seq      uint64
	stall    bool // new writes hang in flight until Release
	aborted  int
	observed int
	last     redundancy.FlowState // the last state observed
	// live is the last config taken live (liveMirror).
	live atomic.Pointer[LiveApplied]
}

// LiveApplied is a config change a mirror took in place, and when.
type LiveApplied struct {
	Config *mapping.Config
	At     time.Time
}

// LiveApplied returns the last config the mirror took live (nil: none).
func (m *Mirror) LiveApplied() *LiveApplied { return m.live.Load() }

type write struct {
	l      Landing
	landAt time.Time // zero: stalled
}

func newMirror(node string, gate *redundancy.Gate, target *Target, onWritten func(redundancy.FlowState), o MirrorOptions) *Mirror {
	return &Mirror{node: node, gate: gate, target: target, onWritten: onWritten, o: o.withDefaults()}
}

// Run writes until ctx is done.
func (m *Mirror) Run(ctx context.Context) error {
	m.started.Store(time.Now().UnixNano())
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	var nextSend, abortAt time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.gate.Changed():
		}
		now := time.Now()
		o := m.options()
		if epoch, ok := m.gate.Permit(); ok && !now.Before(nextSend) {
			nextSend = now.Add(o.Interval)
			m.mu.Lock()
			m.seq++
			w := &write{l: Landing{Node: m.node, Epoch: epoch, Seq: m.seq, Sent: now}, landAt: now.Add(o.Latency)}
			if m.stall {
				w.landAt = time.Time{}
			}
			m.inflight = append(m.inflight, w)
			m.mu.Unlock()
		}
		m.deliver(now)
		// The lease watcher.
		m.mu.Lock()
		busy := len(m.inflight) > 0
		m.mu.Unlock()
		switch {
		case !busy || o.AbortDelay < 0:
			abortAt = time.Time{}
		case abortAt.IsZero() && !m.gate.LeaseValid():
			abortAt = now.Add(o.AbortDelay)
		case !abortAt.IsZero() && !now.Before(abortAt):
			m.abortAll()
			abortAt = time.Time{}
		}
	}
}

func (m *Mirror) options() MirrorOptions {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.o
}

// Set changes the mirror's options from now on (writes in flight keep
// their landing time).
func (m *Mirror) Set(o MirrorOptions) {
	m.mu.Lock()
	m.o = o.withDefaults()
	m.mu.Unlock()
}

// Gate returns the gate the node handed to this mirror.
func (m *Mirror) Gate() *redundancy.Gate { return m.gate }

// deliver lands the writes whose latency has passed.
func (m *Mirror) deliver(now time.Time) {
	m.mu.Lock()
	var landed []Landing
	keep := m.inflight[:0]
	for _, w := range m.inflight {
		if !w.landAt.IsZero() && !now.Before(w.landAt) {
			w.l.At = time.Now()
			m.target.land(w.l)
			landed = append(landed, w.l)
			continue
		}
		keep = append(keep, w)
	}
	m.inflight = keep
	status := m.o.Status
	m.mu.Unlock()
	for range landed {
		m.onWritten(redundancy.FlowState{MappingID: "m1", Value: ua.MustVariant(float64(1)), SourceTS: time.Now(),
			Status: status, StatusKnown: true})
	}
}

func (m *Mirror) abortAll() {
	m.mu.Lock()
	m.aborted += len(m.inflight)
	m.inflight = nil
	m.mu.Unlock()
}

// Stall makes new writes hang in flight (a target that does not answer)
// until Release.
func (m *Mirror) Stall() {
	m.mu.Lock()
	m.stall = true
	m.mu.Unlock()
}

// Release lets stalled writes land now (those not aborted) and new ones
// flow again.
func (m *Mirror) Release() {
	m.mu.Lock()
	m.stall = false
	now := time.Now()
	for _, w := range m.inflight {
		if w.landAt.IsZero() {
			w.landAt = now
		}
	}
	m.mu.Unlock()
}

// InFlight returns how many writes are in flight.
func (m *Mirror) InFlight() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.inflight)
}

// Stalled returns how many writes hang in flight (Stall).
func (m *Mirror) Stalled() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, w := range m.inflight {
		if w.landAt.IsZero() {
			n++
		}
	}
	return n
}

// Aborted returns how many in-flight writes were aborted.
func (m *Mirror) Aborted() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.aborted
}

// Observe counts the standby stream's values and keeps the last.
func (m *Mirror) Observe(s redundancy.FlowState) {
	m.mu.Lock()
	m.observed++
	m.last = s
	m.mu.Unlock()
}

// LastObserved returns the last state the standby stream delivered and
// how many it delivered in all.
func (m *Mirror) LastObserved() (redundancy.FlowState, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last, m.observed
}

// Health: one target server, always up; ready once Run has run for
// ReadyAfter.
func (m *Mirror) Health() redundancy.Health {
	st := m.started.Load()
	ready := st != 0 && time.Since(time.Unix(0, st)) >= m.options().ReadyAfter
	h := redundancy.Health{Ready: ready, Servers: []redundancy.ServerHealth{{Name: "target", Up: true, ServiceLevel: 255}}}
	if !ready {
		h.Reason = "starting"
	}
	return h
}

// WaitIdle returns when no write is in flight.
func (m *Mirror) WaitIdle(ctx context.Context) error {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for m.InFlight() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// AbortInFlight implements redundancy.Aborter: what is in flight never
// lands.
func (m *Mirror) AbortInFlight(context.Context) error {
	m.abortAll()
	return nil
}

var _ redundancy.Aborter = (*Mirror)(nil)

// noAborter is a Mirror without the Aborter capability.
type noAborter struct{ m *Mirror }

func (n noAborter) Run(ctx context.Context) error      { return n.m.Run(ctx) }
func (n noAborter) Observe(s redundancy.FlowState)     { n.m.Observe(s) }
func (n noAborter) Health() redundancy.Health          { return n.m.Health() }
func (n noAborter) WaitIdle(ctx context.Context) error { return n.m.WaitIdle(ctx) }

// liveMirror is a Mirror that is a redundancy.LiveApplier
// (MirrorOptions.Live, LiveRefused).
type liveMirror struct{ *Mirror }

func (l liveMirror) ApplyLive(_ context.Context, cfg *mapping.Config) (bool, error) {
	if l.o.LiveRefused {
		return false, errors.New("redundancytest: this mirror takes no change live")
	}
	l.live.Store(&LiveApplied{Config: cfg, At: time.Now()})
	return true, nil
}

var _ redundancy.LiveApplier = liveMirror{}
