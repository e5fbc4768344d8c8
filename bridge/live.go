package bridge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/mapping"
)

// Live config changes (issue 16, item 1). ApplyLive changes the running
// engine to a new config by its difference from the running one:
//
//   - an untouched mapping keeps its mstate, its flows, its monitored
//     item and its writer slot: nothing of it is touched;
//   - an added mapping gets new flows with new handles (never a handle
//     used before: a handle of a removed flow stays nil in the table, so
//     a late notification of its item finds nothing), a new writer slot,
//     and its server's session monitors its source (in batches) and
//     resolves, reads and, when active, reconciles its target;
//   - a removed mapping's flows retire (accept ignores them), its writer
//     slot forgets them and its monitored items are deleted;
//   - a changed mapping (anything of its own, its group's settings, the
//     engine's publishing interval) is a removal and an addition, except
//     that its new flow takes over the old one's writer slot when it
//     writes the same node: at most one Write per node stays in flight.
//
//   - a server added gets a conn of its own, whose goroutines start
//     under Run (live_servers.go); its mappings are added mappings, and
//     its first session subscribes and resolves them;
//   - a server removed: its mappings (removed in the same config: a
//     mapping names a server that exists) retire first, then its
//     goroutines are stopped and waited for and its session closed; a
//     renamed server is one removed and one added;
//   - a changed server entry (the same name) rebuilds that server's
//     session only (conn.reconfigure); a redundant server set's entry,
//     its members' sessions only (superviseSet starts anew), or, when
//     only its endpoints changed, those of the members added or removed
//     (changeMembers);
//   - on a redundant server set, the member in use resolves, monitors
//     and reconciles the new flows and every member keeping monitored
//     items makes them follow the set's flows (members.go, runSetLive,
//     syncData);
//   - the engine settings are read where they are used (Engine.settings):
//     the writers' limits from their next request, subscribe_batch from
//     the next CreateMonitoredItems, the backoff from the next wait;
//   - a subscription left without items is deleted (conn.deleteSub).
//
// What cannot change live is refused with ErrNotLive before anything
// changed: a handle table mostly made of removed flows (maxDeadHandles;
// a rebuild starts a table afresh). The caller then rebuilds the engine
// (redundancy's warm swap).
//
// The sessions carry the changes out in their own supervisor goroutine
// (conn.runLive; a set's in its set goroutine, conn.runSetLive),
// between keep-alives: a session that starts afterwards
// subscribes and resolves every flow of its server anyway, so a change
// queued for a session that ends is simply dropped (liveQueue.drop). The
// item table (session.items) makes both paths idempotent.

// ErrNotLive is wrapped by ApplyLive's error when the change cannot be
// made on the running engine; the engine is then unchanged.
var ErrNotLive = errors.New("config change cannot be applied live")

// itemRef is a monitored item of a session: its subscription and id
// (id 0: none).
type itemRef struct{ sub, id uint32 }

// setItem records the monitored item created for handle h in
// subscription sub (or that none was). Used by the session's supervisor
// only.
func (s *session) setItem(h, sub uint32, r *ua.MonitoredItemCreateResult) {
	if int(h) >= len(s.items) {
		grown := make([]itemRef, max(int(h)+1, 2*len(s.items)))
		copy(grown, s.items)
		s.items = grown
	}
	s.clearItem(h)
	if r.StatusCode == ua.StatusOK || isGood(r.StatusCode) {
		s.items[h] = itemRef{sub, r.MonitoredItemID}
		if s.subItems == nil {
			s.subItems = map[uint32]int{}
		}
		s.subItems[sub]++
	}
}

// clearItem forgets the monitored item of handle h (deleted, or about to
// be replaced) and returns it. Used by the session's supervisor only.
func (s *session) clearItem(h uint32) itemRef {
	it := s.item(h)
	if it.id != 0 {
		s.items[h] = itemRef{}
		s.subItems[it.sub]--
	}
	return it
}

// item returns the monitored item of handle h on s (id 0: none).
func (s *session) item(h uint32) itemRef {
	if int(h) < len(s.items) {
		return s.items[h]
	}
	return itemRef{}
}

