package redundancy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/mapping"
)

// Mirror is what a node needs of the mirror engine; cmd adapts the
// engine to it. Observe and Health may be called from any goroutine.
type Mirror interface {
	// Run mirrors until ctx is done and returns after its goroutines exit.
	Run(ctx context.Context) error
	// Observe records a flow's state the active reported (hot standby
	// state): a value it wrote, with the source's status.
	Observe(FlowState)
	// Health reports per-server health and standby readiness.
	Health() Health
	// WaitIdle returns when no Write request is in flight.
	WaitIdle(ctx context.Context) error
}

// LiveApplier is a Mirror that can change its config in place, touching
// only what differs (the bridge's ApplyLive). followConfig tries it
// before it builds a new mirror beside the running one.
type LiveApplier interface {
	// ApplyLive changes the running mirror to cfg. applied false: nothing
	// changed (err says why: the change cannot be made live, or cfg cannot
	// be built) and the caller rebuilds the mirror instead. applied true
	// with an error: the change is made, but not yet confirmed by every
	// server within ctx. Called by the node's control loop only, one at a
	// time, concurrently with Observe, Health and WaitIdle.
	ApplyLive(ctx context.Context, cfg *mapping.Config) (applied bool, err error)
}

// MirrorFactory builds a Mirror for a config, writing only through gate
// and reporting every confirmed write (and every status change of a held
// source) to onWritten.
type MirrorFactory func(cfg *mapping.Config, gate *Gate, onWritten func(FlowState)) (Mirror, error)

// FlowState is one mapping flow's state as the active reports it
// (MirrorFactory's onWritten) and streams it to the standby on the peer
// link (Mirror.Observe): the value its target holds, the value's source
// timestamp, and the source's status at that time. It has the fields of
// bridge.FlowState, which cmd converts.
type FlowState struct {
	MappingID string
	Reverse   bool
	// Value is the value written to the target; for Held, the last good
	// value the target holds.
	Value *ua.Variant
	// SourceTS is the value's source timestamp (for a status change, the
	// timestamp of the source's reading that carried it).
	SourceTS time.Time
	// Status is the source's status at SourceTS (Good, the status written
	// with on_bad write_status, or a held source's Bad/Uncertain status).
	Status ua.StatusCode
	// StatusKnown (Observe): the active reported a status. An active of
	// the previous release streams none: the standby's own subscription
	// of the source then decides.
	StatusKnown bool
	// Held (onWritten): nothing was written (on_bad hold); the report
	// carries the source's new status only, and is no write (it does not
	// count as the last write of the active).
	Held bool
}

// Health is one node's view of its servers.
type Health struct {
	Servers []ServerHealth `json:"servers"`
	// Ready: every session up and every mapped item resolved.
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	// Warnings are conditions that do not stop the node but need an
	// operator (a certificate that expires within 30 days).
	Warnings []string `json:"warnings,omitempty"`
}

// ServerHealth is one server as seen by one node.
type ServerHealth struct {
	Name         string `json:"name"`
	Up           bool   `json:"up"`
	ServiceLevel int    `json:"service_level"`
	Endpoint     string `json:"endpoint,omitempty"`
}

// failed returns the names of servers that are down.
func (h Health) failed() []string {
	var out []string
	for _, s := range h.Servers {
		if !s.Up {
			out = append(out, s.Name)
		}
	}
	return out
}

// Options are a node's collaborators.
type Options struct {
	Config Config
	Logger *zap.Logger
	// InitialConfig is the local mirror config (YAML). It seeds the pair
	// at bootstrap; afterwards the replicated config is the truth and a
	// differing local file is reported, not applied.
	InitialConfig []byte
	// NewMirror builds the engine; nil for an arbiter.
	NewMirror MirrorFactory
	// CheckConfig, when set, builds the mirror for a config without
	// starting it and reports why it cannot be built: ApplyConfig refuses
	// such a config before it is replicated. It must not start anything
	// and is called from request goroutines.
	CheckConfig func(cfg *mapping.Config) error
	// StandbyApplyWait bounds how long the active waits for the standby
	// to report a new config READY before it applies it too (0:
	// DefaultStandbyApplyWait).
	StandbyApplyWait time.Duration
	// OpenRaft, when set, replaces the bolt store in DataDir and the TCP
	// (or TLS) raft transport. It is called at every start of raft (a
	// forced promotion restarts it) and must return stores that keep
	// what the previous call's held. redundancytest runs a pair in
	// memory with it.
	OpenRaft func() (RaftParts, error)
	// PeerTransport, when set, carries the peer link's requests (to
	// http://<peer address>/peer/v1/…) instead of TCP, and the node does
	// not listen on its peer address: the caller routes each request to
	// the other node's PeerHandler. For tests in one process.
	PeerTransport http.RoundTripper
	// Version is this member's software version, announced to the other
	// members with the pair protocols it speaks (version.go).
	Version string
	// MemberVersion, when set, asks a member without a peer link (the
	// arbiter) for its version; cmd asks its admin API. It is called by
	// a bridge node's own goroutine, with a deadline in ctx. A member
	// that announces no version is a release from before the negotiation
	// (return a zero VersionInfo). nil: the arbiter is taken to run this
	// build.
	MemberVersion func(ctx context.Context, m Member) (VersionInfo, error)
}

