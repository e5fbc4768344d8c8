package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uacp"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/mapping"
)

// ConnState is the state of a server connection.
type ConnState int32

// Connection states.
const (
	Disconnected ConnState = iota
	Connecting
	Connected
)

func (s ConnState) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	}
	return "disconnected"
}

// errFault is wrapped by the errors that end a session.
var errFault = errors.New("session fault")

// conn supervises the connection to one server (or redundant server set):
// it owns the client, rebuilds it from scratch on any fault (gopcua's
// auto-reconnect is off: it loses subscriptions silently), keeps the
// subscriptions of the flows that read from this server and the writer
// of the flows that write to it.
type conn struct {
	e    *Engine
	name string
	log  *zap.Logger
	// ent is the server's config entry and its timeouts: replaced whole
	// by a live config change of the entry (live.go, reconfigure), read
	// through server and tmo. A session uses the entry it was opened with
	// (session.ent) and ends when a change replaces it.
	ent atomic.Pointer[connEntry]
	// reopen asks the supervisor to end its session and open one under
	// the new entry without a backoff (1-buffered).
	reopen chan struct{}

	// rflows are the flows that read from this server, wflows those
	// that write to it: replaced whole by a live config change (live.go),
	// read through readFlows and writeFlows.
	rflows atomic.Pointer[[]*flow]
	wflows atomic.Pointer[[]*flow]
	w      *writer
	// live holds the live config changes this server's session has yet
	// to carry out (live.go).
	liveOps liveQueue
	// flowGen counts the changes of rflows (setFlows): a server set's
	// member knows by it whether its monitored items follow the flows
	// (members.go, dataItems.gen).
	flowGen atomic.Uint64
	// run is the conn's goroutines while Run runs them (nil: not
	// started); guarded by Engine.runMu (live_servers.go).
	run *connRun

	// sess is the session writers and reads use (set once subscribed).
	sess atomic.Pointer[session]
	// stateCh is closed at the next change of state (stateChanged);
	// stateMu guards it.
	stateMu sync.Mutex
	stateCh chan struct{}
	// live is the session whose socket is open, from Connect until its
	// close returned: the lease watcher resets it (fence.go).
	live     atomic.Pointer[session]
	state    atomic.Int32
	endpoint atomic.Pointer[string]
	level    atomic.Int32 // ServiceLevel, -1 unknown
	// noProbe is set once the server answered the subscription probe
	// with BadServiceUnsupported.
	noProbe atomic.Bool
	// cert is the server certificate of the last secure session (nil for
	// security None or before the first one).
	cert atomic.Pointer[CertInfo]
	// lastErr is why the last session ended or failed to start.
	lastErr atomic.Pointer[string]

	// members are the servers of a redundant set (nil for a single
	// server; the set goroutine replaces the slice when discovery adds
	// members, never an element of it); setWake asks the set goroutine
	// to choose again (members.go). switches counts changes of the
	// member in use, lastSwitch is the last one.
	members    atomic.Pointer[[]*member]
	setWake    chan struct{}
	switches   atomic.Uint64
	lastSwitch atomic.Pointer[ServerSwitch]

	stats connStats
	// quarantines is set when a flow of this server may be quarantined
	// (on the source side of a read flow, the target side of a write
	// flow): retryQuarantined, every RetryMin, looks at the flows only
	// then — at 100k mappings a look at every flow's lock five times a
	// second cost a few percent of a core.
	quarantines atomic.Bool
}

func newConn(e *Engine, s *mapping.Server) *conn {
	c := &conn{e: e, name: s.Name, log: e.log.With(zap.String("server", s.Name)), reopen: make(chan struct{}, 1)}
	c.ent.Store(&connEntry{srv: s, timeouts: s.EffectiveTimeouts()})
	c.level.Store(-1)
	c.setFlows(nil, nil)
	c.liveOps.wake = make(chan struct{}, 1)
	c.setWake = make(chan struct{}, 1) // a live change may make the entry a set
	if s.IsSet() {
		var ms []*member
		for _, ep := range s.Endpoints {
			ms = append(ms, c.newMember(len(ms), ep))
		}
		c.members.Store(&ms)
	}
	return c
}

// connEntry is a server's config entry as a conn uses it.
type connEntry struct {
	srv      *mapping.Server
	timeouts mapping.Timeouts
}

// server returns the server's config entry now in force.
func (c *conn) server() *mapping.Server { return c.ent.Load().srv }

// tmo returns the server's timeouts now in force.
func (c *conn) tmo() mapping.Timeouts { return c.ent.Load().timeouts }

// session is one live client of a conn. Its fault channel ends it.
type session struct {
	client *opcua.Client
	// stopClient ends what connectBound started beside the client (its
	// publish loop); closeSession calls it after Client.Close.
	stopClient func()
	namespaces []string
	batchRead  int
	// maxWrite and maxMon are the server's MaxNodesPerWrite and
	// MaxMonitoredItemsPerCall (0: none advertised); writeBatch and
	// monBatch bound them by the engine's settings, which may change
	// live.
	maxWrite, maxMon int
	// writeLim bounds the session's Write requests (limits.go); read at
	// its start, so a takeover's first write waits for no read of it.
	writeLim  writeLimits
	faultOnce sync.Once
	faultCh   chan error
	// types maps DataType nodes to built-in types on this session
	// (types.go); used by the session's supervisor only.
	types map[string]ua.TypeID

	// sock is the client's TCP socket (dial.go), which abort closes
	// without going through the client.
	sock net.Conn
	// writes counts Write requests in flight on this session: counted
	// before the writer's last look at the gate, so the lease watcher
	// never misses one that was let through.
	writes atomic.Int32
	// writeFailed is set once a Write on this session returned an error:
	// its request may still sit in the send queue.
	writeFailed atomic.Bool
	abortOnce   sync.Once
	// ent is the server entry the session was opened with.
	ent *connEntry
	// items are the monitored items created on this session, by handle,
	// and subItems how many of them each subscription holds (live.go);
	// used by the session's supervisor only.
	items    []itemRef
	subItems map[uint32]int
}