// liveOp is what one server's session does for one live change.
type liveOp struct {
	monitor   []*flow  // new flows reading from the server: subscribe
	unmonitor []uint32 // handles of retired flows reading from it: delete their items
	targets   []*flow  // new flows writing to it: resolve, read, reconcile
	queued    time.Time
	done      chan struct{}
}

// liveQueue holds the live changes a server's session has yet to carry
// out. Safe for concurrent use.
type liveQueue struct {
	mu   sync.Mutex
	ops  []*liveOp
	wake chan struct{} // 1-buffered; the session loop waits on it
}

func (q *liveQueue) push(op *liveOp) {
	q.mu.Lock()
	q.ops = append(q.ops, op)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *liveQueue) take() []*liveOp {
	q.mu.Lock()
	defer q.mu.Unlock()
	ops := q.ops
	q.ops = nil
	return ops
}

// drop ends the queued changes unperformed: a new session is about to
// subscribe and resolve every flow of its server as it is now.
func (q *liveQueue) drop() {
	for _, op := range q.take() {
		close(op.done)
	}
}

// flows returns ms's one or two flows.
func (ms *mstate) flows() []*flow {
	out := make([]*flow, 0, 2)
	for _, f := range []*flow{ms.fwd, ms.rev} {
		if f != nil {
			out = append(out, f)
		}
	}
	return out
}

// liveChange is one live change as planned, before anything changed.
type liveChange struct {
	tab      *flowTable
	retired  []*flow
	added    []*flow
	heir     map[*flow]*flow // new flow → the retired flow whose writer slot it takes
	moved    map[*mstate]int // kept mappings whose index changes
	nAdded   int
	nRemoved int
	nChanged int
}

// ApplyLive changes the running engine to cfg (validated) by its
// difference from the running config, touching nothing of the mappings
// that did not change (see the comment at the top of live.go). It returns
// an error wrapping ErrNotLive, with the reason, when the change cannot be
// made live, and one wrapping ErrConfig when cfg cannot be built: in both
// cases nothing changed. Otherwise the change is in place when it
// returns (new values go to the new flows, removed flows write nothing
// more); it waits, within ctx, until each connected server's session has
// subscribed, resolved and reconciled the new flows and deleted the
// removed ones' monitored items (not for a server added or whose entry
// changed: its new session does all of that when it comes up), and
// until the sessions of the servers removed have closed. An error from
// ctx then means the change is made but a session had not confirmed it;
// that session still carries it out. Safe for concurrent use (changes
// are serialised) and with the value path running; Run need not be
// running (a server added is then started by Run).
func (e *Engine) ApplyLive(ctx context.Context, cfg *mapping.Config) error {
	e.liveMu.Lock()
	defer e.liveMu.Unlock()
	start := time.Now()
	sc := e.planServers(cfg)
	ch, err := e.planLive(cfg, sc.byName)
	if err != nil {
		return err
	}
	ops := e.commitLive(cfg, ch, sc)
	// Servers added: their goroutines start under Run (their first
	// session subscribes and resolves their flows); their writers send
	// under the activation in force.
	for _, c := range sc.added {
		e.admitWriter(c.w)
	}
	e.runMu.Lock()
	for _, c := range sc.added {
		e.startConn(c)
	}
	e.runMu.Unlock()
	// A changed server entry: that server's session is rebuilt under the
	// new one (a set's: its members' sessions), nothing else
	// (conn.reconfigure).
	for c, srv := range sc.reopened {
		c.reconfigure(srv)
	}
	// Servers removed: their flows retired above (a mapping naming them
	// was removed in the same config); now their sessions close.
	for _, c := range sc.removed {
		e.stopConn(c)
		c.log.Info("server removed by a config change: session closed")
	}
	if len(sc.removed) > 0 {
		e.conns.Store(&sc.list)
	}
	e.log.Info("config applied live", zap.Int("added", ch.nAdded), zap.Int("removed", ch.nRemoved),
		zap.Int("changed", ch.nChanged), zap.Int("servers_added", len(sc.added)), zap.Int("servers_removed", len(sc.removed)),
		zap.Int("servers_changed", len(sc.reopened)), zap.Int("mappings", len(cfg.Mappings)),
		zap.Duration("took", time.Since(start)))
	for c, op := range ops {
		if c.current() == nil || sc.reopened[c] != nil {
			continue // its next session subscribes and resolves everything
		}
		select {
		case <-op.done:
		case <-ctx.Done():
			return fmt.Errorf("config applied live; server %s had not carried it out yet: %w", c.name, ctx.Err())
		}
	}
	e.log.Info("config change live on every connected server", zap.Duration("took", time.Since(start)))
	return nil
}

