package bridge

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/mapping"
)

// The members of a redundant server set. A conn whose server is a set
// (mapping.Server.IsSet) runs superviseSet instead of one session: one
// goroutine per member keeps that member's session, its ServiceLevel
// subscription and (hot) the monitored items of the set's source flows;
// the set goroutine owns the choice of the member in use (selectMember)
// and switches: the flows are resolved on the new member, its source
// values read and routed (the value path drops anything older than what
// was already accepted), the writer sends to it, and the set's targets
// are read and only differences written. A live config change of the
// set's mappings is carried out by the set goroutine (runSetLive): on
// the member in use as a single server's session does it, and on every
// member keeping monitored items, which follow the set's flows
// (syncData); a changed set entry ends superviseSet, and the conn's
// supervise starts the new one.

// levelHandle is the ClientHandle of a member's ServiceLevel item:
// outside the flows' handles, so the router never sees it as a flow.
const levelHandle = ^uint32(0)

// levelInterval is the publishing interval of a member's ServiceLevel
// subscription: a ServiceLevel drop is seen within about this long.
const levelInterval = 100 * time.Millisecond

// ServerSwitch describes a change of the member in use of a redundant
// server set (OPC UA Part 4, 6.6.2): From or To is "" when no member was
// or is in use.
type ServerSwitch struct {
	Server string
	From   string
	To     string
	// FromLevel and ToLevel are the members' ServiceLevels at the switch
	// (-1: unknown or down).
	FromLevel, ToLevel int
	// Reason is why the rule chose To (see selectMember).
	Reason string
	// Gap is the time from the last data received from the member left
	// (a notification, the ServiceLevel or a keep-alive) to the new
	// member's current values routed; 0 for a switch to none.
	Gap time.Duration
	At  time.Time
}

// MemberStats is one member of a redundant server set.
type MemberStats struct {
	Endpoint     string
	State        ConnState
	ServiceLevel int // -1 unknown or down
	InUse        bool
	// Reason is why the member in use was chosen (on the member in use
	// only) or why the member's last session ended.
	Reason string
}

// member is one server of a redundant set. Its fields are atomics: the
// member goroutine writes them, the set goroutine, the dispatchers and
// Stats read them.
type member struct {
	idx int
	ep  string
	log *zap.Logger

	// live is the member's session while its socket is open (the lease
	// watcher resets it with a Write in flight, fence.go).
	live atomic.Pointer[session]
	// ready is set once the session is prepared and the ServiceLevel is
	// known; nil while down.
	ready    atomic.Pointer[memberSession]
	level    atomic.Int32
	state    atomic.Int32
	lastErr  atomic.Pointer[string]
	lastData atomic.Int64 // UnixNano of the last data received
	// active is set while the member is in use: its dispatcher routes
	// data notifications only then.
	active atomic.Bool
	// tried is set once the member's first session came up or failed.
	tried atomic.Bool
}

// memberSession is a member's prepared session.
type memberSession struct {
	s     *session
	notes chan *opcua.PublishNotificationData

	// mu guards data and the monitored items on s (session.items): held
	// while they are created or deleted, by the set goroutine (switchTo,
	// a live change) or the member's (its retries while in use).
	mu   sync.Mutex
	data *dataItems // the monitored items of the set's source flows (nil: none)
}

// dataItems are the monitored items of a set's source flows on one
// member, resolved on that member's namespaces. A live config change
// adds and deletes some (syncData); gen says which flows they follow.
type dataItems struct {
	subs map[time.Duration]*opcua.Subscription
	// items are the flows considered, by handle; the items' ids are in
	// the session's item table (session.items).
	items map[uint32]dataItem
	// gen is the conn's flowGen the items were made for (read before
	// the flows: a change meanwhile shows as a gen behind).
	gen uint64
}

// dataItem is a set's source flow on one member: its node resolved on
// the member's namespaces (nil: it does not resolve) and the status of
// its monitored item's creation.
type dataItem struct {
	nid  *ua.NodeID
	code ua.StatusCode
}

func (m *member) setState(s ConnState) { m.state.Store(int32(s)) }