// fault ends the session (first error wins). It never blocks.
func (s *session) fault(err error) {
	s.faultOnce.Do(func() { s.faultCh <- err })
}

// abort resets the session's socket at once (RST, unsent bytes dropped)
// and faults the session with err; it reports whether this call did it
// (the first one). Every request waiting on the session returns with an
// error. Safe for concurrent use; it never blocks on the network.
func (s *session) abort(err error) bool {
	did := false
	s.abortOnce.Do(func() {
		did = true
		_ = abortSocket(s.sock)
	})
	s.fault(err)
	return did
}

// writeBatch is the most values in one Write request on s: the
// engine's write_batch within the server's MaxNodesPerWrite.
func (c *conn) writeBatch(s *session) int { return within(c.e.settings().WriteBatch, s.maxWrite) }

// monBatch is the most monitored items created or deleted in one request
// on s: the engine's subscribe_batch within the server's
// MaxMonitoredItemsPerCall.
func (c *conn) monBatch(s *session) int { return within(c.e.settings().SubscribeBatch, s.maxMon) }

// within returns n bounded by limit (0: no limit).
func within(n, limit int) int {
	if limit > 0 && limit < n {
		return limit
	}
	return n
}

func (c *conn) current() *session { return c.sess.Load() }

// readFlows returns the flows that read from this server now (never
// modified: a live change stores a new slice).
func (c *conn) readFlows() []*flow { return *c.rflows.Load() }

// writeFlows returns the flows that write to this server now (never
// modified: a live change stores a new slice).
func (c *conn) writeFlows() []*flow { return *c.wflows.Load() }

// setFlows makes reads and writes the server's flows.
func (c *conn) setFlows(reads, writes []*flow) {
	c.rflows.Store(&reads)
	c.wflows.Store(&writes)
	c.flowGen.Add(1)
}

func (c *conn) setState(s ConnState) {
	if ConnState(c.state.Swap(int32(s))) != s {
		c.log.Info("connection state", zap.Stringer("state", s))
		c.stateMu.Lock()
		if c.stateCh != nil {
			close(c.stateCh)
			c.stateCh = nil
		}
		c.stateMu.Unlock()
	}
}

// stateChanged returns a channel closed at the next change of c's
// state: take it before looking at the state, so that no change is
// missed. Safe for concurrent use.
func (c *conn) stateChanged() <-chan struct{} {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	if c.stateCh == nil {
		c.stateCh = make(chan struct{})
	}
	return c.stateCh
}

// supervise connects, runs and rebuilds sessions until ctx is done. A
// redundant server set is supervised member by member (members.go). A
// live change of the entry (reconfigure) may turn a single server into a
// set or back: the supervision of the one ends, that of the other starts.
func (c *conn) supervise(ctx context.Context) {
	for ctx.Err() == nil {
		if c.server().IsSet() {
			c.superviseSet(ctx)
		} else {
			c.superviseServer(ctx)
		}
	}
}

