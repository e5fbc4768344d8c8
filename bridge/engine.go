// Package bridge is the mirror engine: it keeps a supervised session to
// every configured OPC UA server, subscribes to the mapped source items,
// transforms their values and writes them to the target items in batches.
//
// The engine owns its goroutines: Run starts them and returns only after
// all have exited. It writes only while its Gate is open, reconciling the
// targets each time the gate opens under a new epoch, and its lease
// watcher resets at once every session with a Write unanswered when the
// gate's lease lapses (fence.go, LeaseAbortBound). It never imports the
// redundancy layer; that layer implements Gate and reads the engine's
// state through Snapshot and Stats.
//
// A value travels one way through four files: conn.go (a session's
// notifications) → engine.go (router: ClientHandle → flow) → flow.go (the
// flow's state machine and value rules, under the mapping's own lock) →
// writer.go (newest value per node, batches, the gate asked before each
// Write). docs/ARCHITECTURE.md draws it.
//
// Ordering rules (documented in README "Engine semantics"):
//   - per target node only the newest pending value is kept and a node
//     has at most one Write in flight, so an older value is never written
//     after a newer one;
//   - within one session of a source, values are taken in the server's
//     order whatever their timestamps; timestamps decide only between
//     two sources (a both conflict, a peer's cached value against a fresh
//     one) and only beyond the clock skew tolerance (flow.accept);
//   - a value written to one side of a `both` mapping that comes back from
//     that side is recognised as an echo (compared after conversion, so it
//     holds with deadbands and conversions) and not written back;
//   - Bad and Uncertain source values are never written as values: the
//     target holds its last good value (on_bad: hold) or receives it with
//     the source's status code (on_bad: write_status).
package bridge

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/mapping"
)

// ErrConfig is wrapped by errors New returns for a config the engine
// cannot run.
var ErrConfig = errors.New("engine config")

// ClientOptionsFunc returns the gopcua client options for a server
// (security policy, certificates, user identity). The engine adds its
// own (auto-reconnect off, timeouts). It may be called again on every
// reconnect, from the server's supervisor goroutine.
type ClientOptionsFunc func(ctx context.Context, srv *mapping.Server, endpoint string) ([]opcua.Option, error)

// Options are an engine's collaborators.
type Options struct {
	// Config is the validated mirror configuration. The engine does not
	// modify it.
	Config *mapping.Config
	// Gate says when the engine may write. Nil means always open
	// (epoch 0), as for a single node.
	Gate Gate
	// Logger receives the engine's logs (named "bridge").
	Logger *zap.Logger
	// ClientOptions builds session options per server. Nil means the
	// engine's own: the policy, mode and identity of the config, with
	// certificates from Security.
	ClientOptions ClientOptionsFunc
	// Security is the certificate store for servers configured with a
	// secure policy (nil: such servers fail with ErrNoSecurity). Ignored
	// when ClientOptions is set. The engine reports its own certificate
	// and each server's certificate in Stats.
	Security Security
	// OnWritten, if set, is called after every value confirmed written,
	// and when an on_bad hold flow's source turns Bad or Uncertain while
	// the target holds its last good value (FlowState.Held: nothing was
	// written, the status is reported). It is called from writer and
	// dispatcher goroutines, concurrently; it must be fast and must not
	// call back into the engine. Redundancy streams it to the standby.
	OnWritten func(FlowState)
	// OnServerSwitch, if set, is called after every change of the member
	// in use of a redundant server set (from that set's goroutine; it
	// must not block and must not call back into the engine). The pair
	// journals it.
	OnServerSwitch func(ServerSwitch)
}