// serverChange is the change of the servers, as planned: the conns of
// the new config in its order (added ones built, not started), those
// added and removed (by name: a renamed server is one removed and one
// added) and those whose entry changed, with the new entry.
type serverChange struct {
	list     []*conn
	byName   map[string]*conn
	added    []*conn
	removed  []*conn
	reopened map[*conn]*mapping.Server
}

// planServers works out the change of the servers to cfg's, building
// the conns of servers added (no goroutine is started). Called under
// liveMu.
func (e *Engine) planServers(cfg *mapping.Config) *serverChange {
	old := map[string]*conn{}
	for _, c := range e.connList() {
		old[c.name] = c
	}
	sc := &serverChange{list: make([]*conn, 0, len(cfg.Servers)), byName: make(map[string]*conn, len(cfg.Servers)),
		reopened: map[*conn]*mapping.Server{}}
	for i := range cfg.Servers {
		srv := &cfg.Servers[i]
		c := old[srv.Name]
		switch {
		case c == nil:
			c = newConn(e, srv)
			c.w = newWriter(c)
			sc.added = append(sc.added, c)
		case !sameServer(c.server(), srv):
			sc.reopened[c] = srv
		}
		sc.list = append(sc.list, c)
		sc.byName[srv.Name] = c
	}
	for _, c := range e.connList() {
		if sc.byName[c.name] != c {
			sc.removed = append(sc.removed, c)
		}
	}
	return sc
}

// sameServer reports whether two server entries are the same but for
// where they were read.
func sameServer(a, b *mapping.Server) bool {
	x, y := *a, *b
	x.Pos, y.Pos = mapping.Pos{}, mapping.Pos{}
	return reflect.DeepEqual(x, y)
}

// sameMapping reports whether a mapping of the old config runs unchanged
// under the new one: its own fields (not where they were read) and the
// settings it takes from its group and the engine.
func sameMapping(oc *mapping.Config, om *mapping.Mapping, nc *mapping.Config, nm *mapping.Mapping) bool {
	a, b := *om, *nm
	a.Pos, b.Pos = mapping.Pos{}, mapping.Pos{}
	// The rules behind pointers are compared by value, the rest of the
	// struct by ==.
	if !reflect.DeepEqual(a.Deadband, b.Deadband) || !reflect.DeepEqual(a.Scaling, b.Scaling) ||
		!reflect.DeepEqual(a.Convert, b.Convert) || a.IsEnabled() != b.IsEnabled() {
		return false
	}
	a.Deadband, a.Scaling, a.Convert, a.Enabled = nil, nil, nil, nil
	b.Deadband, b.Scaling, b.Convert, b.Enabled = nil, nil, nil, nil
	return a == b && oc.Effective(om) == nc.Effective(nm) && oc.MaxHold(om) == nc.MaxHold(nm)
}

// maxDeadHandles bounds the handles of removed flows a table keeps
// before a change is refused live (a rebuild starts a table afresh).
func maxDeadHandles(live int) int { return max(live, 4096) }

