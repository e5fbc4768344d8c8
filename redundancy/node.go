package redundancy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/mapping"
)

// Mirror is what a node needs of the mirror engine; cmd adapts the
// engine to it. Observe and Health may be called from any goroutine.
type Mirror interface {
	// Run mirrors until ctx is done and returns after its goroutines exit.
	Run(ctx context.Context) error
	// Observe records a value the active wrote (hot standby state).
	Observe(mappingID string, reverse bool, v *ua.Variant, ts time.Time)
	// Health reports per-server health and standby readiness.
	Health() Health
	// WaitIdle returns when no Write request is in flight.
	WaitIdle(ctx context.Context) error
}

// MirrorFactory builds a Mirror for a config, writing only through gate
// and reporting every confirmed write to onWritten.
type MirrorFactory func(cfg *mapping.Config, gate *Gate, onWritten func(mappingID string, reverse bool, v *ua.Variant, ts time.Time)) (Mirror, error)

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
	trans *raft.NetworkTransport
	store *raftboltdb.BoltStore
	snaps raft.SnapshotStore

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

	localDiff atomic.Pointer[string]
	// dataDirErr is the last data directory probe's failure ("" when it
	// took writes); nil before the first probe (datadir.go).
	dataDirErr atomic.Pointer[string]

	// refusals journals refused pair connections (TLS).
	refusals *refusalJournal
	// peerClient is the peer link's HTTP client (TLS when configured).
	peerClient *http.Client

	// forced is set by ForcePromote: the promotion that follows is
	// journaled as "forced", not as an election by a quorum.
	forced atomic.Bool
	// lastTimeoutNow is the last leadership transfer to this member that
	// its raft port passed on (transport.go); promote journals it.
	lastTimeoutNow atomic.Pointer[transferNote]
	// syncSem and bodyLimit bound the peer link's requests (peer.go).
	syncSem   chan struct{}
	bodyLimit atomic.Pointer[bodyLimit]
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
		gate: newGate(), kick: make(chan struct{}, 1), notify: make(chan bool, 16), pend: map[stateKey]wireState{}, gapCh: make(chan float64, 1)}
	n.fsm = &fsm{changed: n.wake}
	n.refusals = newRefusalJournal(cfg.ID, n.log.Named("tls"))
	n.peerClient = &http.Client{Timeout: 500 * time.Millisecond}
	if o := n.other(); o != nil && cfg.TLS != nil && self.Role == RoleNode {
		n.peerClient.Transport = &http.Transport{TLSClientConfig: cfg.TLS.ClientConfig(o.ID), MaxIdleConnsPerHost: 2,
			TLSHandshakeTimeout: 2 * time.Second, ForceAttemptHTTP2: false}
	}
	return n, nil
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

// openRaft opens the stores and the transport and starts raft,
// bootstrapping the full member list on first start.
func (n *Node) openRaft() error {
	if err := os.MkdirAll(n.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	store, err := raftboltdb.NewBoltStore(filepath.Join(n.cfg.DataDir, "raft.db"))
	if err != nil {
		return fmt.Errorf("raft store in %s: %w", n.cfg.DataDir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(n.cfg.DataDir, 2, NewHCLogger(n.log, "snapshots"))
	if err != nil {
		store.Close()
		return fmt.Errorf("snapshot store: %w", err)
	}
	trans, err := n.newTransport()
	if err != nil {
		store.Close()
		return fmt.Errorf("raft transport on %s: %w", n.self.Raft, err)
	}
	rc := n.raftConfig(n.notify)
	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		trans.Close()
		store.Close()
		return err
	}
	if !has {
		if err := raft.BootstrapCluster(rc, store, store, snaps, trans, n.configuration()); err != nil {
			trans.Close()
			store.Close()
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	r, err := raft.NewRaft(rc, n.fsm, store, store, snaps, trans)
	if err != nil {
		trans.Close()
		store.Close()
		return fmt.Errorf("start raft: %w", err)
	}
	n.rmu.Lock()
	n.r, n.trans, n.store, n.snaps = r, trans, store, snaps
	n.rmu.Unlock()
	return nil
}

func (n *Node) closeRaft() {
	n.rmu.Lock()
	r, trans, store := n.r, n.trans, n.store
	n.rmu.Unlock()
	if r != nil {
		_ = r.Shutdown().Error()
	}
	if trans != nil {
		_ = trans.Close()
	}
	if store != nil {
		_ = store.Close()
	}
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
	if n.self.Role == RoleNode {
		srv, err := n.servePeer(ctx)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); <-ctx.Done(); _ = srv.Close() }()
		wg.Add(2)
		go func() { defer wg.Done(); n.leaseLoop(ctx) }()
		go func() { defer wg.Done(); n.syncLoop(ctx) }()
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
			}
		}
	}()
	n.log.Info("member started", zap.String("member_role", string(n.self.Role)), zap.String("raft", n.self.Raft))
	n.controlLoop(ctx, &wg)
	return nil
}