// newMember builds member idx of the set for endpoint ep.
func (c *conn) newMember(idx int, ep string) *member {
	m := &member{idx: idx, ep: ep, log: c.log.With(zap.String("member", ep))}
	m.level.Store(-1)
	return m
}

// memberList returns the members of a server set (nil for a single
// server). The slice is never modified; discovery replaces it.
func (c *conn) memberList() []*member {
	if p := c.members.Load(); p != nil {
		return *p
	}
	return nil
}

// setWake asks the set goroutine to run the selection rule; it never
// blocks (a 1-buffered channel merges wakes).
func (c *conn) wakeSet() {
	select {
	case c.setWake <- struct{}{}:
	default:
	}
}

// superviseSet runs the members of a server set and the selection of the
// member in use until ctx is done. It is the conn's supervise for a set
// and returns only after every member goroutine has exited.
// A live change of the set's entry (conn.reconfigure) ends it: the
// members' sessions close and the conn's supervise starts the set (or
// the single server) of the new entry.
func (c *conn) superviseSet(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	mctx, stopMembers := context.WithCancel(ctx)
	defer stopMembers() // before wg.Wait
	ent := c.ent.Load()
	built := make([]*member, 0, len(ent.srv.Endpoints))
	for _, ep := range ent.srv.Endpoints {
		built = append(built, c.newMember(len(built), ep))
	}
	c.members.Store(&built) // never modified: discovery stores a new slice
	members := built
	// Each member runs under a context of its own: a live change of the
	// endpoints stops a member removed alone (memberRuns.stop).
	runs := memberRuns{wg: &wg, ctx: mctx, c: c, byMember: map[*member]*memberRun{}}
	for _, m := range members {
		runs.start(m)
	}
	var discovered chan []string
	if ent.srv.Redundancy.Discover {
		discovered = make(chan []string, 1)
		wg.Add(1)
		go func() { defer wg.Done(); c.discover(mctx, discovered) }()
	}
	margin := c.server().SetMargin()
	cur := -1
	var curSess *memberSession
	everUsed := false
	// The first choice waits until every member has come up or failed
	// once (at most the connect timeout): ties go to the first listed,
	// not to the fastest.
	grace := time.NewTimer(c.tmo().Connect)
	defer grace.Stop()
	graceOver := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.reopen:
			next := c.ent.Load()
			if next == ent {
				continue
			}
			if !endpointsOnly(ent.srv, next.srv) {
				c.endSet(cur, "server set "+c.name+" changed")
				return
			}
			ent = next
			members, cur = c.changeMembers(members, cur, ent.srv.Endpoints, &runs)
			if cur < 0 {
				curSess = nil
			}
		case <-c.liveOps.wake:
			c.runSetLive(ctx, members, curSess)
			continue
		case <-c.setWake:
		case <-grace.C:
			graceOver = true
		case eps := <-discovered:
			// New members (the listed ones keep their indexes: ties still
			// go to the first listed, then in ServerUriArray order).
			next := append([]*member(nil), members...)
			for _, ep := range eps {
				m := c.newMember(len(next), ep)
				next = append(next, m)
				runs.start(m)
			}
			members = next
			c.members.Store(&next)
			continue
		}
		c.syncMembers(ctx, members, curSess)
		if !graceOver {
			graceOver = true
			for _, m := range members {
				graceOver = graceOver && m.tried.Load()
			}
			if !graceOver {
				continue
			}
		}
		views := make([]memberView, len(members))
		for i, m := range members {
			views[i] = memberView{usable: m.ready.Load() != nil && m.level.Load() >= 0, level: int(m.level.Load())}
		}
		next, why := selectMember(views, cur, margin)
		if next == cur && (next < 0 || members[next].ready.Load() == curSess) {
			continue
		}
		if next == cur {
			why = "member in use reconnected"
		}
		ms, err := c.switchTo(ctx, cur, next, why, everUsed)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("server set: switch failed; choosing again", zap.String("to", members[next].ep), zap.Error(err))
			if ms != nil {
				ms.s.fault(err)
			}
			c.setState(Connecting) // no member in use until the next choice
			cur, curSess = -1, nil
			c.wakeSet()
			continue
		}
		cur, curSess = next, ms
		everUsed = everUsed || next >= 0
	}
}