// superviseServer connects, runs and rebuilds the sessions of a single
// server until ctx is done or a live change made the entry a set.
func (c *conn) superviseServer(ctx context.Context) {
	attempt := 0
	for ctx.Err() == nil {
		eps := c.server().Endpoints
		ep := eps[attempt%len(eps)]
		start, connects := time.Now(), c.stats.connects.Load()
		err := c.runSession(ctx, ep)
		c.setState(Disconnected)
		c.level.Store(-1) // unknown until a session reads it again
		if ctx.Err() != nil {
			return
		}
		for _, f := range c.readFlows() {
			f.sourceLost("source server " + c.name + " disconnected")
		}
		c.stats.reconnects.Add(1)
		if err != nil {
			msg := err.Error()
			c.lastErr.Store(&msg)
		}
		if errors.Is(err, errReopen) {
			// The server's entry changed live: open a session under the
			// new one now.
			if c.server().IsSet() {
				return
			}
			attempt = 0
			c.log.Info("server entry changed: session rebuilt", zap.String("endpoint", ep))
			continue
		}
		if c.stats.connects.Load() != connects || time.Since(start) > 30*time.Second {
			// A session that came up resets the backoff: the next outage
			// starts again at RetryMin.
			attempt = 0
		} else {
			attempt++
		}
		wait := c.e.backoff(attempt - 1)
		c.log.Warn("session ended; reconnecting", zap.String("endpoint", ep), zap.Error(err),
			zap.Duration("retry_in", wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-c.reopen: // a new entry: try it now, from its first endpoint
			t.Stop()
			if c.server().IsSet() {
				return
			}
			attempt = 0
		}
	}
}

// errReopen ends a session whose server entry a live config change
// replaced (live.go, reconfigure).
var errReopen = errors.New("server entry changed")

// readPassword reads a server's password from its env var or file. The
// error never contains the secret.
func readPassword(srv *mapping.Server) (string, error) {
	if srv.Auth.PasswordEnv != "" {
		pw, ok := os.LookupEnv(srv.Auth.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("server %s: password env var %s is not set", srv.Name, srv.Auth.PasswordEnv)
		}
		return pw, nil
	}
	b, err := os.ReadFile(srv.Auth.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("server %s: password file: %w", srv.Name, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// openSession builds a fresh client for endpoint ep and connects it
// (auto-reconnect off, the server's timeouts). The caller closes the
// session with closeSession.
func (c *conn) openSession(ctx context.Context, ep string) (*session, error) {
	ent := c.ent.Load() // the session's entry throughout, even if a live change replaces it meanwhile
	cctx, cancel := context.WithTimeout(ctx, ent.timeouts.Connect)
	defer cancel()
	var (
		srvOpts []opcua.Option
		cert    *CertInfo
		bound   []byte // the certificate the password may be encrypted to: connectBound
		err     error
	)
	if c.e.optsFn != nil {
		srvOpts, err = c.e.optsFn(cctx, ent.srv, ep)
	} else {
		srvOpts, cert, bound, err = clientOptions(cctx, ent.srv, ep, c.e.security)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: client options: %w", errFault, err)
	}
	// The ApplicationURI default comes first: the server options set the
	// certificate's URI when there is one (Part 6, 6.2.2: they must match).
	opts := []opcua.Option{opcua.ApplicationName("uamirror"), opcua.ApplicationURI("urn:uamirror:client")}
	opts = append(opts, srvOpts...)
	// The client's monitor reports a lost connection (EOF, reset) at
	// once; gopcua's publish loop only pauses on it, so without this the
	// session would end at the next keep-alive read.
	var holder atomic.Pointer[session]
	opts = append(opts,
		opcua.StateChangedFunc(func(st opcua.ConnState) {
			if st == opcua.Disconnected {
				if s := holder.Load(); s != nil {
					s.fault(errConnLost)
				}
			}
		}),
		opcua.AutoReconnect(false),
		opcua.RequestTimeout(ent.timeouts.Request),
		opcua.Dialer(sessionDialer()), // before DialTimeout, which sets its timeout
		opcua.DialTimeout(ent.timeouts.Connect),
		opcua.SessionTimeout(ent.timeouts.Session),
	)
	cl, err := opcua.NewClient(ep, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: new client: %w", errFault, err)
	}
	stopClient, err := connectBound(cctx, cl, bound)
	if err != nil {
		if userRejected(err) {
			switch ent.srv.Auth.Type {
			case "username":
				return nil, fmt.Errorf("%w: server %s: user %s rejected: %w", errFault, c.name, ent.srv.Auth.Username, err)
			case "certificate":
				return nil, fmt.Errorf("%w: server %s: user certificate %s rejected: %w", errFault, c.name, ent.srv.Auth.CertFile, err)
			}
		}
		return nil, fmt.Errorf("%w: connect %s: %w", errFault, ep, err)
	}
	c.cert.Store(cert)
	if cert != nil && time.Until(cert.NotAfter) < certExpiryWarning {
		c.log.Warn("server certificate expires soon", zap.String("thumbprint", cert.Thumbprint),
			zap.String("subject", cert.Subject), zap.String("not_after", cert.NotAfter.UTC().Format(time.RFC3339)))
	}
	sock, err := clientSocket(cl)
	if err != nil {
		closeCtx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_ = cl.Close(closeCtx)
		cancel()
		stopClient()
		return nil, fmt.Errorf("%w: %w", errFault, err)
	}
	s := &session{client: cl, stopClient: stopClient, faultCh: make(chan error, 1),
		batchRead: 1000, sock: sock, ent: ent}
	holder.Store(s)
	if cl.State() == opcua.Disconnected {
		s.fault(errConnLost) // lost before holder was set
	}
	return s, nil
}

// errConnLost ends a session whose connection the client saw end.
var errConnLost = errors.New("connection lost")

// closeSession closes s: reset first when a Write may still be queued in
// the kernel (never held open for a graceful CloseSession), then a
// bounded Client.Close.
func closeSession(s *session) {
	if s.writes.Load() > 0 || s.writeFailed.Load() {
		s.abort(errWritesAborted)
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_ = s.client.Close(closeCtx)
	cancel()
	if s.stopClient != nil {
		s.stopClient()
	}
}

// runSession builds a fresh client, subscribes everything, resyncs, and
// runs until a fault. It always closes the client before returning.
func (c *conn) runSession(ctx context.Context, ep string) error {
	c.setState(Connecting)
	c.endpoint.Store(&ep)
	s, err := c.openSession(ctx, ep)
	if err != nil {
		return err
	}
	c.live.Store(s)
	// This session subscribes and resolves every flow the server has now:
	// the live changes queued so far are carried out by it.
	c.liveOps.drop()
	defer func() {
		c.sess.Store(nil)
		closeSession(s)
		c.live.Store(nil)
	}()
	t0 := time.Now()
	if err := c.prepare(ctx, s); err != nil {
		return err
	}
	t1 := time.Now()
	// Notifications flow into one channel per session; the dispatcher is
	// owned by this function and waited for on the way out.
	notes := make(chan *opcua.PublishNotificationData, 64)
	var wg sync.WaitGroup
	dctx, stopDispatch := context.WithCancel(ctx)
	defer func() { stopDispatch(); wg.Wait() }()
	lastData := &atomic.Int64{}
	lastData.Store(time.Now().UnixNano())
	wg.Add(1)
	go func() { defer wg.Done(); c.dispatch(dctx, s, notes, lastData) }()

	subs, err := c.subscribe(ctx, s, notes)
	if err != nil {
		return err
	}
	t2 := time.Now()
	c.stats.subs.Store(int32(len(subs)))
	defer c.stats.subs.Store(0)
	c.sess.Store(s)
	c.setState(Connected)
	c.w.requeue()
	c.stats.connects.Add(1)

	// Resync. The sources on this server need no read: the new monitored
	// items deliver every current value, and the value path writes what
	// changed. The targets on it may have been reset by a restart or
	// missed writes during the outage: read them and write the last good
	// value where they differ.
	if c.e.queueing.Load() {
		c.awaitSources(ctx)
		n := c.e.reconcile(ctx, c.writeFlows(), false, false)
		c.log.Info("session up; resynced", zap.String("endpoint", ep), zap.Int("subscriptions", len(subs)),
			zap.Int("values_queued", n), zap.Duration("prepare", t1.Sub(t0)), zap.Duration("subscribe", t2.Sub(t1)),
			zap.Duration("resync", time.Since(t2)))
	} else {
		c.log.Info("session up (standby: not writing)", zap.String("endpoint", ep), zap.Int("subscriptions", len(subs)),
			zap.Duration("prepare", t1.Sub(t0)), zap.Duration("subscribe", t2.Sub(t1)))
	}

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
			if err := c.keepAlive(ctx, s); err != nil {
				return fmt.Errorf("%w: keep-alive: %w", errFault, err)
			}
			if age := time.Since(time.Unix(0, lastData.Load())); age > c.tmo().DataAge && len(subs) > 0 && !c.noProbe.Load() {
				// No data for a while: prove the subscriptions still exist.
				if err := c.probeSubscriptions(ctx, s, subs); errors.Is(err, ua.StatusBadServiceUnsupported) {
					// The server cannot prove its subscriptions; rely on the
					// keep-alive and publish errors for it from now on.
					c.noProbe.Store(true)
					c.log.Info("server does not support SetPublishingMode: data-age probe off")
				} else if err != nil {
					return fmt.Errorf("%w: data age %s: %w", errFault, age.Round(time.Millisecond), err)
				}
				lastData.Store(time.Now().UnixNano())
			}
		case <-c.liveOps.wake:
			c.runLive(ctx, s, subs, notes)
		case <-c.reopen:
			if s.ent != c.ent.Load() {
				return errReopen
			}
		case <-retry.C:
			n := c.retryQuarantined(ctx, s, subs, notes)
			if n > 0 {
				retries++
			} else {
				retries = 0
			}
			retry.Reset(c.e.backoff(retries))
		}
	}
}

// sourcesWaitMax bounds how long a target session's resync waits for
// the sources of its flows to subscribe (awaitSources).
const sourcesWaitMax = 10 * time.Second

// awaitSources waits, at most sourcesWaitMax, while a server whose flows
// write to this one is building its session (connecting, subscribing).
// The resync then compares the targets with the values those sources
// just delivered, and writes what differs at once; read earlier, a
// target's value only stands for a first value that comes within
// tgtCurMaxAge. And on a small host the sources' subscription, which
// every mapping waits for, has the CPU to itself instead of sharing it
// with the targets' reads and writes. A source that is down or up is
// not waited for; one still dialling only for sourcesDialWait (an
// unreachable or blackholed source would otherwise hold every target's
// resync for its connect timeout), one building a session on an open
// socket up to sourcesWaitMax.
func (c *conn) awaitSources(ctx context.Context) {
	srcs := map[*conn]bool{}
	for _, f := range c.writeFlows() {
		if f.from != c {
			srcs[f.from] = true
		}
	}
	t := time.NewTimer(sourcesWaitMax)
	defer t.Stop()
	dialEnd := time.Now().Add(sourcesDialWait)
	tick := time.NewTicker(sourcesDialWait / 20) // the socket opening is not signalled
	defer tick.Stop()
	for src := range srcs {
		for {
			changed := src.stateChanged()
			dialling := !src.building() && ConnState(src.state.Load()) == Connecting
			if !src.building() && (!dialling || time.Now().After(dialEnd)) {
				break
			}
			select {
			case <-changed:
			case <-tick.C:
			case <-t.C:
				return
			case <-ctx.Done():
				return
			}
		}
	}
}

// sourcesDialWait bounds how long a resync waits for a source still
// dialling (a reachable server answers the dial in milliseconds; an
// unreachable one would hold every target for its connect timeout).
const sourcesDialWait = time.Second

// building reports whether c is building a session on an open socket:
// connecting, with its session (or, for a redundant set, a member's)
// past the dial. Safe for concurrent use.
func (c *conn) building() bool {
	if ConnState(c.state.Load()) != Connecting {
		return false
	}
	if c.live.Load() != nil {
		return true
	}
	for _, m := range c.memberList() {
		if m.live.Load() != nil {
			return true
		}
	}
	return false
}

// prepare reads what the session needs before subscribing: namespaces,
// operation limits, and the types of this server's destination nodes.
func (c *conn) prepare(ctx context.Context, s *session) error {
	if err := c.sessionInfo(ctx, s); err != nil {
		return err
	}
	// Resolve every node this server holds, for both sides.
	reads := c.readFlows()
	for _, f := range reads {
		f.sourceResolved(f.resolveSrc(s.namespaces))
	}
	if err := c.readEURanges(ctx, s, reads); err != nil {
		return fmt.Errorf("%w: %w", errFault, err)
	}
	return c.resolveTargets(ctx, s, c.writeFlows())
}

// sessionInfo reads the namespace array and the operation limits of a
// new session into s.
func (c *conn) sessionInfo(ctx context.Context, s *session) error {
	rctx, cancel := context.WithTimeout(ctx, c.tmo().Request)
	defer cancel()
	ns, err := s.client.NamespaceArray(rctx)
	if err != nil {
		return fmt.Errorf("%w: namespace array: %w", errFault, err)
	}
	s.namespaces = ns
	limits := []uint32{id.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
		id.Server_ServerCapabilities_OperationLimits_MaxNodesPerWrite,
		id.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall}
	req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnNeither}
	for _, l := range limits {
		req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: ua.NewNumericNodeID(0, l), AttributeID: ua.AttributeIDValue})
	}
	if res, err := s.client.Read(rctx, req); err == nil && len(res.Results) == len(limits) {
		lim := func(i int, cur *int) {
			if v, ok := res.Results[i].Value.Value().(uint32); ok && v > 0 && (*cur == 0 || int(v) < *cur) {
				*cur = int(v)
			}
		}
		lim(0, &s.batchRead)
		lim(1, &s.maxWrite)
		lim(2, &s.maxMon)
	}
	if len(c.writeFlows()) > 0 {
		s.writeLim = readWriteLimits(rctx, s.client)
	}
	return nil
}