// Engine mirrors values between servers. Create it with New, start it
// with Run. Its exported methods are safe for concurrent use.
type Engine struct {
	cfg *mapping.Config
	// tune is the engine settings now in force: replaced whole by a live
	// config change (live.go), read through settings.
	tune   atomic.Pointer[mapping.Engine]
	log    *zap.Logger
	gate   Gate
	optsFn ClientOptionsFunc
	// security is the certificate store (nil: security None only).
	security Security
	onWrit   func(FlowState)
	onSwitch func(ServerSwitch)

	// tab is the mappings and flows now running: replaced whole by a
	// live config change (live.go), read without a lock.
	tab atomic.Pointer[flowTable]
	// conns are the servers' conns in config order: replaced whole by a
	// live change that adds or removes servers (live_servers.go), read
	// through connList.
	conns atomic.Pointer[[]*conn]
	// runMu guards runCtx and runWG, set while Run runs, and each conn's
	// run: Run and a live change start and stop conns under it.
	runMu  sync.Mutex
	runCtx context.Context
	runWG  *sync.WaitGroup
	// tabChanged is signalled (capacity 1, never blocking) after a live
	// change replaced tab; holdWatch takes up the new table's flows.
	tabChanged chan struct{}

	// liveMu serialises live config changes (live.go); cfg is the
	// config now running, read and written under it.
	liveMu sync.Mutex

	// queueing is true from the moment the gate opens: new values go to
	// the writers' queues. writing is true once the targets have been
	// reconciled under writeEpoch: the writers then send.
	queueing   atomic.Bool
	writing    atomic.Bool
	writeEpoch atomic.Uint64
	reconciles atomic.Uint64

	stats engineStats

	// fenceWake makes the lease watcher look at the lease now.
	fenceWake chan struct{}

	// plain caches the transforms of mappings without deadband, scaling
	// or conversion rules, one per destination type: most mappings share
	// one (transforms are immutable).
	plainMu sync.Mutex
	plain   map[valueType]*transform
}

// New builds an engine for cfg. It validates what the engine needs
// beyond mapping.Config.Validate (node ids parse, servers exist) and
// returns errors wrapping ErrConfig.
func New(o Options) (*Engine, error) {
	if o.Config == nil {
		return nil, fmt.Errorf("%w: no config", ErrConfig)
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	e := &Engine{
		cfg:      o.Config,
		log:      log.Named("bridge"),
		gate:     o.Gate,
		optsFn:   o.ClientOptions,
		security: o.Security,
		onWrit:   o.OnWritten,
		onSwitch: o.OnServerSwitch,

		fenceWake: make(chan struct{}, 1),
	}
	if e.gate == nil {
		e.gate = NewManualGate(true, 0)
	}
	tune := o.Config.EngineSettings()
	e.tune.Store(&tune)
	byName := map[string]*conn{}
	conns := make([]*conn, 0, len(o.Config.Servers))
	for i := range o.Config.Servers {
		s := &o.Config.Servers[i]
		c := newConn(e, s)
		conns = append(conns, c)
		byName[s.Name] = c
	}
	e.conns.Store(&conns)
	tab := &flowTable{maps: make([]*mstate, len(o.Config.Mappings)), flows: make([]*flow, 0, 2*len(o.Config.Mappings)),
		byID: make(map[string]*mstate, len(o.Config.Mappings))}
	reads, writes := map[*conn][]*flow{}, map[*conn][]*flow{}
	for i := range o.Config.Mappings {
		ms, err := e.build(o.Config, i, byName, tab)
		if err != nil {
			return nil, err
		}
		for _, f := range ms.flows() {
			f.wslot = len(writes[f.to])
			reads[f.from] = append(reads[f.from], f)
			writes[f.to] = append(writes[f.to], f)
		}
	}
	e.tab.Store(tab)
	e.tabChanged = make(chan struct{}, 1)
	for _, c := range conns {
		c.setFlows(reads[c], writes[c])
	}
	for _, c := range conns {
		c.w = newWriter(c)
	}
	return e, nil
}

// flowTable is the engine's mappings and flows at one moment. It is
// never modified once stored in Engine.tab: a live change stores a new
// one (live.go).
type flowTable struct {
	maps  []*mstate // in config order
	flows []*flow   // indexed by handle; nil where there is no such flow, or no longer (removed live)
	byID  map[string]*mstate
}

// build makes the mstate and flows of cfg.Mappings[i] with the next free
// handles of tab, and enters them in tab. The flows' writer slots are
// the caller's to assign.
func (e *Engine) build(cfg *mapping.Config, i int, byName map[string]*conn, tab *flowTable) (*mstate, error) {
	m := &cfg.Mappings[i]
	src, dst := byName[m.Source.Server], byName[m.Target.Server]
	if src == nil || dst == nil {
		return nil, fmt.Errorf("%w: mapping %s: unknown server", ErrConfig, m.ID)
	}
	if _, err := mapping.ParseNodeID(m.Source.Node); err != nil {
		return nil, fmt.Errorf("%w: mapping %s source: %w", ErrConfig, m.ID, err)
	}
	if _, err := mapping.ParseNodeID(m.Target.Node); err != nil {
		return nil, fmt.Errorf("%w: mapping %s target: %w", ErrConfig, m.ID, err)
	}
	ms := &mstate{index: i, m: m, tol: e.settings().ClockSkew, maxHold: cfg.MaxHold(m)}
	base := uint32(len(tab.flows))
	tab.flows = append(tab.flows, nil, nil)
	eff := cfg.Effective(m)
	mk := func(reverse bool) *flow {
		f := &flow{handle: base + b2u(reverse), ms: ms, reverse: reverse,
			from: src, to: dst,
			sampling: eff.SamplingInterval, queueSize: eff.QueueSize, publishing: eff.PublishingInterval}
		if reverse {
			f.from, f.to = dst, src
		}
		if !m.IsEnabled() {
			f.state, f.reason = StateDisabled, "disabled in config"
		}
		tab.flows[f.handle] = f
		return f
	}
	dir := m.Direction
	if dir == "" {
		dir = mapping.Read
	}
	if dir == mapping.Read || dir == mapping.Both {
		ms.fwd = mk(false)
	}
	if dir == mapping.Write || dir == mapping.Both {
		ms.rev = mk(true)
	}
	tab.maps[i] = ms
	tab.byID[m.ID] = ms
	return ms, nil
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Run runs the engine until ctx is cancelled. It returns only after every
// goroutine it started has exited.
func (e *Engine) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.fence(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); e.holdWatch(ctx) }()
	e.runMu.Lock()
	e.runCtx, e.runWG = ctx, &wg // a live change starts the conns it adds under them
	for _, c := range e.connList() {
		e.startConn(c)
	}
	e.runMu.Unlock()
	e.roleLoop(ctx)
	e.runMu.Lock()
	e.runCtx, e.runWG = nil, nil
	for _, c := range e.connList() {
		c.run = nil
	}
	e.runMu.Unlock()
	cancel()
	wg.Wait()
	return nil
}