// RaftParts are the raft stores and transport of a member.
type RaftParts struct {
	Logs   raft.LogStore
	Stable raft.StableStore
	Snaps  raft.SnapshotStore
	Trans  raft.Transport
	// Close releases the stores (the transport is closed apart, if it
	// implements raft.WithClose); nil: nothing to release.
	Close func() error
}

// Aborter is the optional Mirror capability of an abortive fence.
// AbortInFlight closes, at once and abortively (RST: the kernel's unsent
// bytes are dropped), every session of the engine that has a Write
// request in flight, and returns when none is in flight any more, or
// with an error when that cannot be ensured before ctx ends. Called by a
// planned handover whose wait for idle writers failed, before leadership
// moves; the gate is closed then, so no new Write starts. Safe for
// concurrent use.
type Aborter interface {
	AbortInFlight(ctx context.Context) error
}

// Node is one member of the pair. Create with New, start with Run. Its
// exported methods are safe for concurrent use.
type Node struct {
	cfg  Config
	self Member
	log  *zap.Logger
	opts Options

	fsm   *fsm
	gate  *Gate
	rmu   sync.Mutex
	r     *raft.Raft
	trans raft.Transport
	parts RaftParts

	kick   chan struct{} // wakes the control loop (1-buffered)
	notify chan bool     // raft's leadership notifications

	// Role state, owned by the control loop; mirrored in atomics for
	// Status.
	active    atomic.Bool
	epoch     atomic.Uint64
	activeCfg atomic.Pointer[string] // hash of the config the mirror runs

	mirrorMu sync.Mutex
	mirror   Mirror

	// Hot standby stream.
	pendMu      sync.Mutex
	pend        map[stateKey]wireState
	lastWriteAt atomic.Int64 // unix nanos of this node's last confirmed write
	awaitGap    atomic.Int64 // unix nanos of the old active's last write, while waiting for our first
	gapCh       chan float64

	// What the other side told us.
	peerMu        sync.Mutex
	peerHealth    Health
	peerReady     bool
	peerSeen      time.Time // last successful exchange with the other node
	peerLastWrite time.Time // the active's last write (as a standby)
	peerHash      string
	// peerReadyHash is the config hash peerReady refers to (the one this
	// node, as active, sent in its last answered sync).
	peerReadyHash string

	localDiff atomic.Pointer[string]
	// configNote reports the last config change that did not go as
	// asked (a config this node cannot build, a standby that did not
	// apply first in time); nil when none.
	configNote atomic.Pointer[string]
	// ap is the control loop's memory of config changes (apply.go).
	ap applyState
	// dataDirErr is the last data directory probe's failure ("" when it
	// took writes); nil before the first probe (datadir.go).
	dataDirErr atomic.Pointer[string]

	// refusals journals refused pair connections (TLS).
	refusals *refusalJournal
	// peerClient is the peer link's HTTP client (TLS when configured).
	peerClient *http.Client

	// forced is set by ForcePromote: the promotion that follows is
	// journaled as "force", not as an election by a quorum.
	forced atomic.Bool
	// lastTimeoutNow is the last leadership transfer to this member that
	// its raft port passed on (transport.go); promote journals it.
	lastTimeoutNow atomic.Pointer[transferNote]
	// syncSem and bodyLimit bound the peer link's requests (peer.go).
	syncSem   chan struct{}
	bodyLimit atomic.Pointer[bodyLimit]

	// vers are the members' announced versions (version.go); haltErr is
	// set, and halted closed, when the fsm stops (a command this build
	// cannot apply): Run then returns haltErr.
	vers    *versions
	haltErr atomic.Pointer[error]
	halted  chan struct{}
}

type stateKey struct {
	id  string
	rev bool
}

// New checks the config and builds a node; Run starts it.
func New(o Options) (*Node, error) {
	cfg := o.Config.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	self := *cfg.member(cfg.ID)
	if self.Role == RoleNode && o.NewMirror == nil {
		return nil, fmt.Errorf("%w: node %s needs a mirror", ErrInvalidConfig, cfg.ID)
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	n := &Node{cfg: cfg, self: self, opts: o, log: log.Named("pair").With(zap.String("node", cfg.ID)),
		kick: make(chan struct{}, 1), notify: make(chan bool, 16), pend: map[stateKey]wireState{}, gapCh: make(chan float64, 1), syncSem: make(chan struct{}, 1)}
	n.fsm = &fsm{halt: n.haltOn}
	n.halted = make(chan struct{})
	n.vers = newVersions(cfg.ID, Local(o.Version), cfg.Members)
	n.gate = newGate(cfg.ID, n.fsm.recorded)
	n.fsm.changed = func() { n.wake(); n.gate.signal() }
	n.refusals = newRefusalJournal(cfg.ID, n.log.Named("tls"))
	n.peerClient = &http.Client{Timeout: 500 * time.Millisecond}
	if o := n.other(); o != nil && cfg.TLS != nil && self.Role == RoleNode {
		n.peerClient.Transport = &http.Transport{TLSClientConfig: cfg.TLS.ClientConfig(o.ID), MaxIdleConnsPerHost: 2,
			TLSHandshakeTimeout: 2 * time.Second, ForceAttemptHTTP2: false}
	}
	if o.PeerTransport != nil {
		n.peerClient.Transport = o.PeerTransport
	}
	return n, nil
}

// PeerHandler is the peer link's HTTP handler (the state stream and
// health). Run serves it on the member's peer address unless
// Options.PeerTransport is set; then the caller routes requests to it.
func (n *Node) PeerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /peer/v1/sync", n.handleSync)
	return mux
}