// resolveTargets resolves destination node ids on this session and reads
// their DataType and ValueRank (every session: a PLC download between two
// sessions may have changed them), resolving subtypes to built-in types.
func (c *conn) resolveTargets(ctx context.Context, s *session, flows []*flow) error {
	var need []*flow
	var ids []*ua.NodeID
	for _, f := range flows {
		nid, err := f.resolveDst(s.namespaces)
		if f.targetResolved(nid, err) {
			need = append(need, f)
			ids = append(ids, nid)
		}
	}
	nodes := make([]*ua.ReadValueID, 0, 2*len(ids))
	for _, nid := range ids {
		nodes = append(nodes,
			&ua.ReadValueID{NodeID: nid, AttributeID: ua.AttributeIDDataType},
			&ua.ReadValueID{NodeID: nid, AttributeID: ua.AttributeIDValueRank})
	}
	res, err := c.readAll(ctx, s, nodes, s.batchRead&^1)
	if err != nil {
		// Not a session fault: the keep-alive judges the session. The
		// targets are quarantined and their types read again later
		// (retryQuarantined, with backoff).
		code := ua.StatusBadCommunicationError
		var sc ua.StatusCode
		if errors.As(err, &sc) {
			code = sc
		}
		c.log.Warn("reading target types failed: targets quarantined, retried later", zap.Int("targets", len(need)), zap.Error(err))
		for _, f := range need {
			f.targetUnreadable(code)
		}
		return ctx.Err()
	}
	var dts []*ua.NodeID
	for i := range need {
		if n, ok := res[2*i].Value.Value().(*ua.NodeID); ok && res[2*i].Status == ua.StatusOK {
			dts = append(dts, n)
		}
	}
	if err := c.resolveTypes(ctx, s, dts); err != nil {
		return fmt.Errorf("%w: %w", errFault, err)
	}
	for i, f := range need {
		dt, vr := res[2*i], res[2*i+1]
		if dt.Status != ua.StatusOK {
			f.targetUnreadable(dt.Status)
			continue
		}
		vt := valueType{valueRank: -2}
		if n, ok := dt.Value.Value().(*ua.NodeID); ok {
			vt.id = s.typeOf(n) // subtypes and enumerations resolved
		}
		if vr.Status == ua.StatusOK {
			if r, ok := vr.Value.Value().(int32); ok {
				vt.valueRank = r
			}
		}
		tr, err := c.e.transformFor(f.ms.m, f.reverse, vt)
		f.targetTyped(tr, vt, err) // ok at once when a value is already cached
	}
	return nil
}