// roleLoop follows the gate: on open under a new epoch it reconciles the
// targets, then lets values flow to the writers; on close it stops them
// and drops what was pending (a later activation reconciles afresh, so
// nothing stale from before is ever written).
func (e *Engine) roleLoop(ctx context.Context) {
	check := func() {
		epoch, ok := e.gate.Permit()
		if !ok {
			e.queueing.Store(false)
			for _, c := range e.connList() {
				c.w.ready.Store(0)
			}
			if e.writing.Swap(false) {
				e.log.Info("gate closed: standby, not writing", zap.Uint64("epoch", epoch))
				for _, c := range e.connList() {
					c.w.clear()
				}
			}
			return
		}
		if e.writing.Load() && e.writeEpoch.Load() == epoch {
			return
		}
		e.writing.Store(false)
		e.queueing.Store(false)
		for _, c := range e.connList() {
			c.w.ready.Store(0)
			c.w.clear()
		}
		e.writeEpoch.Store(epoch)
		e.holdWriters() // before accept may queue: nothing goes out uncompared
		e.queueing.Store(true)
		start := time.Now()
		// Each writer sends what its reconcile compared as it goes
		// (reconcile.go): a hung target delays no other.
		n := e.reconcileWriters(ctx, epoch)
		e.writing.Store(true)
		e.reconciles.Add(1)
		e.log.Info("gate open: active, writing", zap.Uint64("epoch", epoch),
			zap.Int("reconcile_writes", n), zap.Duration("reconcile", time.Since(start)))
	}
	check()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.gate.Changed():
			e.nudgeFence() // a revoked lease is acted on at once
			check()
			for _, c := range e.connList() {
				c.w.wake() // a lease regained lets pending values go
			}
		}
	}
}