// planLive works out the change to cfg without changing anything.
func (e *Engine) planLive(cfg *mapping.Config, byName map[string]*conn) (*liveChange, error) {
	old := e.tab.Load()
	flows := make([]*flow, len(old.flows), len(old.flows)+2*len(cfg.Mappings))
	copy(flows, old.flows)
	ch := &liveChange{
		// The old index, changed where mappings go or come: cheaper than
		// building it anew.
		tab:   &flowTable{maps: make([]*mstate, len(cfg.Mappings)), flows: flows, byID: maps.Clone(old.byID)},
		heir:  map[*flow]*flow{},
		moved: map[*mstate]int{},
	}
	kept := make([]bool, len(old.maps)) // by old index
	off := 0                            // where the last mapping found moved to: most keep their place
	for i := range cfg.Mappings {
		m := &cfg.Mappings[i]
		// ms.index is written only under liveMu (moveTo): read here freely.
		var om *mstate
		if g := i + off; g >= 0 && g < len(old.maps) && old.maps[g].m.ID == m.ID {
			om = old.maps[g]
		} else if om = old.byID[m.ID]; om != nil {
			off = om.index - i
		}
		if om != nil && sameMapping(e.cfg, om.m, cfg, m) {
			ch.tab.maps[i] = om
			kept[om.index] = true
			if om.index != i {
				ch.moved[om] = i
			}
			continue
		}
		if om != nil {
			delete(ch.tab.byID, m.ID) // build enters the new one
		}
		ms, err := e.build(cfg, i, byName, ch.tab)
		if err != nil {
			return nil, err
		}
		ch.added = append(ch.added, ms.flows()...)
		if om == nil {
			ch.nAdded++
			continue
		}
		ch.nChanged++
		for _, nf := range ms.flows() {
			of := om.fwd
			if nf.reverse {
				of = om.rev
			}
			if of != nil && of.to == nf.to && of.dstStr() == nf.dstStr() {
				ch.heir[nf] = of
			}
		}
	}
	for k, om := range old.maps {
		if kept[k] {
			continue
		}
		if nm := ch.tab.byID[om.m.ID]; nm == om {
			delete(ch.tab.byID, om.m.ID)
			ch.nRemoved++
		}
		for _, f := range om.flows() {
			ch.retired = append(ch.retired, f)
			ch.tab.flows[f.handle] = nil
		}
	}
	if dead := len(ch.tab.flows) - 2*len(cfg.Mappings); dead > maxDeadHandles(2*len(cfg.Mappings)) {
		return nil, fmt.Errorf("%w: %d handles of removed mappings (a rebuild compacts them)", ErrNotLive, dead)
	}
	return ch, nil
}