func (n *Node) wake() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *Node) raft() *raft.Raft {
	n.rmu.Lock()
	defer n.rmu.Unlock()
	return n.r
}

// raftConfig returns the raft settings of this node.
func (n *Node) raftConfig(notify chan bool) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.ID)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.Lease
	rc.CommitTimeout = 10 * time.Millisecond
	rc.SnapshotThreshold = 1024
	rc.Logger = NewHCLogger(n.log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)), "raft")
	rc.NotifyCh = notify
	return rc
}

func (n *Node) configuration() raft.Configuration {
	var c raft.Configuration
	for _, m := range n.cfg.Members {
		c.Servers = append(c.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.Raft)})
	}
	return c
}

// openParts opens the stores and the transport: Options.OpenRaft, or a
// bolt store and snapshots in DataDir and a TCP/TLS transport.
func (n *Node) openParts() (RaftParts, error) {
	if n.opts.OpenRaft != nil {
		return n.opts.OpenRaft()
	}
	if err := os.MkdirAll(n.cfg.DataDir, 0o750); err != nil {
		return RaftParts{}, fmt.Errorf("data dir: %w", err)
	}
	store, err := openRaftStore(n.cfg.DataDir, n.log)
	if err != nil {
		return RaftParts{}, fmt.Errorf("raft store in %s: %w", n.cfg.DataDir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.cfg.DataDir, 2, NewHCLogger(n.log, "snapshots"))
	if err != nil {
		store.Close()
		return RaftParts{}, fmt.Errorf("snapshot store: %w", err)
	}
	trans, err := n.newTransport()
	if err != nil {
		store.Close()
		return RaftParts{}, fmt.Errorf("raft transport on %s: %w", n.self.Raft, err)
	}
	return RaftParts{Logs: store, Stable: store, Snaps: snaps, Trans: trans, Close: store.Close}, nil
}

// closeParts closes what openParts opened (raft itself already shut down).
func closeParts(p RaftParts) {
	if c, ok := p.Trans.(raft.WithClose); ok {
		_ = c.Close()
	}
	if p.Close != nil {
		_ = p.Close()
	}
}

// openRaft opens the stores and the transport and starts raft,
// bootstrapping the full member list on first start.
func (n *Node) openRaft() error {
	p, err := n.openParts()
	if err != nil {
		return err
	}
	rc := n.raftConfig(n.notify)
	has, err := raft.HasExistingState(p.Logs, p.Stable, p.Snaps)
	if err != nil {
		closeParts(p)
		return err
	}
	if !has {
		if err := raft.BootstrapCluster(rc, p.Logs, p.Stable, p.Snaps, p.Trans, n.configuration()); err != nil {
			closeParts(p)
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	r, err := raft.NewRaft(rc, n.fsm, p.Logs, p.Stable, p.Snaps, p.Trans)
	if err != nil {
		closeParts(p)
		return fmt.Errorf("start raft: %w", err)
	}
	n.rmu.Lock()
	n.r, n.trans, n.parts = r, p.Trans, p
	n.rmu.Unlock()
	return nil
}

func (n *Node) closeRaft() {
	n.rmu.Lock()
	r, p := n.r, n.parts
	n.r, n.trans, n.parts = nil, nil, RaftParts{}
	n.rmu.Unlock()
	if r != nil {
		_ = r.Shutdown().Error()
	}
	closeParts(p)
}

// Run runs the member until ctx is done; it returns after every
// goroutine it started has exited and raft has shut down.
func (n *Node) Run(ctx context.Context) error {
	if err := n.openRaft(); err != nil {
		return err
	}
	defer n.closeRaft()
	defer n.peerClient.CloseIdleConnections()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	defer n.gate.stop()
	if n.self.Role == RoleNode {
		if n.opts.PeerTransport == nil {
			srv, err := n.servePeer(ctx)
			if err != nil {
				return err
			}
			wg.Add(1)
			go func() { defer wg.Done(); <-ctx.Done(); _ = srv.Close() }()
		}
		wg.Add(4)
		go func() { defer wg.Done(); n.versionLoop(ctx) }()
		go func() { defer wg.Done(); n.leaseLoop(ctx) }()
		go func() { defer wg.Done(); n.syncLoop(ctx) }()
		go func() { defer wg.Done(); n.rejoinLoop(ctx) }()
	}
	wg.Add(2)
	go func() { defer wg.Done(); n.dataDirLoop(ctx) }()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-n.notify:
				n.wake()
			case <-n.halted:
				cancel() // the fsm stopped: so does the member
				return
			}
		}
	}()
	n.log.Info("member started", zap.String("member_role", string(n.self.Role)), zap.String("raft", n.self.Raft),
		zap.Stringer("version", n.vers.local()))
	n.controlLoop(ctx, &wg)
	if e := n.haltErr.Load(); e != nil {
		return *e
	}
	return nil
}