// controlLoop owns the role: promote on leadership, close the gate on its
// loss, run the mirror on the replicated config, watch the servers.
func (n *Node) controlLoop(ctx context.Context, wg *sync.WaitGroup) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var stopMirror context.CancelFunc
	var mirrorDone chan struct{}
	defer func() {
		if stopMirror != nil {
			stopMirror()
			<-mirrorDone
		}
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
				n.arbiterHandOff(r, st)
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
		// Run the mirror on the replicated config.
		if st.ConfigHash != "" {
			cur := n.activeCfg.Load()
			if cur == nil || *cur != st.ConfigHash {
				if stopMirror != nil {
					stopMirror()
					<-mirrorDone
					stopMirror = nil
				}
				cfg, err := parseConfig(st.Config)
				if err != nil {
					n.log.Error("replicated config does not validate", zap.Error(err))
				} else {
					n.reportLocalDiff(cfg)
					m, err := n.opts.NewMirror(cfg, n.gate, n.onWritten)
					if err != nil {
						n.log.Error("cannot build the mirror", zap.Error(err))
					} else {
						n.mirrorMu.Lock()
						n.mirror = m
						n.mirrorMu.Unlock()
						h := st.ConfigHash
						n.activeCfg.Store(&h)
						mctx, cancel := context.WithCancel(ctx)
						stopMirror = cancel
						mirrorDone = make(chan struct{})
						done := mirrorDone
						wg.Add(1)
						go func() { defer wg.Done(); defer close(done); _ = m.Run(mctx) }()
						n.log.Info("mirror running", zap.String("config_hash", h[:12]), zap.Int("mappings", len(cfg.Mappings)))
					}
				}
			}
		}

		switch {
		case isLeader && !n.active.Load():
			n.promote(r, st)
		case !isLeader && n.active.Load():
			n.demote("lost leadership")
		case isLeader && n.active.Load():
			n.watchServers(ctx, mon, st)
			n.rejoinPeers(r)
		}
	}
}

// promote makes this node the active: a promote entry with epoch+1 and a
// journal event, committed by a quorum before the gate opens.
func (n *Node) promote(r *raft.Raft, st PairState) {
	// A new leader may not have applied every committed entry yet (the
	// old active's handover among them): wait until it has.
	if err := r.Barrier(2 * time.Second).Error(); err != nil {
		n.log.Warn("barrier before promote failed; will retry", zap.Error(err))
		return
	}
	st = n.fsm.State()
	ev := Event{Time: time.Now(), From: st.Active, To: n.cfg.ID, Epoch: st.Epoch + 1}
	var lastWrite time.Time
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
		ev.Reason, ev.Detail = "forced", "switchover --force: promoted alone, without a quorum (membership rewritten to this node)"
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
	n.gate.setOpen(true, ev.Epoch)
	n.log.Warn("role change: ACTIVE", zap.Uint64("epoch", ev.Epoch), zap.String("reason", ev.Reason),
		zap.String("from", ev.From), zap.String("detail", ev.Detail))
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

// leaseLoop keeps the write lease fresh while this node leads: each
// VerifyLeader that a quorum confirms extends the lease to its start time
// plus Lease.
func (n *Node) leaseLoop(ctx context.Context) {
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
		if err := r.VerifyLeader().Error(); err == nil {
			n.gate.extend(start.Add(n.cfg.Lease))
		} else {
			n.gate.revoke()
			n.wake()
		}
	}
}

// onWritten is called by the engine for every confirmed write.
func (n *Node) onWritten(id string, rev bool, v *ua.Variant, ts time.Time) {
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
	n.pendMu.Lock()
	n.pend[stateKey{id, rev}] = wireState{ID: id, Rev: rev, TS: ts, v: v}
	n.pendMu.Unlock()
}