// commitLive carries the planned change out on the engine's tables and
// queues what each server's session has to do (not a server removed:
// its session closes). The conns of sc.list become the engine's, with
// those of sc.removed until ApplyLive has stopped them. Called under
// liveMu.
func (e *Engine) commitLive(cfg *mapping.Config, ch *liveChange, sc *serverChange) map[*conn]*liveOp {
	// The old flows stop taking values first: a notification routed
	// through the old table meanwhile is ignored.
	for _, f := range ch.retired {
		f.retire("removed by a config change")
	}
	// Writer slots before the table: a new flow routable is a flow with
	// a slot.
	taken := map[*flow]bool{}
	addW := map[*conn][]*flow{}
	for _, nf := range ch.added {
		addW[nf.to] = append(addW[nf.to], nf)
		if of := ch.heir[nf]; of != nil {
			taken[of] = true
		}
	}
	dropW := map[*conn][]*flow{}
	for _, f := range ch.retired {
		if !taken[f] {
			dropW[f.to] = append(dropW[f.to], f)
		}
	}
	for _, c := range sc.list {
		if len(addW[c]) > 0 || len(dropW[c]) > 0 {
			c.w.relink(addW[c], ch.heir, dropW[c])
		}
	}
	// A server removed keeps no flow while its session closes: nothing
	// is reconciled, retried or written on it any more.
	for _, c := range sc.removed {
		c.w.relink(nil, nil, dropW[c])
		c.setFlows(nil, nil)
	}
	// The servers' flow lists.
	gone := make(map[*flow]bool, len(ch.retired))
	for _, f := range ch.retired {
		gone[f] = true
	}
	addR := map[*conn][]*flow{}
	for _, nf := range ch.added {
		addR[nf.from] = append(addR[nf.from], nf)
	}
	ops := map[*conn]*liveOp{}
	op := func(c *conn) *liveOp {
		if ops[c] == nil {
			ops[c] = &liveOp{queued: time.Now(), done: make(chan struct{})}
		}
		return ops[c]
	}
	goneR, goneW := map[*conn]int{}, map[*conn]int{}
	for _, f := range ch.retired {
		goneR[f.from]++
		goneW[f.to]++
	}
	for _, c := range sc.list {
		if goneR[c] == 0 && goneW[c] == 0 && len(addR[c]) == 0 && len(addW[c]) == 0 {
			continue
		}
		reads, writes := c.readFlows(), c.writeFlows()
		if goneR[c] > 0 {
			reads = keep(reads, gone)
			for _, f := range ch.retired {
				if f.from == c {
					op(c).unmonitor = append(op(c).unmonitor, f.handle)
				}
			}
		}
		if goneW[c] > 0 {
			writes = keep(writes, gone)
		}
		if len(addR[c]) > 0 {
			op(c).monitor = addR[c]
		}
		if len(addW[c]) > 0 {
			op(c).targets = addW[c]
		}
		// New slices: a reader may hold the old ones.
		c.setFlows(append(reads[:len(reads):len(reads)], addR[c]...), append(writes[:len(writes):len(writes)], addW[c]...))
	}
	for ms, i := range ch.moved {
		ms.moveTo(i)
	}
	// The new server list before the table that routes to its conns; the
	// servers removed stay in it until their sessions have closed
	// (ApplyLive): the lease watcher and WaitIdle see a Write still in
	// flight on them.
	closing := append(sc.list[:len(sc.list):len(sc.list)], sc.removed...)
	e.conns.Store(&closing)
	e.tab.Store(ch.tab)
	select {
	case e.tabChanged <- struct{}{}:
	default: // one signal pending is enough
	}
	e.cfg = cfg
	// clock_skew: every mapping holds it (mstate.tol), under its own lock;
	// a new mapping state takes it from the settings below. The other
	// engine settings are read where they are used: the writers' limits (write_batch, writes_in_flight) from
	// their next request, subscribe_batch from the next CreateMonitoredItems,
	// the retry backoff from the next wait. The publishing interval is
	// a mapping setting (changed mappings above).
	if tune := cfg.EngineSettings(); tune != e.settings() {
		skew := tune.ClockSkew != e.settings().ClockSkew
		e.tune.Store(&tune)
		if skew {
			for _, ms := range ch.tab.maps {
				ms.setClockSkew(tune.ClockSkew)
			}
		}
		for _, c := range sc.list {
			c.w.wake() // more requests in flight may go now
		}
	}
	for c, o := range ops {
		c.liveOps.push(o)
	}
	return ops
}

// keep returns the flows of fs not in gone, in a new slice.
func keep(fs []*flow, gone map[*flow]bool) []*flow {
	out := make([]*flow, 0, len(fs))
	for _, f := range fs {
		if !gone[f] {
			out = append(out, f)
		}
	}
	return out
}

// relink changes the writer's slots for a live change: each flow of add
// takes the slot of its heir's retired flow (a changed mapping writing
// the same node; the old value pending there is dropped) or a new one;
// the slots of drop forget their flows and never serve again. The new
// flows' wslot is set here, before the engine's table makes them
// routable.
func (w *writer) relink(add []*flow, heir map[*flow]*flow, drop []*flow) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range add {
		if of := heir[f]; of != nil {
			f.wslot = of.wslot
			s := &w.slots[f.wslot]
			s.f, s.dv = f, nil
			continue
		}
		f.wslot = len(w.slots)
		w.slots = append(w.slots, slot{f: f})
	}
	for _, f := range drop {
		s := &w.slots[f.wslot]
		s.f, s.dv = nil, nil
	}
}