// controlLoop owns the role: promote on leadership, close the gate on its
// loss, run the mirror on the replicated config, watch the servers.
func (n *Node) controlLoop(ctx context.Context, wg *sync.WaitGroup) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var run *mirrorRun
	defer func() {
		n.ap.next.halt()
		run.halt()
	}()
	mon := &monitor{down: map[string]time.Time{}}
	var lastArbiterTransfer time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.kick:
		case <-tick.C:
		case g := <-n.gapCh:
			n.applyCmd(command{Op: "gap", Epoch: n.epoch.Load(), GapMS: g})
			continue
		}
		r := n.raft()
		if r == nil {
			continue
		}
		isLeader := r.State() == raft.Leader
		st := n.fsm.State()

		if n.self.Role == RoleArbiter {
			if isLeader && time.Since(lastArbiterTransfer) > time.Second {
				lastArbiterTransfer = time.Now()
				n.arbiterHandOff(ctx, r, st)
			}
			continue
		}

		// Seed the pair's config at bootstrap.
		if isLeader && st.ConfigHash == "" && n.opts.InitialConfig != nil {
			if cfg, err := parseConfig(n.opts.InitialConfig); err == nil {
				n.applyCmd(command{Op: "config", Config: n.opts.InitialConfig, Hash: cfg.Hash()})
				continue
			} else {
				n.log.Error("local config does not validate; not seeding the pair", zap.Error(err))
			}
		}
		// Run the mirror on the replicated config (built before the old
		// one stops; on the active, after the standby went first).
		run = n.followConfig(ctx, wg, st, run)

		switch {
		case isLeader && !n.active.Load():
			n.promote(r, st)
		case !isLeader && n.active.Load():
			n.demote("lost leadership")
		case n.active.Load() && (st.Active != n.cfg.ID || st.Epoch != n.epoch.Load()):
			n.demote(fmt.Sprintf("the pair's state names %s active in epoch %d", st.Active, st.Epoch))
		case isLeader && n.active.Load():
			n.watchServers(ctx, mon, st)
		}
	}
}

// promote makes this node the active: a promote entry with epoch+1 and a
// journal event, committed by a quorum before the gate opens.
func (n *Node) promote(r *raft.Raft, st PairState) {
	// The fence wait counts from now, a moment after the election was
	// won (later is safer: see Config.FenceWait).
	won := time.Now()
	// A new leader may not have applied every committed entry yet (the
	// old active's handover among them): wait until it has.
	if err := r.Barrier(2 * time.Second).Error(); err != nil {
		n.log.Warn("barrier before promote failed; will retry", zap.Error(err))
		return
	}
	st = n.fsm.State()
	ev := Event{Time: time.Now(), From: st.Active, To: n.cfg.ID, Epoch: st.Epoch + 1}
	var lastWrite time.Time
	// A planned handover by the recorded active of the current epoch,
	// made after its writes were idle or aborted, needs no fence wait.
	planned := st.Handover != nil && st.Handover.To == n.cfg.ID && st.Handover.Fenced &&
		st.Handover.From == st.Active && st.Handover.Epoch == st.Epoch
	switch {
	case st.Handover != nil && st.Handover.To == n.cfg.ID:
		ev.From, ev.Reason, ev.Detail, lastWrite = st.Handover.From, st.Handover.Reason, st.Handover.Detail, st.Handover.LastWriteAt
	case st.Active == "":
		ev.Reason = "bootstrap"
	case st.Active == n.cfg.ID:
		ev.Reason = "re-elected"
		ev.Detail = "leadership regained without a handover"
	case n.transferredBy() != "":
		// A leadership transfer nobody announced in the journal (a member
		// called raft's transfer directly): say so, not peer-lost.
		ev.Reason = "transfer"
		ev.Detail = "leadership handed to this node by " + n.transferredBy() + " (raft TimeoutNow) without an announced handover; active was " + st.Active
	default:
		ev.Reason = "peer-lost"
		ev.Detail = "active " + st.Active + " lost; elected by the quorum"
		n.peerMu.Lock()
		lastWrite = n.peerLastWrite
		n.peerMu.Unlock()
	}
	if n.forced.Load() {
		planned = false
		ev.Reason, ev.Detail = "force", "switchover --force: promoted alone, without a quorum (membership rewritten to this node)"
	}
	// No fence wait at bootstrap (no one wrote before), after a planned
	// handover, or when this node was the recorded active itself (no
	// other node was promoted in between: this leader has every committed
	// entry).
	var notBefore time.Time
	if !planned && st.Active != "" && (st.Active != n.cfg.ID || n.forced.Load()) {
		notBefore = won.Add(n.cfg.FenceWait())
	}
	if lastWrite.IsZero() && ev.From != "" && ev.From != n.cfg.ID {
		// The old active could not announce its last write (it died and
		// the arbiter handed over): use the last one it streamed to us,
		// so that the gap is measured on this path too.
		n.peerMu.Lock()
		lastWrite = n.peerLastWrite
		n.peerMu.Unlock()
	}
	if err := n.applyCmd(command{Op: "promote", Node: n.cfg.ID, Epoch: ev.Epoch, Event: &ev}); err != nil {
		n.log.Warn("promote failed; will retry", zap.Error(err))
		return
	}
	n.forced.Store(false)
	n.lastTimeoutNow.Store(nil) // journaled (or superseded by a handover): not for a later election
	n.epoch.Store(ev.Epoch)
	n.active.Store(true)
	if !lastWrite.IsZero() {
		n.awaitGap.Store(lastWrite.UnixNano())
	}
	n.gate.openAfter(true, ev.Epoch, notBefore)
	n.log.Warn("role change: ACTIVE", zap.Uint64("epoch", ev.Epoch), zap.String("reason", ev.Reason),
		zap.String("from", ev.From), zap.String("detail", ev.Detail), zap.Duration("fence_wait", max(0, time.Until(notBefore)).Round(time.Millisecond)))
}