// subscribe creates one subscription per publishing interval and the
// monitored items of every enabled, resolved flow in batches.
func (c *conn) subscribe(ctx context.Context, s *session, notes chan *opcua.PublishNotificationData) (map[time.Duration]*opcua.Subscription, error) {
	byInterval := map[time.Duration][]*flow{}
	for _, f := range c.readFlows() {
		if f.monitorable() {
			byInterval[f.publishing] = append(byInterval[f.publishing], f)
		}
	}
	intervals := make([]time.Duration, 0, len(byInterval))
	for iv := range byInterval {
		intervals = append(intervals, iv)
	}
	sort.Slice(intervals, func(i, j int) bool { return intervals[i] < intervals[j] })
	subs := map[time.Duration]*opcua.Subscription{}
	for _, iv := range intervals {
		sub, err := c.createSub(ctx, s, iv, notes)
		if err != nil {
			return nil, err
		}
		subs[iv] = sub
		if err := c.monitor(ctx, s, sub, byInterval[iv]); err != nil {
			return nil, err
		}
	}
	return subs, nil
}

// createSub creates a subscription with publishing interval iv whose
// notifications go to notes.
func (c *conn) createSub(ctx context.Context, s *session, iv time.Duration, notes chan *opcua.PublishNotificationData) (*opcua.Subscription, error) {
	rctx, cancel := context.WithTimeout(ctx, c.tmo().Request)
	defer cancel()
	sub, err := s.client.Subscribe(rctx, &opcua.SubscriptionParameters{Interval: iv,
		MaxKeepAliveCount: keepAliveCount(iv, c.tmo().DataAge)}, notes)
	if err != nil {
		return nil, fmt.Errorf("%w: create subscription (%s): %w", errFault, iv, err)
	}
	return sub, nil
}

// keepAliveCount keeps the server's keep-alive well inside the data-age
// watchdog.
func keepAliveCount(interval, dataAge time.Duration) uint32 {
	n := uint32(dataAge / interval / 3)
	if n < 3 {
		n = 3
	}
	return n
}

// monitor creates the monitored items of flows on sub (createMonitored).
// A rejected item quarantines its flow only.
func (c *conn) monitor(ctx context.Context, s *session, sub *opcua.Subscription, flows []*flow) error {
	return c.createMonitored(ctx, s, sub, len(flows),
		func(i int, filter bool) *ua.MonitoredItemCreateRequest {
			return c.itemRequest(flows[i], flows[i].node(false), filter)
		},
		func(i int) string { return flows[i].ms.m.ID },
		func(i int, r *ua.MonitoredItemCreateResult) {
			flows[i].monitored(r.StatusCode)
			s.setItem(flows[i].handle, sub.SubscriptionID, r)
		})
}

// monitorInFlight bounds the CreateMonitoredItems requests one
// createMonitored call has outstanding: with a few in flight client and
// server work together (the client encodes the next batch and decodes
// the last answer while the server creates items), where one at a time
// each waits for the other.
const monitorInFlight = 4