// reconfigure makes srv (validated, the same name) the server's entry
// and has the supervisor end the current session and open one under it
// at once (errReopen); a redundant server set's supervisor ends its
// members' sessions and starts those of the new entry (superviseSet), as
// it does when the entry turns from a single server into a set or back,
// or, when only the set's endpoints changed, starts the members added
// and stops those removed (changeMembers). Everything else of the server stays:
// its flows keep their state and cache, its writer its slots and pending
// values; the new session subscribes and resolves every flow of the
// server and reconciles its targets as after any reconnect (a target
// already holding its value is not written). The old session ends as
// every session does (closeSession): a Write still in flight resets its
// socket, and the session stays visible to the lease watcher (conn.live)
// until it is closed; one with a Write unanswered is reset at once. What
// the writer learnt about the server (request sizes, timestamps refused)
// is forgotten: the entry may name another server. Called under liveMu.
func (c *conn) reconfigure(srv *mapping.Server) {
	old := c.server()
	c.ent.Store(&connEntry{srv: srv, timeouts: srv.EffectiveTimeouts()})
	c.noProbe.Store(false)
	c.w.mu.Lock()
	c.w.learn.forget()
	c.w.noTimestamps = false
	c.w.mu.Unlock()
	select {
	case c.reopen <- struct{}{}:
	default:
	}
	// A Write unanswered (a stalled link) would hold the session's loop
	// in its keep-alive Read for up to the request timeout: reset the
	// socket now, as closeSession would; the values go again on the new
	// session.
	if s := c.live.Load(); s != nil && s.writes.Load() > 0 {
		s.abort(errReopen)
	}
	if endpointsOnly(old, srv) {
		return // a set's members kept stay (changeMembers); one removed closes its session
	}
	for _, m := range c.memberList() { // a set: its members' sessions
		if s := m.live.Load(); s != nil && s.writes.Load() > 0 {
			s.abort(errReopen)
		}
	}
}

// runLive carries out the queued live changes on session s (the
// supervisor goroutine of s only). A failure that breaks the session
// faults it: its successor subscribes and resolves everything.
func (c *conn) runLive(ctx context.Context, s *session, subs map[time.Duration]*opcua.Subscription, notes chan *opcua.PublishNotificationData) {
	for _, op := range c.liveOps.take() {
		start := time.Now()
		err := c.liveSources(ctx, s, subs, notes, op)
		srcDone := time.Since(start)
		if err == nil {
			err = c.liveTargets(ctx, s, op.targets)
		}
		if err != nil {
			s.fault(err)
		}
		close(op.done)
		c.log.Info("session carried out a live config change", zap.Int("monitored", len(op.monitor)),
			zap.Int("deleted", len(op.unmonitor)), zap.Int("targets", len(op.targets)), zap.Duration("sources", srcDone),
			zap.Duration("took", time.Since(start)), zap.Duration("waited", start.Sub(op.queued)), zap.Error(err))
	}
}

// liveSources subscribes the new flows reading from this server (new
// items first, so a changed mapping's new item runs before its old one
// goes) and deletes the items of retired ones.
func (c *conn) liveSources(ctx context.Context, s *session, subs map[time.Duration]*opcua.Subscription,
	notes chan *opcua.PublishNotificationData, op *liveOp) error {
	var add []*flow
	for _, f := range op.monitor {
		if s.item(f.handle).id == 0 {
			f.sourceResolved(f.resolveSrc(s.namespaces))
			add = append(add, f)
		}
	}
	if len(add) > 0 {
		if err := c.readEURanges(ctx, s, add); err != nil {
			return fmt.Errorf("%w: %w", errFault, err)
		}
		byInterval := map[time.Duration][]*flow{}
		for _, f := range add {
			if f.monitorable() {
				byInterval[f.publishing] = append(byInterval[f.publishing], f)
			}
		}
		for iv, fs := range byInterval {
			sub := subs[iv]
			if sub == nil {
				var err error
				if sub, err = c.createSub(ctx, s, iv, notes); err != nil {
					return err
				}
				subs[iv] = sub
				c.stats.subs.Store(int32(len(subs)))
			}
			if err := c.monitor(ctx, s, sub, fs); err != nil {
				return err
			}
		}
	}
	if len(op.unmonitor) > 0 {
		c.unmonitor(ctx, s, subs, op.unmonitor)
		c.stats.subs.Store(int32(len(subs)))
	}
	return nil
}