// memberRun is one member's goroutine as superviseSet started it.
type memberRun struct {
	stop context.CancelFunc
	done chan struct{}
}

// memberRuns are the member goroutines of one superviseSet (its
// goroutine only), counted in its WaitGroup.
type memberRuns struct {
	wg       *sync.WaitGroup
	ctx      context.Context
	c        *conn
	byMember map[*member]*memberRun
}

// start starts m's goroutine.
func (r *memberRuns) start(m *member) {
	ctx, stop := context.WithCancel(r.ctx)
	run := &memberRun{stop: stop, done: make(chan struct{})}
	r.byMember[m] = run
	r.wg.Add(1)
	go func() { defer r.wg.Done(); defer close(run.done); r.c.superviseMember(ctx, m) }()
}

// stop stops m's goroutine and waits for it (its session closed).
func (r *memberRuns) stop(m *member) {
	if run := r.byMember[m]; run != nil {
		run.stop()
		<-run.done
		delete(r.byMember, m)
	}
}

// endpointsOnly reports whether a changed entry of a server set differs
// from the old one in its endpoints only (and neither discovers members
// beyond them): its members are then changed one by one.
func endpointsOnly(a, b *mapping.Server) bool {
	if !a.IsSet() || !b.IsSet() || a.Redundancy.Discover || b.Redundancy.Discover {
		return false
	}
	x, y := *a, *b
	x.Endpoints, y.Endpoints = nil, nil
	return sameServer(&x, &y)
}

// changeMembers makes the set's members those of endpoints eps, for a
// live change of the endpoints alone: a member whose endpoint
// stays keeps its session (the one in use stays in use), one added
// starts, one removed is stopped and its session closed. When the member
// in use is removed, no member is in use until the next choice, and the
// flows take the next member's values as after any switch (nothing older
// than the cache). It returns the new members and the index of the one
// in use (-1: none). Set goroutine only.
func (c *conn) changeMembers(members []*member, cur int, eps []string, runs *memberRuns) ([]*member, int) {
	byEP := make(map[string]*member, len(members))
	for _, m := range members {
		byEP[m.ep] = m
	}
	list := make([]*member, 0, len(eps))
	for _, ep := range eps {
		m := byEP[ep]
		if m == nil {
			m = c.newMember(len(list), ep)
			runs.start(m)
		} else {
			delete(byEP, ep)
		}
		list = append(list, m)
	}
	var inUse *member
	if cur >= 0 {
		inUse = members[cur]
	}
	cur = -1
	for i, m := range list {
		if m == inUse {
			cur = i
		}
	}
	if inUse != nil && cur < 0 {
		inUse.active.Store(false)
		c.sess.Store(nil) // the writer stops sending to it
		c.setState(Connecting)
		c.level.Store(-1)
		for _, f := range c.readFlows() {
			f.sourceMemberChanged()
		}
	}
	c.members.Store(&list)
	for _, m := range byEP {
		runs.stop(m)
	}
	c.log.Info("server set endpoints changed: members added and removed", zap.Strings("endpoints", eps),
		zap.Int("removed", len(byEP)), zap.Bool("in_use_removed", inUse != nil && cur < 0))
	c.wakeSet()
	return list, cur
}

// endSet ends the set's use of its members for a live change of its
// entry: no member in use, the writer stops sending, the sources are
// stale until the new entry's sessions deliver. Set goroutine only.
func (c *conn) endSet(cur int, why string) {
	if cur >= 0 {
		c.memberList()[cur].active.Store(false)
	}
	c.sess.Store(nil)
	c.setState(Disconnected)
	c.level.Store(-1)
	for _, f := range c.readFlows() {
		f.sourceLost(why)
	}
	if !c.server().IsSet() {
		c.members.Store(nil) // a single server now
	}
	c.log.Info("server set entry changed: its members' sessions rebuilt")
}