// demote closes the gate at once.
func (n *Node) demote(why string) {
	n.gate.setOpen(false, 0)
	n.active.Store(false)
	n.log.Warn("role change: STANDBY", zap.String("reason", why), zap.Uint64("epoch", n.epoch.Load()))
}

func (n *Node) applyCmd(c command) error {
	r := n.raft()
	if r == nil {
		return ErrNoQuorum
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	f := r.Apply(b, 2*time.Second)
	if err := f.Error(); err != nil {
		return fmt.Errorf("raft apply %s: %w", c.Op, err)
	}
	if e, ok := f.Response().(error); ok && e != nil {
		return e
	}
	return nil
}

// staleAckWindow is how long after this process stood still (SIGSTOP, a
// starved scheduler) a quorum confirmation is not trusted: raft's
// VerifyLeader counts any heartbeat answer that it processes after the
// call, also one to a heartbeat sent before the pause, when the followers
// may since have elected another leader. Every RPC sent before the pause
// has returned or failed within the raft transport's timeout (2 s, a
// deadline set at send time), so after this window the answers are fresh.
// Seen in the starved fault matrix: a node frozen for ~2 s extended its
// lease from such an answer and wrote 50 ms after the new active had.
const staleAckWindow = 2 * time.Second

// leaseLoop keeps the write lease fresh while this node leads: each
// VerifyLeader that a quorum confirms extends the lease to its start time
// plus Lease, unless it started within staleAckWindow of a pause of this
// process (see watchPauses), which also revokes the lease at once.
func (n *Node) leaseLoop(ctx context.Context) {
	base := time.Now()
	var pausedAt atomic.Int64 // time since base of the last pause seen
	pausedAt.Store(-int64(staleAckWindow))
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); n.watchPauses(wctx, base, &pausedAt) }()
	t := time.NewTicker(n.cfg.Lease / 5)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r := n.raft()
		if r == nil || r.State() != raft.Leader {
			continue
		}
		start := time.Now()
		if err := r.VerifyLeader().Error(); err != nil {
			n.gate.revoke()
			n.wake()
			continue
		}
		if start.Sub(base) < time.Duration(pausedAt.Load())+staleAckWindow {
			continue // the confirmation may be an answer from before the pause
		}
		n.gate.extend(start.Add(n.cfg.Lease))
	}
}

// watchPauses ticks every 20 ms; a tick late by more than
// max(HeartbeatTimeout-Lease, 100ms) means this process stood still long
// enough for the followers to start an election: it records the moment
// in pausedAt (time since base) and revokes the lease.
func (n *Node) watchPauses(ctx context.Context, base time.Time, pausedAt *atomic.Int64) {
	const every = 20 * time.Millisecond
	limit := max(n.cfg.HeartbeatTimeout-n.cfg.Lease, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Since(base)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Since(base)
		if gap := now - last; gap > every+limit {
			pausedAt.Store(int64(now))
			n.gate.revoke()
			if r := n.raft(); r != nil && r.State() == raft.Leader {
				n.log.Warn("this process stood still: write lease revoked; quorum confirmations distrusted for a while",
					zap.Duration("stood_still", gap.Round(time.Millisecond)), zap.Duration("distrust", staleAckWindow))
			}
		}
		last = now
	}
}

// onWritten is called by the engine for every confirmed write, and for
// every status change of a held source (s.Held: no write). The state goes
// to the standby with the next sync, the newest per flow.
func (n *Node) onWritten(s FlowState) {
	if !s.Held {
		now := time.Now()
		n.lastWriteAt.Store(now.UnixNano())
		if old := n.awaitGap.Swap(0); old != 0 {
			gap := float64(now.UnixNano()-old) / 1e6
			select {
			case n.gapCh <- gap:
			default:
			}
			n.log.Warn("first write as active", zap.Float64("gap_ms", gap))
		}
	}
	n.pendMu.Lock()
	n.pend[stateKey{s.MappingID, s.Reverse}] = wireState{ID: s.MappingID, Rev: s.Reverse, TS: s.SourceTS, v: s.Value, status: s.Status}
	n.pendMu.Unlock()
}