// createMonitored creates n monitored items on sub (Part 4, 5.12.2) in
// CreateMonitoredItems requests of at most monBatch(s) items, up to
// monitorInFlight of them in flight as a pacer allows (a request queued
// behind others must still be answered within the request timeout).
// req(i, filter) builds item i's request; an item whose deadband filter
// the server refuses is created again without it (req(i, false): the
// client-side deadband applies), counted and logged with name(i).
// done(i, r) receives each item's final result, once per item; its calls
// never overlap, but they come from the requests' goroutines, not the
// caller's. It returns the first error, starts no request after one, and
// returns only once every request it started has ended and no call of
// done is running.
func (c *conn) createMonitored(ctx context.Context, s *session, sub *opcua.Subscription, n int,
	req func(i int, filter bool) *ua.MonitoredItemCreateRequest, name func(i int) string,
	done func(i int, r *ua.MonitoredItemCreateResult)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex // serialises done; guards firstErr
		firstErr error
	)
	type answer struct{ sent, at time.Time }
	answers := make(chan answer, monitorInFlight) // never more than the requests out
	p := pacer{max: monitorInFlight, budget: c.tmo().Request / 2}
	out := 0
	per := c.monBatch(s)
	for start := 0; start < n && ctx.Err() == nil; start += per {
		for !p.may(out) && ctx.Err() == nil {
			select {
			case a := <-answers:
				out--
				p.answered(a.sent, a.at)
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		out++
		wg.Add(1)
		go func(start, end int) {
			defer wg.Done()
			sent := time.Now()
			if err := c.createBatch(ctx, s, sub, start, end, req, name, done, &mu); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				cancel()
			}
			answers <- answer{sent, time.Now()}
		}(start, min(start+per, n))
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// pacer decides how many requests of a pipeline may be in flight. Each
// request times out on its own, counted from when it was sent, and one
// queued behind others at the server waits for theirs too: a fixed
// number in flight turns a server that is merely slow (a loaded host)
// into timeouts, a session fault and a start-up begun again, and again.
// So one request goes alone until it is answered; after that, more go
// while the last of them can be expected back within budget at the pace
// the server answers. Used by one goroutine.
type pacer struct {
	max    int
	budget time.Duration
	// est is how long the server takes over one request (the time from
	// a request's send, or the answer before it if later, to its answer;
	// up at once, down slowly), known after the first answer.
	est   time.Duration
	known bool
	last  time.Time // the last answer
}

// may reports whether another request may be sent with out in flight.
func (p *pacer) may(out int) bool {
	return out == 0 || out < p.max && p.known && time.Duration(out+1)*p.est <= p.budget
}

// answered records the answer, at at, to a request sent at sent.
func (p *pacer) answered(sent, at time.Time) {
	from := sent
	if p.last.After(from) {
		from = p.last
	}
	if at.After(p.last) {
		p.last = at
	}
	d := max(at.Sub(from), 0)
	if d > p.est || !p.known {
		p.est = d
	} else {
		p.est = (3*p.est + d) / 4
	}
	p.known = true
}

// createBatch creates items start to end of a createMonitored call: one
// request, and one more without the deadband filter for the items whose
// filter the server refused; done is called under mu.
func (c *conn) createBatch(ctx context.Context, s *session, sub *opcua.Subscription, start, end int,
	req func(i int, filter bool) *ua.MonitoredItemCreateRequest, name func(i int) string,
	done func(i int, r *ua.MonitoredItemCreateResult), mu *sync.Mutex) error {
	reqs := make([]*ua.MonitoredItemCreateRequest, end-start)
	for k := range reqs {
		reqs[k] = req(start+k, true)
	}
	res, err := c.createItems(ctx, s, sub, reqs)
	if err != nil {
		return err
	}
	var retry []int
	mu.Lock()
	for k, r := range res.Results {
		if r.StatusCode == ua.StatusBadFilterNotAllowed || r.StatusCode == ua.StatusBadMonitoredItemFilterUnsupported ||
			r.StatusCode == ua.StatusBadDeadbandFilterInvalid {
			retry = append(retry, start+k)
			continue
		}
		done(start+k, r)
	}
	mu.Unlock()
	if len(retry) == 0 {
		return nil
	}
	// The server refuses our deadband filter: monitor without it; the
	// client-side deadband takes over.
	c.log.Warn("server refused the deadband filter; the client-side deadband applies",
		zap.Int("items", len(retry)), zap.String("first_mapping", name(retry[0])),
		zap.String("status", res.Results[retry[0]-start].StatusCode.Error()))
	c.stats.filtersRefused.Add(uint64(len(retry)))
	reqs = reqs[:0]
	for _, i := range retry {
		reqs = append(reqs, req(i, false))
	}
	res2, err := c.createItems(ctx, s, sub, reqs)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	for k, r := range res2.Results {
		done(retry[k], r)
	}
	return nil
}

// createItems sends one CreateMonitoredItems request (Part 4, 5.12.2).
// It goes straight to the session, not through Subscription.Monitor:
// gopcua keeps every request and result for its own re-creation logic,
// which we never use (we rebuild sessions ourselves) — ~300 B per item.
func (c *conn) createItems(ctx context.Context, s *session, sub *opcua.Subscription, reqs []*ua.MonitoredItemCreateRequest) (*ua.CreateMonitoredItemsResponse, error) {
	rctx, cancel := context.WithTimeout(ctx, c.tmo().Request)
	var res *ua.CreateMonitoredItemsResponse
	err := s.client.Send(rctx, &ua.CreateMonitoredItemsRequest{SubscriptionID: sub.SubscriptionID,
		TimestampsToReturn: ua.TimestampsToReturnBoth, ItemsToCreate: reqs}, func(v ua.Response) error {
		r, ok := v.(*ua.CreateMonitoredItemsResponse)
		if !ok {
			return fmt.Errorf("unexpected response %T", v)
		}
		res = r
		return nil
	})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w: create monitored items: %w", errFault, err)
	}
	if res.ResponseHeader != nil && res.ResponseHeader.ServiceResult != ua.StatusOK {
		return nil, fmt.Errorf("%w: create monitored items: %w", errFault, res.ResponseHeader.ServiceResult)
	}
	if len(res.Results) != len(reqs) {
		return nil, fmt.Errorf("%w: create monitored items: %d results for %d items", errFault, len(res.Results), len(reqs))
	}
	return res, nil
}

// itemRequest builds the monitored item request of f.
func (c *conn) itemRequest(f *flow, nid *ua.NodeID, withFilter bool) *ua.MonitoredItemCreateRequest {
	req := opcua.NewMonitoredItemCreateRequestWithDefaults(nid, ua.AttributeIDValue, f.handle)
	req.RequestedParameters.SamplingInterval = float64(f.sampling) / float64(time.Millisecond)
	req.RequestedParameters.QueueSize = f.queueSize
	req.RequestedParameters.DiscardOldest = true
	if db := f.ms.m.Deadband; withFilter && db != nil && db.Value > 0 {
		t, v := deadbandFilter(f.ms.m, f.reverse)
		req.RequestedParameters.Filter = ua.NewExtensionObject(&ua.DataChangeFilter{
			Trigger: ua.DataChangeTriggerStatusValue, DeadbandType: uint32(t), DeadbandValue: v})
	}
	return req
}

// retryQuarantined tries again the flows of this server that a server
// rejected; it returns how many are still quarantined. A flow whose
// publishing interval has no subscription gets one whose notifications
// go to notes (nil: it waits for the next session).
func (c *conn) retryQuarantined(ctx context.Context, s *session, subs map[time.Duration]*opcua.Subscription,
	notes chan *opcua.PublishNotificationData) (n int) {
	if !c.quarantines.Swap(false) {
		return 0 // none since the last look found none
	}
	defer func() {
		if n > 0 {
			c.quarantines.Store(true)
		}
	}()
	var src, dst []*flow
	for _, f := range c.readFlows() {
		if f.quarantinedOn() == sideSource {
			src = append(src, f)
		}
	}
	for _, f := range c.writeFlows() {
		if f.retryTarget() {
			dst = append(dst, f)
		}
	}
	if len(dst) > 0 {
		if err := c.resolveTargets(ctx, s, dst); err != nil {
			s.fault(err)
			return len(src) + len(dst)
		}
		c.e.reconcile(ctx, dst, true, false)
	}
	if len(src) > 0 {
		byInterval := map[time.Duration][]*flow{}
		for _, f := range src {
			nid, err := f.resolveSrc(s.namespaces)
			if err != nil {
				continue
			}
			f.sourceResolved(nid, nil)
			byInterval[f.publishing] = append(byInterval[f.publishing], f)
		}
		for iv, fs := range byInterval {
			sub := subs[iv]
			if sub == nil && notes == nil {
				continue // a server set's member: its next data session creates it
			}
			if sub == nil { // none yet, or emptied and deleted (live.go)
				var err error
				if sub, err = c.createSub(ctx, s, iv, notes); err != nil {
					s.fault(err)
					continue
				}
				subs[iv] = sub
				c.stats.subs.Store(int32(len(subs)))
			}
			if err := c.monitor(ctx, s, sub, fs); err != nil {
				s.fault(err)
			}
		}
	}
	for _, f := range append(src, dst...) {
		if f.quarantinedOn() != sideNone {
			n++
		}
	}
	if n > 0 {
		c.log.Debug("quarantined mappings remain", zap.Int("count", n))
	}
	return n
}

// keepAlive reads ServerStatus.State and ServiceLevel with a deadline.
func (c *conn) keepAlive(ctx context.Context, s *session) error {
	lv, err := c.readStatus(ctx, s)
	if err != nil {
		return err
	}
	if lv >= 0 {
		c.level.Store(int32(lv))
	}
	return nil
}

// readStatus reads ServerStatus.State and ServiceLevel with a deadline
// and returns the ServiceLevel (-1: not readable). A server that is not
// Running is an error.
func (c *conn) readStatus(ctx context.Context, s *session) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, c.tmo().Request)
	defer cancel()
	res, err := s.client.Read(rctx, &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnNeither,
		NodesToRead: []*ua.ReadValueID{
			{NodeID: ua.NewNumericNodeID(0, id.Server_ServerStatus_State), AttributeID: ua.AttributeIDValue},
			{NodeID: ua.NewNumericNodeID(0, id.Server_ServiceLevel), AttributeID: ua.AttributeIDValue},
		}})
	if err != nil {
		return -1, err
	}
	if len(res.Results) != 2 {
		return -1, fmt.Errorf("status read: %d results", len(res.Results))
	}
	if st, ok := res.Results[0].Value.Value().(int32); ok && ua.ServerState(st) != ua.ServerStateRunning {
		return -1, fmt.Errorf("server state %d (not running)", st)
	}
	c.stats.keepAlives.Add(1)
	if lv, ok := res.Results[1].Value.Value().(uint8); ok {
		return int(lv), nil
	}
	return -1, nil
}