// mayWrite reports whether the gate lets writers send now, under the
// epoch of the last activation (each writer also waits for its own
// reconcile: writer.mayWrite).
func (e *Engine) mayWrite() bool {
	if !e.queueing.Load() {
		return false
	}
	epoch, ok := e.gate.Permit()
	return ok && epoch == e.writeEpoch.Load()
}

// router routes the values of one session's notifications: handle →
// flow → writer. The ClientHandle of a monitored item is its flow's index
// in the engine's flow table (Engine.tab), so a value finds its flow
// without a map lookup. Each session's dispatcher owns one router; it is
// not safe for concurrent use. It takes no lock but the mappings' own (in
// accept).
type router struct {
	e    *Engine
	from *conn
	out  []routed // per destination writer, reused
	last int      // index in out of the last writer added to
	sink uintptr  // keeps warmFlows' loads
}

// routed is what one route call queues for one writer.
type routed struct {
	w    *writer
	vals []queuedValue
}

func newRouter(e *Engine, from *conn) *router {
	return &router{e: e, from: from}
}

// add queues q for w. Most values of a notification go to the writer
// of the value before: it is looked at first, and the few writers of a
// session are scanned (no map access per value).
func (r *router) add(w *writer, q queuedValue) {
	if r.last >= len(r.out) || r.out[r.last].w != w {
		r.last = -1
		for i := range r.out {
			if r.out[i].w == w {
				r.last = i
				break
			}
		}
		if r.last < 0 {
			r.last = len(r.out)
			r.out = append(r.out, routed{w: w})
		}
	}
	r.out[r.last].vals = append(r.out[r.last].vals, q)
}

// route hands each value to its flow and what the flows decide to write
// to the writers, one enqueue per writer.
func (r *router) route(items []*ua.MonitoredItemNotification, now time.Time) {
	e := r.e
	flows := e.tab.Load().flows // a live change stores a new table (live.go)
	for len(items) > 0 {
		chunk := items[:min(len(items), warmAhead)]
		items = items[len(chunk):]
		r.sink += warmFlows(flows, chunk)
		for _, item := range chunk {
			h := item.ClientHandle
			if int(h) >= len(flows) || item.Value == nil {
				continue
			}
			f := flows[h]
			if f == nil || f.from != r.from {
				continue
			}
			// The notification is the router's: its DataValue becomes
			// the value to write (acceptOwned).
			write, repair, v := f.acceptOwned(item.Value, now, &e.queueing, true)
			e.stats.count(v, f.ms.both())
			if v == vBadSource {
				if s, ok := f.takeHeldReport(); ok && e.onWrit != nil {
					e.onWrit(s) // the pair learns the status of a held source
				}
			}
			if write != nil {
				r.add(f.to.w, queuedValue{f.wslot, write})
			}
			if repair != nil {
				// Written back to f's own source, through the opposite flow.
				opp := f.opposite()
				r.add(opp.to.w, queuedValue{opp.wslot, repair})
			}
		}
	}
	for i := range r.out {
		o := &r.out[i]
		o.w.enqueue(o.vals)
		clear(o.vals) // the values are the writer's now
		o.vals = o.vals[:0]
	}
}