// arbiterHandOff: the arbiter never stays leader; it hands leadership to
// a bridge node that answers a raft probe, preferring the node that is not
// the recorded active (that one lost leadership), journaling why when the
// role moves. It never transfers to a node that does not answer: raft's
// transfer to an unreachable follower can block its replication and leave
// "leadership transfer in progress" set for good (seen in the starved fault
// matrix: the arbiter stuck for a minute, no active).
func (n *Node) arbiterHandOff(ctx context.Context, r *raft.Raft, st PairState) {
	var nodes []Member
	for _, m := range n.cfg.Members {
		if m.Role == RoleNode {
			nodes = append(nodes, m)
		}
	}
	alive := n.answering(ctx, nodes)
	var target *Member
	for _, id := range alive {
		if m := n.cfg.member(id); target == nil || (id != st.Active && target.ID == st.Active) {
			target = m
		}
	}
	if target == nil {
		n.log.Warn("arbiter: no bridge node answers; staying leader until one does")
		return
	}
	if st.Active != "" && target.ID != st.Active {
		// From is the lost active (not the arbiter): the journal event
		// names who the role was taken from.
		if err := n.applyCmd(command{Op: "handover", Handover: &Handover{From: st.Active, To: target.ID, Reason: "arbiter",
			Detail: "active " + st.Active + " lost; arbiter elected and handed over", At: time.Now()}}); err != nil {
			n.log.Warn("arbiter handover entry", zap.Error(err))
		}
	}
	if err := r.LeadershipTransferToServer(raft.ServerID(target.ID), raft.ServerAddress(target.Raft)).Error(); err != nil {
		n.log.Warn("arbiter: leadership transfer failed; will retry", zap.String("to", target.ID), zap.Error(err))
	}
}

// other returns the other bridge node.
func (n *Node) other() *Member {
	for i := range n.cfg.Members {
		m := &n.cfg.Members[i]
		if m.Role == RoleNode && m.ID != n.cfg.ID {
			return m
		}
	}
	return nil
}

// NotActiveError says which node is active (and where its admin API is).
type NotActiveError struct {
	Active string
	Admin  string
}

func (e *NotActiveError) Error() string {
	if e.Active == "" {
		return "this node is not active and no active node is known (no quorum?)"
	}
	return fmt.Sprintf("this node is not active: the active node is %s (admin %s)", e.Active, e.Admin)
}

func (e *NotActiveError) Unwrap() error { return ErrNotActive }

func (n *Node) notActive() error {
	r := n.raft()
	e := &NotActiveError{}
	if r != nil {
		_, id := r.LeaderWithID()
		if m := n.cfg.member(string(id)); m != nil && m.Role == RoleNode {
			e.Active, e.Admin = m.ID, m.Admin
		}
	}
	if e.Active == "" {
		// No leader: name the replicated active only while it still
		// streams to us. A dead one (or this node itself, after it lost
		// the quorum) is no active to send the operator to, and naming it
		// turned `switchover --force` on a lone survivor into a forward to
		// a dead node (or to itself) instead of a forced promotion.
		n.peerMu.Lock()
		alive := time.Since(n.peerSeen) < time.Second
		n.peerMu.Unlock()
		if st := n.fsm.State(); st.Active != "" && st.Active != n.cfg.ID && alive {
			if m := n.cfg.member(st.Active); m != nil {
				e.Active, e.Admin = m.ID, m.Admin
			}
		}
	}
	return e
}

// Switchover hands the active role to the standby (to may name it; empty
// means the other node). Refused with ErrStandbyNotReady while the
// standby is not READY unless force. On a standby it returns a
// *NotActiveError naming the active.
func (n *Node) Switchover(ctx context.Context, to string, force bool) error {
	return n.handover(ctx, to, force, "manual", "operator request")
}

func (n *Node) handover(ctx context.Context, to string, force bool, reason, detail string) error {
	if n.self.Role != RoleNode || !n.active.Load() {
		return n.notActive()
	}
	o := n.other()
	if to != "" && to != o.ID {
		if to == n.cfg.ID {
			return fmt.Errorf("node %s is already active", to)
		}
		return fmt.Errorf("no bridge node %q", to)
	}
	n.peerMu.Lock()
	ready := n.peerReady && time.Since(n.peerSeen) < time.Second
	n.peerMu.Unlock()
	if !ready && !force {
		return fmt.Errorf("%w: %s is not READY (sessions, items or state not in sync); use --force to switch anyway", ErrStandbyNotReady, o.ID)
	}
	r := n.raft()
	epoch := n.epoch.Load()
	// Stop writing, let in-flight writes land (or abort them), send the
	// last state.
	n.gate.setOpen(false, 0)
	if err := n.quiesce(ctx); err != nil {
		// A Write may still be in flight and could land after the new
		// active's first: the handover is withdrawn, leadership stays.
		n.reopen(epoch)
		n.log.Warn("handover withdrawn: writes still in flight", zap.String("to", o.ID), zap.String("reason", reason), zap.Error(err))
		return fmt.Errorf("%w: %w", ErrHandoverWithdrawn, err)
	}
	n.flush(ctx)
	lw := time.Unix(0, n.lastWriteAt.Load())
	if err := n.applyCmd(command{Op: "handover", Handover: &Handover{From: n.cfg.ID, To: o.ID, Reason: reason, Detail: detail,
		LastWriteAt: lw, At: time.Now(), Epoch: epoch, Fenced: true}}); err != nil {
		n.reopen(epoch)
		return err
	}
	if err := r.LeadershipTransferToServer(raft.ServerID(o.ID), raft.ServerAddress(o.Raft)).Error(); err != nil {
		// Withdraw the announcement, so that a later, unrelated election
		// is neither journaled with this handover's reason nor let off
		// the fence wait. Write again only once it is withdrawn.
		if cerr := n.applyCmd(command{Op: "handover"}); cerr != nil {
			n.log.Warn("withdrawing the handover entry failed: staying fenced", zap.Error(cerr))
			n.demote("handover to " + o.ID + " failed and could not be withdrawn")
			return fmt.Errorf("leadership transfer to %s: %w (withdrawal: %w)", o.ID, err, cerr)
		}
		n.reopen(epoch)
		return fmt.Errorf("leadership transfer to %s: %w", o.ID, err)
	}
	n.demote("handed over to " + o.ID + " (" + reason + ")")
	return nil
}