// superviseMember keeps one member's session up until ctx is done.
func (c *conn) superviseMember(ctx context.Context, m *member) {
	attempt := 0
	for ctx.Err() == nil {
		start := time.Now()
		err := c.runMember(ctx, m)
		m.setState(Disconnected)
		if ctx.Err() != nil {
			return
		}
		c.stats.reconnects.Add(1)
		m.tried.Store(true)
		c.wakeSet()
		if err != nil {
			msg := err.Error()
			m.lastErr.Store(&msg)
			c.lastErr.Store(&msg)
		}
		if time.Since(start) > 30*time.Second {
			attempt = 0
		} else {
			attempt++
		}
		wait := c.e.backoff(attempt - 1)
		m.log.Warn("member session ended; reconnecting", zap.Error(err), zap.Duration("retry_in", wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// runMember runs one session of a member until a fault: connect, the
// ServiceLevel subscription, (hot) the monitored items, then the
// keep-alive. It always closes the session before returning.
func (c *conn) runMember(ctx context.Context, m *member) error {
	m.setState(Connecting)
	s, err := c.openSession(ctx, m.ep)
	if err != nil {
		return err
	}
	m.live.Store(s)
	defer func() {
		m.ready.Store(nil)
		m.level.Store(-1)
		c.wakeSet()
		closeSession(s)
		m.live.Store(nil)
	}()
	if err := c.sessionInfo(ctx, s); err != nil {
		return err
	}
	ms := &memberSession{s: s, notes: make(chan *opcua.PublishNotificationData, 64)}
	var wg sync.WaitGroup
	dctx, stopDispatch := context.WithCancel(ctx)
	defer func() { stopDispatch(); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); c.dispatchMember(dctx, m, s, ms.notes) }()

	rctx, cancel := context.WithTimeout(ctx, c.tmo().Request)
	lsub, err := s.client.Subscribe(rctx, &opcua.SubscriptionParameters{Interval: levelInterval,
		MaxKeepAliveCount: keepAliveCount(levelInterval, c.tmo().DataAge)}, ms.notes)
	cancel()
	if err != nil {
		return fmt.Errorf("%w: ServiceLevel subscription: %w", errFault, err)
	}
	req := opcua.NewMonitoredItemCreateRequestWithDefaults(ua.NewNumericNodeID(0, id.Server_ServiceLevel), ua.AttributeIDValue, levelHandle)
	req.RequestedParameters.SamplingInterval = float64(levelInterval) / float64(time.Millisecond)
	if _, err := c.createItems(ctx, s, lsub, []*ua.MonitoredItemCreateRequest{req}); err != nil {
		return err
	}
	if c.server().SetMode() == mapping.SetHot {
		d, err := c.createData(ctx, s, ms.notes)
		if err != nil {
			return err
		}
		ms.data = d
	}
	lv, err := c.readStatus(ctx, s)
	if err != nil {
		return fmt.Errorf("%w: keep-alive: %w", errFault, err)
	}
	if lv < 0 {
		// ServiceLevel is mandatory (Part 5, 6.3.2); a server without
		// one counts as Healthy so that a loss still fails over.
		lv = 255
	}
	m.level.Store(int32(lv))
	m.lastData.Store(time.Now().UnixNano())
	m.ready.Store(ms)
	m.tried.Store(true)
	m.setState(Connected)
	c.stats.connects.Add(1)
	m.log.Info("member session up", zap.Int("service_level", lv), zap.String("mode", c.server().SetMode()))
	c.wakeSet()

	keep := time.NewTicker(c.tmo().KeepAlive)
	defer keep.Stop()
	retry := time.NewTimer(c.e.backoff(0))
	defer retry.Stop()
	retries := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-s.faultCh:
			return fmt.Errorf("%w: %w", errFault, err)
		case <-keep.C:
			lv, err := c.readStatus(ctx, s)
			if err != nil {
				return fmt.Errorf("%w: keep-alive: %w", errFault, err)
			}
			m.lastData.Store(time.Now().UnixNano())
			if lv >= 0 {
				c.setLevel(m, lv)
			}
		case <-retry.C:
			// The member in use retries the set's quarantined mappings,
			// as a single server's session does.
			ms.mu.Lock() // a live change may create or delete items meanwhile
			if d := ms.data; m.active.Load() && c.current() == s && d != nil && c.retryQuarantined(ctx, s, d.subs, nil) > 0 {
				retries++
			} else {
				retries = 0
			}
			ms.mu.Unlock()
			retry.Reset(c.e.backoff(retries))
		}
	}
}

// setLevel records a member's ServiceLevel and wakes the selection on a
// change.
func (c *conn) setLevel(m *member, lv int) {
	if int(m.level.Swap(int32(lv))) != lv {
		m.log.Info("member ServiceLevel", zap.Int("service_level", lv))
		if m.active.Load() {
			c.level.Store(int32(lv))
		}
		c.wakeSet()
	}
}

// dispatchMember handles a member session's notifications until ctx is
// done: ServiceLevel changes go to the selection, data changes to the
// router while the member is in use; a subscription error faults the
// session.
func (c *conn) dispatchMember(ctx context.Context, m *member, s *session, notes <-chan *opcua.PublishNotificationData) {
	r := newRouter(c.e, c)
	for {
		var n *opcua.PublishNotificationData
		select {
		case <-ctx.Done():
			return
		case n = <-notes:
		}
		now := time.Now()
		m.lastData.Store(now.UnixNano())
		if n.Error != nil {
			s.fault(fmt.Errorf("subscription %d: %w", n.SubscriptionID, n.Error))
			continue
		}
		switch v := n.Value.(type) {
		case *ua.DataChangeNotification:
			for _, it := range v.MonitoredItems {
				if it.ClientHandle == levelHandle && it.Value != nil && isGood(it.Value.Status) {
					if lv, ok := it.Value.Value.Value().(uint8); ok {
						c.setLevel(m, int(lv))
					}
				}
			}
			if m.active.Load() && c.current() == s {
				c.stats.notifications.Add(uint64(len(v.MonitoredItems)))
				r.route(v.MonitoredItems, now)
			}
		case *ua.StatusChangeNotification:
			s.fault(fmt.Errorf("subscription %d status change: %w", n.SubscriptionID, v.Status))
		}
	}
}

// createData creates the monitored items of the set's source flows on
// session s, resolved on its own namespaces, without touching the flows:
// activate records the outcome when the member is taken in use.
func (c *conn) createData(ctx context.Context, s *session, notes chan *opcua.PublishNotificationData) (*dataItems, error) {
	d := &dataItems{subs: map[time.Duration]*opcua.Subscription{}, items: map[uint32]dataItem{}, gen: c.flowGen.Load()}
	if err := c.addData(ctx, s, d, c.readFlows(), notes); err != nil {
		return nil, err
	}
	return d, nil
}

// addData creates the monitored items of flows (enabled ones) in d on
// session s, with a subscription per publishing interval d does not
// have yet, and records them in d and the session's item table.
func (c *conn) addData(ctx context.Context, s *session, d *dataItems, flows []*flow, notes chan *opcua.PublishNotificationData) error {
	byInterval := map[time.Duration][]*flow{}
	for _, f := range flows {
		if !f.ms.m.IsEnabled() {
			continue
		}
		nid, err := f.resolveSrc(s.namespaces)
		if err != nil {
			d.items[f.handle] = dataItem{}
			continue
		}
		d.items[f.handle] = dataItem{nid: nid}
		byInterval[f.publishing] = append(byInterval[f.publishing], f)
	}
	intervals := make([]time.Duration, 0, len(byInterval))
	for iv := range byInterval {
		intervals = append(intervals, iv)
	}
	sort.Slice(intervals, func(i, j int) bool { return intervals[i] < intervals[j] })
	for _, iv := range intervals {
		sub := d.subs[iv]
		if sub == nil {
			var err error
			if sub, err = c.createSub(ctx, s, iv, notes); err != nil {
				return err
			}
			d.subs[iv] = sub
		}
		fs := byInterval[iv]
		per := c.monBatch(s)
		for start := 0; start < len(fs); start += per {
			batch := fs[start:min(start+per, len(fs))]
			reqs := make([]*ua.MonitoredItemCreateRequest, len(batch))
			for k, f := range batch {
				reqs[k] = c.itemRequest(f, d.items[f.handle].nid, true)
			}
			res, err := c.createItems(ctx, s, sub, reqs)
			if err != nil {
				return err
			}
			var retry []*flow
			for k, r := range res.Results {
				if r.StatusCode == ua.StatusBadFilterNotAllowed || r.StatusCode == ua.StatusBadMonitoredItemFilterUnsupported ||
					r.StatusCode == ua.StatusBadDeadbandFilterInvalid {
					retry = append(retry, batch[k])
					continue
				}
				d.record(s, batch[k], sub, r)
			}
			if len(retry) > 0 {
				reqs = reqs[:0]
				for _, f := range retry {
					reqs = append(reqs, c.itemRequest(f, d.items[f.handle].nid, false))
				}
				res, err := c.createItems(ctx, s, sub, reqs)
				if err != nil {
					return err
				}
				for k, r := range res.Results {
					d.record(s, retry[k], sub, r)
				}
			}
		}
	}
	return nil
}

// record records the creation of f's monitored item in sub.
func (d *dataItems) record(s *session, f *flow, sub *opcua.Subscription, r *ua.MonitoredItemCreateResult) {
	it := d.items[f.handle]
	it.code = r.StatusCode
	d.items[f.handle] = it
	s.setItem(f.handle, sub.SubscriptionID, r)
}

// monitored records on each of flows whose item d has the outcome of its
// creation (the member is taken in use, or a live change added it).
func (d *dataItems) monitored(flows []*flow) {
	for _, f := range flows {
		if it, ok := d.items[f.handle]; ok && it.nid != nil {
			f.monitored(it.code)
		}
	}
}

// syncData makes the monitored items of member session ms follow the
// set's source flows now (a live change added or removed some): the
// items of new flows are created first, then those of flows gone are
// deleted, with a subscription they leave empty. The caller holds ms.mu.
func (c *conn) syncData(ctx context.Context, ms *memberSession) error {
	d := ms.data
	gen := c.flowGen.Load() // before the flows: see dataItems.gen
	flows := c.readFlows()
	want := make(map[uint32]bool, len(flows))
	var add []*flow
	for _, f := range flows {
		if !f.ms.m.IsEnabled() {
			continue
		}
		want[f.handle] = true
		if _, ok := d.items[f.handle]; !ok {
			add = append(add, f)
		}
	}
	var gone []uint32
	for h := range d.items {
		if !want[h] {
			gone = append(gone, h)
			delete(d.items, h)
		}
	}
	if err := c.addData(ctx, ms.s, d, add, ms.notes); err != nil {
		return err
	}
	c.unmonitor(ctx, ms.s, d.subs, gone)
	d.gen = gen
	return nil
}

// syncMembers brings the monitored items of the members not in use (cur
// is) up to the set's flows after a live change (hot mode: each member
// keeps them; a member whose session came up while the change was made
// may be behind). A failure faults that member's session. Set goroutine
// only.
func (c *conn) syncMembers(ctx context.Context, members []*member, cur *memberSession) {
	gen := c.flowGen.Load()
	for _, m := range members {
		ms := m.ready.Load()
		if ms == nil || ms == cur {
			continue
		}
		ms.mu.Lock()
		if ms.data != nil && ms.data.gen != gen {
			if err := c.syncData(ctx, ms); err != nil {
				ms.s.fault(err)
			}
		}
		ms.mu.Unlock()
	}
}

// runSetLive carries out the queued live changes on a server set (the
// set goroutine only): on the member in use (cur, nil: none) the new
// source flows are resolved and monitored and the new targets resolved,
// read and reconciled, as a single server's session does (runLive); on
// every member keeping monitored items they follow the flows (syncData).
// A failure on the member in use faults its session: the set then
// chooses again, and the switch resolves everything.
func (c *conn) runSetLive(ctx context.Context, members []*member, cur *memberSession) {
	ops := c.liveOps.take()
	if len(ops) == 0 {
		return
	}
	start := time.Now()
	var monitor, targets []*flow
	for _, op := range ops {
		monitor = append(monitor, op.monitor...)
		targets = append(targets, op.targets...)
	}
	var err error
	if cur != nil && c.current() == cur.s {
		if err = c.setLiveInUse(ctx, cur, monitor, targets); err != nil {
			cur.s.fault(err)
		}
	}
	c.syncMembers(ctx, members, cur)
	for _, op := range ops {
		close(op.done)
	}
	c.log.Info("server set carried out a live config change", zap.Int("monitored", len(monitor)),
		zap.Int("targets", len(targets)), zap.Bool("in_use", cur != nil), zap.Duration("took", time.Since(start)), zap.Error(err))
}

// setLiveInUse carries out a live change on the member in use ms: the
// new source flows resolved on it before their items exist (as switchTo
// does), the items made to follow the flows, the outcome recorded, then
// the new targets (liveTargets).
func (c *conn) setLiveInUse(ctx context.Context, ms *memberSession, monitor, targets []*flow) error {
	s := ms.s
	for _, f := range monitor {
		f.sourceResolved(f.resolveSrc(s.namespaces))
	}
	if err := c.readEURanges(ctx, s, monitor); err != nil {
		return fmt.Errorf("%w: %w", errFault, err)
	}
	ms.mu.Lock()
	var err error
	if ms.data != nil { // switchTo made them; nil only if it failed, and the session with it
		if err = c.syncData(ctx, ms); err == nil {
			ms.data.monitored(monitor)
		}
	}
	ms.mu.Unlock()
	if err != nil {
		return err
	}
	return c.liveTargets(ctx, s, targets)
}

// coolDown deletes the data subscriptions of a warm member that is no
// longer in use (if its session is still up).
func (c *conn) coolDown(ctx context.Context, m *member) {
	oms := m.ready.Load()
	if oms == nil || m.active.Load() {
		return
	}
	oms.mu.Lock()
	d := oms.data
	oms.data = nil
	oms.s.items, oms.s.subItems = nil, nil // deleted with their subscriptions
	oms.mu.Unlock()
	if d != nil {
		cctx, cancel := context.WithTimeout(ctx, c.tmo().Request)
		d.cancel(cctx)
		cancel()
	}
}

// cancel deletes the data subscriptions (warm mode, member left).
func (d *dataItems) cancel(ctx context.Context) {
	for _, sub := range d.subs {
		_ = sub.Cancel(ctx)
	}
}

// switchTo makes member to (-1: none) the member in use instead of from.
// It runs on the set goroutine only. On an error the new member's
// session is faulty; the caller chooses again.
func (c *conn) switchTo(ctx context.Context, from, to int, why string, report bool) (*memberSession, error) {
	var old *member
	oldLevel := -1
	if from >= 0 {
		old = c.memberList()[from]
		old.active.Store(false)
		oldLevel = int(old.level.Load())
	}
	c.sess.Store(nil) // the writer stops sending to the member left
	// The switch resolves and monitors every flow the set has now: the
	// live changes queued so far are carried out by it.
	c.liveOps.drop()
	ev := ServerSwitch{Server: c.name, FromLevel: oldLevel, ToLevel: -1, Reason: why}
	if old != nil {
		ev.From = old.ep
	}
	if old != nil && c.server().SetMode() == mapping.SetWarm {
		// Warm: the member left carries no monitored items; deleted after
		// the new member is in use, so a slow server never delays it.
		defer c.coolDown(ctx, old)
	}
	if to < 0 {
		c.setState(Connecting)
		c.level.Store(-1)
		ev.At = time.Now()
		c.log.Warn("server set: no usable member; values held", zap.String("from", ev.From),
			zap.Int("from_level", oldLevel), zap.String("reason", why))
		c.reportSwitch(ev, report)
		return nil, nil
	}
	m := c.memberList()[to]
	ms := m.ready.Load()
	if ms == nil {
		return nil, fmt.Errorf("member %s went down", m.ep)
	}
	s := ms.s
	reads := c.readFlows()
	for _, f := range reads {
		f.sourceResolved(f.resolveSrc(s.namespaces))
		if old != nil {
			f.sourceMemberChanged()
		}
	}
	if err := c.readEURanges(ctx, s, reads); err != nil {
		return ms, err
	}
	if err := c.resolveTargets(ctx, s, c.writeFlows()); err != nil {
		return ms, err
	}
	ms.mu.Lock()
	var err error
	switch d := ms.data; {
	case d == nil: // warm: the monitored items are created now
		ms.data, err = c.createData(ctx, s, ms.notes)
	case d.gen != c.flowGen.Load(): // hot, behind a live change
		err = c.syncData(ctx, ms)
	}
	if err == nil {
		ms.data.monitored(reads)
	}
	ms.mu.Unlock()
	if err != nil {
		return ms, err
	}
	ep := m.ep
	c.endpoint.Store(&ep)
	c.level.Store(m.level.Load())
	c.sess.Store(s)
	m.active.Store(true)
	c.setState(Connected)
	c.w.requeue()

	// Sources: the new member's current values through the value path,
	// which drops anything older than what was already accepted.
	caught := c.catchUp(ctx)
	// Targets: read them on the new member, write only differences.
	reconciled := 0
	if c.e.queueing.Load() {
		reconciled = c.e.reconcile(ctx, c.writeFlows(), false, false)
	}
	ev.To, ev.ToLevel, ev.At = m.ep, int(m.level.Load()), time.Now()
	if old != nil {
		ev.Gap = ev.At.Sub(time.Unix(0, old.lastData.Load()))
	}
	c.log.Info("server set: member in use", zap.String("from", ev.From), zap.String("to", ev.To),
		zap.Int("from_level", ev.FromLevel), zap.Int("to_level", ev.ToLevel), zap.String("reason", why),
		zap.Duration("gap", ev.Gap), zap.Int("sources_read", caught), zap.Int("targets_queued", reconciled))
	c.reportSwitch(ev, report)
	return ms, nil
}

// reportSwitch counts a switch and hands it to Options.OnServerSwitch
// (the first choice of a set is not a switch).
func (c *conn) reportSwitch(ev ServerSwitch, report bool) {
	if !report {
		return
	}
	c.switches.Add(1)
	c.lastSwitch.Store(&ev)
	if c.e.onSwitch != nil {
		c.e.onSwitch(ev)
	}
}

// catchUp reads the current values of the set's sources on the session
// in use and routes them like notifications. It returns how many it read.
func (c *conn) catchUp(ctx context.Context) int {
	fs := c.readFlows() // once: a live change may replace them meanwhile
	if len(fs) == 0 {
		return 0
	}
	vals, err := c.readValues(ctx, fs, false)
	if err != nil {
		c.log.Debug("server set: reading sources", zap.Error(err))
		return 0
	}
	items := make([]*ua.MonitoredItemNotification, 0, len(vals))
	for i, dv := range vals {
		if dv != nil {
			items = append(items, &ua.MonitoredItemNotification{ClientHandle: fs[i].handle, Value: dv})
		}
	}
	newRouter(c.e, c).route(items, time.Now())
	return len(items)
}

// memberStats returns the members of a set (nil for a single server).
func (c *conn) memberStats() []MemberStats {
	members := c.memberList()
	if len(members) == 0 {
		return nil
	}
	out := make([]MemberStats, len(members))
	var why string
	if ev := c.lastSwitch.Load(); ev != nil {
		why = ev.Reason
	}
	for i, m := range members {
		ms := MemberStats{Endpoint: m.ep, State: ConnState(m.state.Load()), ServiceLevel: int(m.level.Load()),
			InUse: m.active.Load()}
		if ms.InUse {
			ms.Reason = why
			if why == "" {
				ms.Reason = whyFirst
			}
		} else {
			ms.Reason = loadString(&m.lastErr)
		}
		out[i] = ms
	}
	return out
}