// reconcile brings the destinations of flows in line with the cache. It
// is used when the gate opens (standby → active) and after a server
// (re)connects (resync). Only values that differ are queued; equal ones
// are recorded as written. Flows whose servers are down are skipped:
// their own reconnect resyncs them. The targets are compared batch by
// batch as their reads arrive, each batch released to its writer at once
// (the first written before the other reads are sent), so writing starts
// while later targets are still being read. takeover: the gate opened,
// so the targets were last written by another writer (see
// reconcileWith).
func (e *Engine) reconcile(ctx context.Context, flows []*flow, readSources, takeover bool) int {
	if readSources {
		bySrc := map[*conn][]*flow{}
		for _, f := range flows {
			bySrc[f.from] = append(bySrc[f.from], f)
		}
		for c, fs := range bySrc {
			vals, err := c.readValues(ctx, fs, false)
			if err != nil {
				c.log.Debug("resync: reading sources", zap.Error(err))
				continue
			}
			now := time.Now()
			for i, f := range fs {
				if vals[i] != nil {
					f.accept(vals[i], now, nil)
				}
			}
		}
	}
	byDst := map[*conn][]*flow{}
	for _, f := range flows {
		byDst[f.to] = append(byDst[f.to], f)
	}
	var queued atomic.Int64
	for c, fs := range byDst {
		// Each batch of targets is compared and released to the writer
		// as soon as it has been read: the writer sends the first while
		// later ones are still being read (held until then: writer.hold).
		read := make([]bool, len(fs))
		var first sync.Once
		err := c.readValuesEach(ctx, fs, true, func(idx []int, cur []*ua.DataValue) {
			slots := make([]int, len(idx))
			batch := make([]queuedValue, 0, len(idx))
			for k, i := range idx {
				read[i] = true
				slots[k] = fs[i].wslot
				if dv := fs[i].reconcileWith(cur[k], takeover); dv != nil {
					batch = append(batch, queuedValue{fs[i].wslot, dv})
				}
			}
			c.w.release(slots, batch)
			queued.Add(int64(len(batch)))
			// The first batch is read alone: write it before the other
			// reads are sent.
			first.Do(func() { c.w.sendNow(ctx) })
		})
		if err != nil {
			c.log.Debug("reconcile: reading targets", zap.Error(err))
			var slots []int
			for i, f := range fs {
				if !read[i] {
					f.targetUnread() // write without comparing rather than not at all
					slots = append(slots, f.wslot)
				}
			}
			c.w.release(slots, nil)
		}
	}
	e.stats.reconcileWrites.Add(uint64(queued.Load()))
	return int(queued.Load())
}

// FlowState is one flow's state as the active of a pair reports it
// (Options.OnWritten) and the standby records it (Engine.Observe): the
// value the flow's target holds, its source timestamp, and the source's
// status at that time. The status is part of the value: a status change
// is reported like a value change.
type FlowState struct {
	MappingID string
	Reverse   bool
	// Value is the value written to the target (converted to its type);
	// for Held, the last good value the target holds.
	Value *ua.Variant
	// SourceTS is the value's source timestamp; for a status change
	// (on_bad write_status, Held) the timestamp of the source's reading
	// that carried the status.
	SourceTS time.Time
	// Status is the source's status at SourceTS: Good, the status written
	// with Value (on_bad write_status; UncertainLastUsableValue past
	// max_hold), or the Bad or Uncertain status of a held source.
	Status ua.StatusCode
	// StatusKnown (Observe): Status was reported. A previous release's
	// active streams no status: the node's own subscription of the source
	// decides. OnWritten always reports it.
	StatusKnown bool
	// Held (OnWritten): nothing was written; the source turned Bad or
	// Uncertain (Status) and the target holds Value (on_bad hold).
	Held bool
}

// Observe records the state s of a mapping's flow that another node (the
// active of a pair) reported: the cache never goes back to an older
// value, a takeover does not write it again, and the source's status
// reported with it is this node's knowledge of the source's status while
// its own subscription of the source delivers nothing (a node taking
// over never writes Good over a Bad source). Safe for concurrent use.
func (e *Engine) Observe(s FlowState) {
	ms := e.tab.Load().byID[s.MappingID]
	if ms == nil {
		return
	}
	f := ms.fwd
	if s.Reverse {
		f = ms.rev
	}
	if f == nil {
		return
	}
	f.observe(s)
}

// TargetType returns the built-in type of the values the mapping's flow
// writes, from its target's type as read on the target's current session
// (or the mapping's convert.to); known false: not read yet, no such flow,
// or a target of any type. A standby checks the values streamed to it
// against it, also before it has read a value of its own. Safe for
// concurrent use.
func (e *Engine) TargetType(mappingID string, reverse bool) (ua.TypeID, bool) {
	ms := e.tab.Load().byID[mappingID]
	if ms == nil {
		return 0, false
	}
	f := ms.fwd
	if reverse {
		f = ms.rev
	}
	if f == nil {
		return 0, false
	}
	return f.targetType()
}