// reopen opens the gate again after a handover that did not happen, if
// this node is still the leader and active under epoch (the control loop
// may have demoted it meanwhile).
func (n *Node) reopen(epoch uint64) {
	r := n.raft()
	if r != nil && r.State() == raft.Leader && n.active.Load() && n.epoch.Load() == epoch {
		n.gate.setOpen(true, epoch)
	}
}

// quiesce returns when the mirror has no Write in flight (its gate is
// closed, so none starts): it waits up to Config.IdleWait, then aborts what is
// still in flight (Aborter). It fails when neither ensured it.
func (n *Node) quiesce(ctx context.Context) error {
	n.mirrorMu.Lock()
	m := n.mirror
	n.mirrorMu.Unlock()
	if m == nil {
		return nil
	}
	idleWait := n.cfg.IdleWait
	wctx, cancel := context.WithTimeout(ctx, idleWait)
	err := m.WaitIdle(wctx)
	cancel()
	if err == nil {
		return nil
	}
	a, ok := m.(Aborter)
	if !ok {
		return fmt.Errorf("a Write is still in flight after %s and the mirror cannot abort it: %w", idleWait, err)
	}
	n.log.Warn("handover: Writes still in flight; aborting their sessions", zap.Error(err))
	actx, cancel := context.WithTimeout(ctx, n.cfg.AbortBound+n.cfg.FenceMargin)
	defer cancel()
	if aerr := a.AbortInFlight(actx); aerr != nil {
		return fmt.Errorf("a Write is still in flight after %s and aborting it failed: %w", idleWait, aerr)
	}
	return nil
}

// ForcePromote makes this node active when the pair has lost its quorum
// and this node is the lone survivor: it rewrites the raft membership to
// this node alone (raft.RecoverCluster), restarts raft and returns once
// this node is active, journaled with reason "force". It is refused
// (ErrQuorumReachable) while another member answers on its raft port: a
// quorum may then exist or come back by itself, and a forced member beside
// it could be a second writer. Members are added back as voters only when
// they answer again (rejoinLoop), so a dead member never costs the
// survivor its quorum. Use only when the other members are really down;
// a node alive behind a partition that blocks raft too cannot be told
// from a dead one.
func (n *Node) ForcePromote(ctx context.Context) error {
	if n.self.Role != RoleNode {
		return errors.New("an arbiter cannot be promoted")
	}
	r := n.raft()
	if r != nil && r.State() == raft.Leader {
		return n.handover(ctx, "", true, "force", "switchover --force on the active")
	}
	if r != nil {
		if _, id := r.LeaderWithID(); id != "" {
			return fmt.Errorf("a leader (%s) exists: use a normal switchover", id)
		}
	}
	if alive := n.answering(ctx, n.otherMembers()); len(alive) > 0 {
		return fmt.Errorf("%w: %s answer(s) on the raft port; the pair elects an active by itself as soon as a quorum "+
			"(2 of %d members) can talk, and a forced node beside a live quorum would be a second writer",
			ErrQuorumReachable, strings.Join(alive, ", "), len(n.cfg.Members))
	}
	n.log.Warn("FORCED PROMOTION: rewriting the pair's membership to this node alone (no other member answers)")
	n.closeRaft()
	p, err := n.openParts()
	if err != nil {
		return err
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.ID), Address: raft.ServerAddress(n.self.Raft)}}}
	err = raft.RecoverCluster(n.raftConfig(nil), &fsm{}, p.Logs, p.Stable, p.Snaps, p.Trans, conf)
	closeParts(p)
	if err != nil {
		return fmt.Errorf("recover cluster: %w", err)
	}
	n.forced.Store(true)
	if err := n.openRaft(); err != nil {
		n.forced.Store(false)
		return err
	}
	n.wake()
	// Say "done" only once this node is active under the new epoch.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !n.active.Load() {
		select {
		case <-wctx.Done():
			return fmt.Errorf("forced promotion: raft restarted alone but this node did not become active: %w", wctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// otherMembers returns every member but this one.
func (n *Node) otherMembers() []Member {
	var out []Member
	for _, m := range n.cfg.Members {
		if m.ID != n.cfg.ID {
			out = append(out, m)
		}
	}
	return out
}

// probeTimeout bounds one raft liveness probe.
const probeTimeout = time.Second

// answering returns the ids of the members that answer a raft probe: an
// AppendEntries of term 0, which every raft member answers (with its own
// term) and ignores. The probes run in parallel; answering returns after
// all have answered or timed out.
func (n *Node) answering(ctx context.Context, ms []Member) []string {
	n.rmu.Lock()
	trans := n.trans
	n.rmu.Unlock()
	if trans == nil || len(ms) == 0 {
		return nil
	}
	ok := make([]bool, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok[i] = n.probe(ctx, trans, m)
		}()
	}
	wg.Wait()
	var out []string
	for i, m := range ms {
		if ok[i] {
			out = append(out, m.ID)
		}
	}
	return out
}

// probe sends one AppendEntries of term 0 to m. The transport call has no
// context: it runs in a goroutine that probe waits for (bounded by the
// transport's own timeout), and the answer counts only within
// probeTimeout.
func (n *Node) probe(ctx context.Context, trans raft.Transport, m Member) bool {
	req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax,
		ID: []byte(n.cfg.ID), Addr: trans.EncodePeer(raft.ServerID(n.cfg.ID), trans.LocalAddr())}}
	done := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		var resp raft.AppendEntriesResponse
		done <- trans.AppendEntries(raft.ServerID(m.ID), raft.ServerAddress(m.Raft), req, &resp)
	}()
	t := time.NewTimer(probeTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err == nil && time.Since(start) < probeTimeout
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// rejoinInterval is how often the active looks for members the raft
// membership lost (after a forced promotion).
const rejoinInterval = 250 * time.Millisecond

// rejoinLoop adds back, as voters, configured members the raft membership
// lost (after a forced promotion), each only once it answers a raft probe:
// a dead member added back would take the survivor's quorum with it.
func (n *Node) rejoinLoop(ctx context.Context) {
	t := time.NewTicker(rejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r := n.raft()
		if r == nil || r.State() != raft.Leader || !n.active.Load() {
			continue
		}
		f := r.GetConfiguration()
		if f.Error() != nil {
			continue
		}
		in := map[raft.ServerID]bool{}
		for _, s := range f.Configuration().Servers {
			in[s.ID] = true
		}
		var missing []Member
		for _, m := range n.cfg.Members {
			if !in[raft.ServerID(m.ID)] {
				missing = append(missing, m)
			}
		}
		for _, id := range n.answering(ctx, missing) {
			m := n.cfg.member(id)
			n.log.Warn("member answers again: adding it back to the pair", zap.String("member", id))
			if err := r.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.Raft), 0, time.Second).Error(); err != nil {
				n.log.Warn("adding member back", zap.String("member", id), zap.Error(err))
			}
		}
	}
}