// unmonitor deletes the monitored items of the retired flows' handles hs
// on session s (those it has), and a subscription of subs they leave
// without items with them.
func (c *conn) unmonitor(ctx context.Context, s *session, subs map[time.Duration]*opcua.Subscription, hs []uint32) {
	bySub := map[uint32][]uint32{}
	for _, h := range hs {
		if it := s.clearItem(h); it.id != 0 {
			bySub[it.sub] = append(bySub[it.sub], it.id)
		}
	}
	per := c.monBatch(s)
	for sub, ids := range bySub {
		if s.subItems[sub] == 0 {
			// Emptied (a group's publishing interval changed, its last
			// mappings removed): the subscription goes with its items.
			c.deleteSub(ctx, s, subs, sub)
			continue
		}
		for start := 0; start < len(ids); start += per {
			if err := c.deleteItems(ctx, s, sub, ids[start:min(start+per, len(ids))]); err != nil {
				// The router ignores them anyway (their handles are nil):
				// only traffic is lost, not correctness.
				c.log.Warn("deleting monitored items of removed mappings failed", zap.Int("items", len(ids)), zap.Error(err))
			}
		}
	}
}

// deleteSub deletes the subscription with id sub, which no monitored
// item of a flow uses any more, with its items (Part 4, 5.13.8:
// DeleteSubscriptions deletes them), and forgets it. Subscriptions are
// shared by every mapping of a server with the same publishing interval;
// a group's interval change moves its items to the subscription of the
// new interval (a new flow has a new handle, so its item is created
// anew in any case) rather than changing the interval of one they
// share (ModifySubscription), and the one left empty is deleted here.
func (c *conn) deleteSub(ctx context.Context, s *session, subs map[time.Duration]*opcua.Subscription, sub uint32) {
	for iv, su := range subs {
		if su.SubscriptionID != sub {
			continue
		}
		delete(subs, iv)
		delete(s.subItems, sub)
		rctx, cancel := context.WithTimeout(ctx, c.tmo().Request)
		err := su.Cancel(rctx) // DeleteSubscriptions; gopcua's publish loop forgets it
		cancel()
		if err != nil {
			// Its notifications find no flow (their handles are nil): only
			// traffic is lost, not correctness.
			c.log.Warn("deleting an emptied subscription failed", zap.Duration("publishing_interval", iv), zap.Error(err))
			return
		}
		c.log.Info("emptied subscription deleted", zap.Duration("publishing_interval", iv))
		return
	}
}

// liveTargets resolves and types the new flows writing to this server
// and, while the engine writes, reconciles them: their sources are read
// and a target that already holds the value is not written.
func (c *conn) liveTargets(ctx context.Context, s *session, fs []*flow) error {
	if len(fs) == 0 {
		return nil
	}
	if err := c.resolveTargets(ctx, s, fs); err != nil {
		return err
	}
	if c.e.queueing.Load() {
		c.e.reconcile(ctx, fs, true, false)
	}
	return nil
}

// deleteItems sends one DeleteMonitoredItems request (Part 4, 5.12.6).
func (c *conn) deleteItems(ctx context.Context, s *session, sub uint32, ids []uint32) error {
	rctx, cancel := context.WithTimeout(ctx, c.tmo().Request)
	defer cancel()
	var res *ua.DeleteMonitoredItemsResponse
	err := s.client.Send(rctx, &ua.DeleteMonitoredItemsRequest{SubscriptionID: sub, MonitoredItemIDs: ids}, func(v ua.Response) error {
		r, ok := v.(*ua.DeleteMonitoredItemsResponse)
		if !ok {
			return fmt.Errorf("unexpected response %T", v)
		}
		res = r
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete monitored items: %w", err)
	}
	if res.ResponseHeader != nil && res.ResponseHeader.ServiceResult != ua.StatusOK {
		return fmt.Errorf("delete monitored items: %w", res.ResponseHeader.ServiceResult)
	}
	return nil
}