// arbiterHandOff: the arbiter never stays leader; it hands leadership to
// a bridge node, journaling why when the old active is gone.
func (n *Node) arbiterHandOff(r *raft.Raft, st PairState) {
	var target *Member
	for i := range n.cfg.Members {
		m := &n.cfg.Members[i]
		if m.Role == RoleNode && m.ID != st.Active {
			target = m
		}
	}
	if st.Active != "" {
		// Prefer the old active if it is still a follower in good standing?
		// It is not: it lost leadership. Hand over to the other node.
		// From is the lost active (not the arbiter): the journal event
		// names who the role was taken from.
		if err := n.applyCmd(command{Op: "handover", Handover: &Handover{From: st.Active, To: target.ID, Reason: "arbiter",
			Detail: "active " + st.Active + " lost; arbiter elected and handed over", At: time.Now()}}); err != nil {
			n.log.Warn("arbiter handover entry", zap.Error(err))
		}
	}
	err := r.LeadershipTransferToServer(raft.ServerID(target.ID), raft.ServerAddress(target.Raft)).Error()
	if err != nil {
		n.log.Warn("arbiter: leadership transfer failed; trying any node", zap.Error(err))
		_ = r.LeadershipTransfer().Error()
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
	// Stop writing, let in-flight writes land, send the last state.
	n.gate.setOpen(false, 0)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	n.mirrorMu.Lock()
	m := n.mirror
	n.mirrorMu.Unlock()
	if m != nil {
		_ = m.WaitIdle(wctx)
	}
	cancel()
	n.flush(ctx)
	lw := time.Unix(0, n.lastWriteAt.Load())
	if err := n.applyCmd(command{Op: "handover", Handover: &Handover{From: n.cfg.ID, To: o.ID, Reason: reason, Detail: detail,
		LastWriteAt: lw, At: time.Now()}}); err != nil {
		n.gate.setOpen(true, n.epoch.Load())
		return err
	}
	if err := r.LeadershipTransferToServer(raft.ServerID(o.ID), raft.ServerAddress(o.Raft)).Error(); err != nil {
		// Withdraw the announcement, so that a later, unrelated election
		// is not journaled with this handover's reason.
		if cerr := n.applyCmd(command{Op: "handover"}); cerr != nil {
			n.log.Warn("withdrawing the handover entry", zap.Error(cerr))
		}
		n.gate.setOpen(true, n.epoch.Load())
		return fmt.Errorf("leadership transfer to %s: %w", o.ID, err)
	}
	n.demote("handed over to " + o.ID + " (" + reason + ")")
	return nil
}

// ForcePromote makes this node active when the pair has lost its quorum
// (two members, the other one gone): it rewrites the raft membership to
// this node alone (raft.RecoverCluster) and restarts raft. The other node
// is added back when it returns. Use only when the other node is really
// down: if it is alive and partitioned, both would think they are the
// pair.
func (n *Node) ForcePromote(ctx context.Context) error {
	if n.self.Role != RoleNode {
		return errors.New("an arbiter cannot be promoted")
	}
	r := n.raft()
	if r != nil && r.State() == raft.Leader {
		return n.handover(ctx, "", true, "forced", "switchover --force on the active")
	}
	if r != nil {
		if _, id := r.LeaderWithID(); id != "" {
			return fmt.Errorf("a leader (%s) exists: use a normal switchover", id)
		}
	}
	n.log.Warn("FORCED PROMOTION: rewriting the pair's membership to this node alone (the other member is assumed dead)")
	n.closeRaft()
	store, err := raftboltdb.NewBoltStore(filepath.Join(n.cfg.DataDir, "raft.db"))
	if err != nil {
		return err
	}
	snaps, err := raft.NewFileSnapshotStore(n.cfg.DataDir, 2, os.Stderr)
	if err != nil {
		store.Close()
		return err
	}
	trans, err := n.newTransport()
	if err != nil {
		store.Close()
		return err
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.ID), Address: raft.ServerAddress(n.self.Raft)}}}
	rc := n.raftConfig(nil)
	err = raft.RecoverCluster(rc, &fsm{}, store, store, snaps, trans, conf)
	trans.Close()
	store.Close()
	if err != nil {
		return fmt.Errorf("recover cluster: %w", err)
	}
	n.forced.Store(true)
	if err := n.openRaft(); err != nil {
		n.forced.Store(false)
		return err
	}
	n.wake()
	return nil
}

// rejoinPeers adds back, as voters, configured members the raft
// membership lost (after a forced promotion) once they answer again.
func (n *Node) rejoinPeers(r *raft.Raft) {
	f := r.GetConfiguration()
	if f.Error() != nil {
		return
	}
	in := map[raft.ServerID]bool{}
	for _, s := range f.Configuration().Servers {
		in[s.ID] = true
	}
	for _, m := range n.cfg.Members {
		if in[raft.ServerID(m.ID)] {
			continue
		}
		if m.Role == RoleNode {
			n.peerMu.Lock()
			alive := time.Since(n.peerSeen) < time.Second
			n.peerMu.Unlock()
			if !alive {
				continue
			}
		}
		n.log.Warn("adding member back to the pair", zap.String("member", m.ID))
		_ = r.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.Raft), 0, time.Second).Error()
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

// ApplyConfig validates a new mirror config and replicates it. Only the
// active accepts it; a standby returns a *NotActiveError naming the
// active. A config that does not validate is refused and nothing changes.
func (n *Node) ApplyConfig(ctx context.Context, yaml []byte, file string) (mapping.Delta, error) {
	cfg, err := mapping.ParseYAML(yaml, file)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return mapping.Delta{}, err
	}
	if n.self.Role != RoleNode || !n.active.Load() {
		return mapping.Delta{}, n.notActive()
	}
	var d mapping.Delta
	if old, err := parseConfig(n.fsm.State().Config); err == nil {
		d = mapping.Diff(old, cfg)
	}
	if err := n.applyCmd(command{Op: "config", Config: yaml, Hash: cfg.Hash()}); err != nil {
		return d, err
	}
	n.log.Info("mappings applied", zap.String("hash", cfg.Hash()[:12]), zap.String("delta", d.String()))
	return d, nil
}