// probeSubscriptions proves the session's subscriptions still exist on
// the server (SetPublishingMode on a live subscription is a no-op).
func (c *conn) probeSubscriptions(ctx context.Context, s *session, subs map[time.Duration]*opcua.Subscription) error {
	ids := make([]uint32, 0, len(subs))
	for _, sub := range subs {
		ids = append(ids, sub.SubscriptionID)
	}
	rctx, cancel := context.WithTimeout(ctx, c.tmo().Request)
	defer cancel()
	var res *ua.SetPublishingModeResponse
	err := s.client.Send(rctx, &ua.SetPublishingModeRequest{PublishingEnabled: true, SubscriptionIDs: ids},
		func(v ua.Response) error {
			r, ok := v.(*ua.SetPublishingModeResponse)
			if !ok {
				return fmt.Errorf("unexpected response %T", v)
			}
			res = r
			return nil
		})
	if err != nil {
		return err
	}
	for i, code := range res.Results {
		if code != ua.StatusOK {
			return fmt.Errorf("subscription %d: %w", ids[i], code)
		}
	}
	return nil
}

// dispatch hands the session's notifications to the engine's router
// until ctx is done, and faults the session on a subscription error. It
// is the only goroutine that processes values read from this server.
func (c *conn) dispatch(ctx context.Context, s *session, notes <-chan *opcua.PublishNotificationData, lastData *atomic.Int64) {
	r := newRouter(c.e, c)
	for {
		var n *opcua.PublishNotificationData
		select {
		case <-ctx.Done():
			return
		case n = <-notes:
		}
		lastData.Store(time.Now().UnixNano())
		if n.Error != nil {
			s.fault(fmt.Errorf("subscription %d: %w", n.SubscriptionID, n.Error))
			continue
		}
		switch v := n.Value.(type) {
		case *ua.DataChangeNotification:
			c.stats.notifications.Add(uint64(len(v.MonitoredItems)))
			r.route(v.MonitoredItems, time.Now())
		case *ua.StatusChangeNotification:
			s.fault(fmt.Errorf("subscription %d status change: %w", n.SubscriptionID, v.Status))
		}
	}
}