// written reports dv, confirmed written to f's target, to OnWritten.
// Called by the writers.
func (e *Engine) written(f *flow, dv *ua.DataValue) {
	if e.onWrit == nil || dv.Value == nil {
		return
	}
	e.onWrit(FlowState{MappingID: f.ms.m.ID, Reverse: f.reverse, Value: dv.Value, SourceTS: dv.SourceTimestamp,
		Status: dv.Status, StatusKnown: true})
}

// MappingStatus is the engine's view of one flow of a mapping.
type MappingStatus struct {
	ID        string
	Index     int
	Reverse   bool
	From, To  string // server names
	State     State
	Reason    string
	Value     *ua.Variant // last good value (nil if none yet)
	SourceTS  time.Time
	Written   *ua.Variant // last value confirmed written
	WrittenTS time.Time
	// Status is the source's status as this node knows it: from its own
	// subscription, or as the active reported it while that delivers
	// nothing (Good when neither said anything yet).
	Status ua.StatusCode
	// HeldSince is when the flow's current hold began (state held; zero
	// otherwise): its age is the hold's age.
	HeldSince time.Time
}

// Snapshot returns the state of every flow, in mapping order. It takes
// each mapping's lock briefly.
func (e *Engine) Snapshot() []MappingStatus {
	maps := e.tab.Load().maps
	out := make([]MappingStatus, 0, len(maps))
	for _, ms := range maps {
		out = ms.appendStatus(out)
	}
	return out
}

// Mapping returns the state of the flows of the mapping with the given
// id (one, or two for a bidirectional mapping: forward first), or nil.
// It is safe for concurrent use and costs one map lookup.
func (e *Engine) Mapping(id string) []MappingStatus {
	ms := e.tab.Load().byID[id]
	if ms == nil {
		return nil
	}
	return ms.appendStatus(nil)
}

// Writing reports whether the engine is currently writing (gate open and
// every writer's targets reconciled, or given up on after their deadline)
// and under which epoch.
func (e *Engine) Writing() (epoch uint64, ok bool) {
	return e.writeEpoch.Load(), e.writing.Load()
}

// WaitIdle returns when no Write request is in flight on any server (a
// closed gate lets no new one start), or with ctx's error.
func (e *Engine) WaitIdle(ctx context.Context) error {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		idle := true
		for _, c := range e.connList() {
			if c.w.busy.Load() > 0 {
				idle = false
			}
		}
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// transformFor returns the transform of m's flow for destination type
// vt, shared between mappings that have no rules of their own.
func (e *Engine) transformFor(m *mapping.Mapping, reverse bool, vt valueType) (*transform, error) {
	if m.Deadband != nil || m.Scaling != nil || m.Convert != nil {
		return newTransform(m, reverse, vt)
	}
	e.plainMu.Lock()
	defer e.plainMu.Unlock()
	if tr, ok := e.plain[vt]; ok {
		return tr, nil
	}
	tr, err := newTransform(m, reverse, vt)
	if err != nil {
		return nil, err
	}
	if e.plain == nil {
		e.plain = map[valueType]*transform{}
	}
	e.plain[vt] = tr
	return tr, nil
}

// settings returns the engine settings now in force (a live config
// change may replace them: read them where they are used, not once).
func (e *Engine) settings() mapping.Engine { return *e.tune.Load() }

// backoff returns the wait before retry attempt n (0-based): exponential
// from RetryMin to RetryMax with ±20 % jitter.
func (e *Engine) backoff(n int) time.Duration {
	t := e.settings()
	d := t.RetryMin
	for i := 0; i < n && d < t.RetryMax; i++ {
		d *= 2
	}
	if d > t.RetryMax {
		d = t.RetryMax
	}
	j := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * j)
}

func statusName(c ua.StatusCode) string {
	return c.Error()
}