// monitor tracks how long each server has been down on this node.
type monitor struct {
	down map[string]time.Time
}

// watchServers is the server monitor, run on the active: policy any or
// all, after FaultDelay, only to a healthier standby, not within Cooldown
// of the last switchover.
func (n *Node) watchServers(ctx context.Context, mon *monitor, st PairState) {
	n.mirrorMu.Lock()
	m := n.mirror
	n.mirrorMu.Unlock()
	if m == nil {
		return
	}
	h := m.Health()
	now := time.Now()
	var failed []string
	for _, s := range h.Servers {
		if s.Up {
			delete(mon.down, s.Name)
			continue
		}
		since, ok := mon.down[s.Name]
		if !ok {
			mon.down[s.Name] = now
			continue
		}
		if now.Sub(since) >= n.cfg.FaultDelay {
			failed = append(failed, s.Name)
		}
	}
	if len(failed) == 0 || len(h.Servers) == 0 {
		return
	}
	if n.cfg.Policy == PolicyAll && len(failed) < len(h.Servers) {
		return
	}
	if len(st.Journal) > 0 && now.Sub(st.Journal[len(st.Journal)-1].Time) < n.cfg.Cooldown {
		return
	}
	n.peerMu.Lock()
	fresh := time.Since(n.peerSeen) < time.Second
	peerFailed := len(n.peerHealth.failed())
	n.peerMu.Unlock()
	if !fresh || peerFailed >= len(failed) {
		return
	}
	sort.Strings(failed)
	detail := fmt.Sprintf("policy %s: failed on %s: %s", n.cfg.Policy, n.cfg.ID, strings.Join(failed, ","))
	n.log.Warn("server monitor: handing over", zap.Strings("failed", failed), zap.String("policy", string(n.cfg.Policy)))
	if err := n.handover(ctx, "", true, "server-monitor", detail); err != nil {
		n.log.Warn("server monitor handover failed", zap.Error(err))
	}
}

// reportLocalDiff compares the local file with the replicated config and
// reports a difference instead of applying either side silently.
func (n *Node) reportLocalDiff(repl *mapping.Config) {
	if n.opts.InitialConfig == nil {
		return
	}
	local, err := parseConfig(n.opts.InitialConfig)
	if err != nil || local.Hash() == repl.Hash() {
		n.localDiff.Store(nil)
		return
	}
	d := mapping.Diff(repl, local)
	s := fmt.Sprintf("local config %.12s differs from the pair's %.12s: %s (the pair's config is used; apply on the active to change it)",
		local.Hash(), repl.Hash(), d.String())
	n.localDiff.Store(&s)
	n.log.Warn(s)
}

func parseConfig(b []byte) (*mapping.Config, error) {
	c, err := mapping.ParseYAML(b, "replicated config")
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}