// readValues reads the current value of each flow's source (dst=false)
// or destination (dst=true) on this server's current session, in batches.
// Entries for unresolved nodes are nil.
func (c *conn) readValues(ctx context.Context, flows []*flow, dst bool) ([]*ua.DataValue, error) {
	out := make([]*ua.DataValue, len(flows))
	err := c.readValuesEach(ctx, flows, dst, func(idx []int, vals []*ua.DataValue) {
		for k, i := range idx {
			out[i] = vals[k]
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readValuesEach reads what readValues reads, but hands each batch to
// each as soon as it has arrived, so a caller can act on the first values
// while later batches are still being read: idx are the indices in flows
// of the batch, vals their values (nil for an unresolved node, handed
// over last, once every read succeeded). each is called from the batches'
// goroutines, several at once, each index once; it must be safe for
// concurrent use. After an error some batches may have been handed over,
// and no more are; readValuesEach returns once no call of each is running.
func (c *conn) readValuesEach(ctx context.Context, flows []*flow, dst bool, each func(idx []int, vals []*ua.DataValue)) error {
	s := c.current()
	if s == nil {
		return errors.New("not connected")
	}
	idx := make([]int, 0, len(flows))
	var none []int
	nodes := make([]*ua.ReadValueID, 0, len(flows))
	for i, f := range flows {
		if nid := f.node(dst); nid != nil {
			idx = append(idx, i)
			nodes = append(nodes, &ua.ReadValueID{NodeID: nid, AttributeID: ua.AttributeIDValue})
		} else {
			none = append(none, i)
		}
	}
	if _, err := c.readBatches(ctx, s, nodes, s.batchRead, func(start, end int, vals []*ua.DataValue) {
		each(idx[start:end], vals)
	}); err != nil {
		return err
	}
	if len(none) > 0 {
		each(none, make([]*ua.DataValue, len(none)))
	}
	return nil
}

// readAll reads nodes in requests of at most per (the server's
// MaxNodesPerRead), up to readsInFlight at once, and returns the results
// in order. It stops at the first error: no request is started after one
// failed, and those in flight are cancelled. A request the server refuses
// for its size (isLimitError) is read again in halves, down to one node,
// whose result then carries the refusal's status: never an error.
func (c *conn) readAll(ctx context.Context, s *session, nodes []*ua.ReadValueID, per int) ([]*ua.DataValue, error) {
	return c.readBatches(ctx, s, nodes, per, nil)
}

// readsInFlight bounds the Read requests of one readAll in flight.
const readsInFlight = 8

// firstReadBatch bounds the first request of a read whose batches are
// acted on as they arrive (readBatches with done).
const firstReadBatch = 100

// readBatches is readAll that also hands each request's results to done
// (if not nil) as soon as they have arrived, from the request's
// goroutine: nodes[start:end] read as vals. With done, the first request
// is of firstReadBatch nodes at most and is read alone, so the first
// values come quickly and what the caller sends on them usually reaches
// the server before the other reads. Requests run concurrently, so done
// must be safe for concurrent use; readBatches returns after its last
// call.
func (c *conn) readBatches(ctx context.Context, s *session, nodes []*ua.ReadValueID, per int,
	done func(start, end int, vals []*ua.DataValue)) ([]*ua.DataValue, error) {
	if per < 1 {
		per = 1
	}
	out := make([]*ua.DataValue, len(nodes))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	failed := func() error {
		errMu.Lock()
		defer errMu.Unlock()
		return firstErr
	}
	sem := make(chan struct{}, readsInFlight)
	for start, end := 0, 0; start < len(nodes) && failed() == nil; start = end {
		end = min(start+per, len(nodes))
		// Acted on as they arrive: the first values come quickly, in a
		// small request read alone.
		first := start == 0 && done != nil
		if first {
			end = min(firstReadBatch, end)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.readSplit(ctx, s, nodes[start:end], out[start:end]); err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
				cancel()
				return
			}
			if done != nil && failed() == nil {
				done(start, end, out[start:end])
			}
		}()
		if first {
			wg.Wait()
		}
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// readSplit reads nodes into out with one request, or in halves when the
// server refuses it for its size.
func (c *conn) readSplit(ctx context.Context, s *session, nodes []*ua.ReadValueID, out []*ua.DataValue) error {
	rctx, cancel := context.WithTimeout(ctx, c.tmo().Request)
	res, err := s.client.Read(rctx, &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnBoth, NodesToRead: nodes})
	cancel()
	if err == nil && len(res.Results) != len(nodes) {
		err = fmt.Errorf("read: %d results for %d nodes", len(res.Results), len(nodes))
	}
	var ue *uacp.Error
	switch {
	case err == nil:
		copy(out, res.Results)
		return nil
	case !isLimitError(err) || errors.As(err, &ue):
		return err // a closed channel (uacp.Error) ends the session anyway
	case len(nodes) == 1:
		code := ua.StatusBadResponseTooLarge
		var sc ua.StatusCode
		if errors.As(err, &sc) {
			code = sc
		}
		out[0] = &ua.DataValue{EncodingMask: ua.DataValueStatusCode, Status: code}
		return nil
	}
	h := len(nodes) / 2
	if err := c.readSplit(ctx, s, nodes[:h], out[:h]); err != nil {
		return err
	}
	return c.readSplit(ctx, s, nodes[h:], out[h:])
}
