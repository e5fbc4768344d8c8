package redundancy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/mapping"
)

// ErrConfigRefused is wrapped by ApplyConfig's error when the new config
// validates but the mirror cannot be built from it (a node id that does
// not parse, a server it cannot use, …): nothing changed on either node.
var ErrConfigRefused = errors.New("config refused: the mirror cannot be built from it")

// DefaultStandbyApplyWait bounds how long the active keeps running the old
// config after a new one was replicated, waiting for the standby to
// report the new config's hash READY. After it the active applies anyway
// and says so in its log and Status (ConfigNote).
const DefaultStandbyApplyWait = 20 * time.Second

// refusedRetry is how often a node retries building a replicated config
// it could not build (the old mirror keeps running meanwhile).
const refusedRetry = 5 * time.Second

// ApplyOptions are the operator's choices for one apply.
type ApplyOptions struct {
	// Confirm allows an apply that removes every mapping, or more than
	// MaxRemoveShare of them (mapping.CheckRemoval).
	Confirm bool
	// MaxRemoveShare is the share of the running mappings an apply may
	// remove without Confirm (0: mapping.DefaultMaxRemoveShare).
	MaxRemoveShare float64
}

// ApplyConfig is ApplyConfigWith without options: an apply that removes
// all or more than half of the running mappings is refused.
func (n *Node) ApplyConfig(ctx context.Context, yaml []byte, file string) (mapping.Delta, error) {
	return n.ApplyConfigWith(ctx, yaml, file, ApplyOptions{})
}

// ApplyConfigWith validates a new mirror config, builds the mirror from
// it as a check (nothing is started) and replicates it. Only the active
// accepts it; a standby returns a *NotActiveError naming the active. A
// config that does not validate, that removes too many mappings without
// o.Confirm (an error wrapping mapping.ErrLargeRemoval) or that the mirror
// cannot be built from (ErrConfigRefused) is refused and nothing changes
// on either node. Once replicated, the standby switches first and the
// active follows when the standby reports the new config READY (or after
// Options.StandbyApplyWait).
func (n *Node) ApplyConfigWith(ctx context.Context, yaml []byte, file string, o ApplyOptions) (mapping.Delta, error) {
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
	if err := n.checkConfigChange(); err != nil { // version.go: not while the other node runs an older release
		return mapping.Delta{}, err
	}
	var d mapping.Delta
	old, oerr := parseConfig(n.fsm.State().Config)
	if oerr == nil {
		d = mapping.Diff(old, cfg)
		if !o.Confirm {
			if err := mapping.CheckRemoval(old, cfg, o.MaxRemoveShare); err != nil {
				return d, fmt.Errorf("%w; nothing changed (confirm with --confirm)", err)
			}
		}
	}
	if err := n.checkBuild(cfg); err != nil {
		return d, fmt.Errorf("%w: %w; nothing changed, the running config stays on both nodes", ErrConfigRefused, err)
	}
	if err := n.applyCmd(command{Op: "config", Config: yaml, Hash: cfg.Hash()}); err != nil {
		return d, err
	}
	n.log.Info("mappings applied", zap.String("hash", cfg.Hash()[:12]), zap.String("delta", d.String()))
	return d, nil
}

// checkBuild builds the mirror for cfg without starting it: with
// Options.CheckConfig when set, else not at all (the control loop still
// builds before it swaps).
func (n *Node) checkBuild(cfg *mapping.Config) error {
	if n.opts.CheckConfig == nil {
		return nil
	}
	return n.opts.CheckConfig(cfg)
}

// mirrorRun is a mirror the control loop runs, behind its own held gate
// (gatehold.go).
type mirrorRun struct {
	m    Mirror
	gate *Gate
	hash string
	cfg  *mapping.Config
	// since is when it started (for a mirror warming up).
	since time.Time
	stop  context.CancelFunc
	done  chan struct{}
}

// halt stops the mirror, waits for its Run to return and drops its gate.
// A nil run does nothing.
func (r *mirrorRun) halt() {
	if r != nil {
		r.stop()
		<-r.done
		r.gate.drop()
	}
}

// applyState is the control loop's memory of config changes; only the
// control loop touches it.
type applyState struct {
	// waitHash/waitSince: the active waits for the standby to run
	// waitHash READY before it swaps.
	waitHash  string
	waitSince time.Time
	// failedHash/failedAt: a config this node could not build (the old
	// mirror keeps running); retried every refusedRetry.
	failedHash string
	failedAt   time.Time
	// next is the new config's mirror warming up behind a held gate
	// while the old one runs (nil: none).
	next *mirrorRun
	// live is a live change of the running mirror under way (nil: none);
	// notLive is the last config hash the running mirror could not take
	// live (it is then rebuilt: the warm swap).
	live    *liveRun
	notLive string
}

// liveRun is one LiveApplier.ApplyLive under way, in a goroutine owned by
// the node's run group; done closes when it returned (applied, err).
type liveRun struct {
	hash    string
	cfg     *mapping.Config
	since   time.Time
	done    chan struct{}
	applied bool
	err     error
}

// startLive starts changing run's mirror to cfg (hash h) in place. The
// standby-first order is the caller's: on the active it is called only
// once the standby runs h READY.
func (n *Node) startLive(ctx context.Context, wg *sync.WaitGroup, la LiveApplier, h string, cfg *mapping.Config) {
	lr := &liveRun{hash: h, cfg: cfg, since: time.Now(), done: make(chan struct{})}
	n.ap.live = lr
	lctx, cancel := context.WithTimeout(ctx, n.applyWait())
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(lr.done)
		defer cancel()
		lr.applied, lr.err = la.ApplyLive(lctx, cfg)
	}()
	n.log.Info("applying the new config live", zap.String("config_hash", h[:12]), zap.Int("mappings", len(cfg.Mappings)))
}

// liveEnded takes the outcome of the live change lr (done) into run: the
// mirror now runs lr's config, or could not take it live (the next round
// rebuilds it).
func (n *Node) liveEnded(run *mirrorRun, lr *liveRun) {
	n.ap.live = nil
	if !lr.applied {
		n.ap.notLive = lr.hash
		n.log.Info("the new config cannot be applied live: rebuilding the mirror beside the running one",
			zap.String("config_hash", lr.hash[:12]), zap.Error(lr.err))
		return
	}
	if lr.err != nil {
		n.log.Warn("config applied live; not every server had confirmed it", zap.String("config_hash", lr.hash[:12]), zap.Error(lr.err))
	}
	if n.ap.failedHash != "" {
		n.configNote.Store(nil)
	}
	n.ap.failedHash, n.ap.waitHash = "", ""
	run.hash, run.cfg = lr.hash, lr.cfg
	h := lr.hash
	n.activeCfg.Store(&h)
	n.log.Info("config applied live", zap.String("config_hash", h[:12]), zap.Int("mappings", len(lr.cfg.Mappings)),
		zap.Duration("took", time.Since(lr.since)))
}

// followConfig makes the mirror run the replicated config st, and
// returns the mirror now running. Called by the control loop only, on
// every round; it never blocks for long.
//
//   - A running mirror that is a LiveApplier is changed in place first
//     (startLive): only what differs changes, the untouched mappings keep
//     their sessions, items and targets. What it cannot take live
//     changes nothing and falls back to the warm swap below.
//   - The new mirror is built first; if that fails the old one keeps
//     running, and the failure is reported and retried every refusedRetry.
//   - On the active, only once the standby reports the new config READY
//     (standbyWent).
//   - The new mirror starts behind a held gate beside the old one, which
//     keeps writing (and keeps a standby READY) while the new one brings
//     its sessions and subscriptions up. Once it reports Health.Ready (or
//     after the apply wait, reported) the old one's gate is held, its
//     Writes in flight land or are aborted (quiesce), the new one's gate
//     is released and the old one stops: writers never overlap, and the
//     untouched mappings pause only for the new mirror's reconcile.
func (n *Node) followConfig(ctx context.Context, wg *sync.WaitGroup, st PairState, run *mirrorRun) *mirrorRun {
	if st.ConfigHash == "" {
		return run
	}
	h := st.ConfigHash
	if next := n.ap.next; next != nil && next.hash != h {
		next.halt() // superseded by a newer config
		n.ap.next = nil
	}
	if lr := n.ap.live; lr != nil {
		select {
		case <-lr.done:
			n.liveEnded(run, lr)
		default:
			return run // under way (a newer config waits for it)
		}
	}
	cur := n.activeCfg.Load()
	if cur != nil && *cur == h {
		n.ap.waitHash = ""
		return run
	}
	if next := n.ap.next; next != nil {
		return n.maybeSwap(ctx, run, next)
	}
	if n.ap.failedHash == h && time.Since(n.ap.failedAt) < refusedRetry {
		return run
	}
	if run != nil && n.active.Load() && !n.standbyWent(h) {
		return run
	}
	cfg, err := parseConfig(st.Config)
	if err == nil {
		n.reportLocalDiff(cfg)
		if la, ok := mirrorOf(run).(LiveApplier); ok && n.ap.notLive != h {
			// Only what differs changes; the rest of the mirror runs on
			// untouched. A change it cannot make live changes nothing and
			// is rebuilt below on the next round.
			n.startLive(ctx, wg, la, h, cfg)
			return run
		}
		g := n.gate.heldChild()
		var m Mirror
		if m, err = n.opts.NewMirror(cfg, g, n.onWritten); err == nil {
			if n.ap.failedHash != "" {
				n.configNote.Store(nil) // the build failure is over
			}
			n.ap.failedHash, n.ap.waitHash = "", ""
			mctx, cancel := context.WithCancel(ctx)
			next := &mirrorRun{m: m, gate: g, hash: h, cfg: cfg, since: time.Now(), stop: cancel, done: make(chan struct{})}
			done := next.done
			wg.Add(1)
			go func() { defer wg.Done(); defer close(done); _ = m.Run(mctx) }()
			if run == nil {
				return n.swapTo(next)
			}
			n.ap.next = next
			n.log.Info("new mirror warming up beside the running one", zap.String("config_hash", h[:12]),
				zap.Int("mappings", len(cfg.Mappings)))
			return run
		}
		g.drop()
	}
	if n.ap.failedHash != h {
		what := "the previous config keeps running"
		if run == nil {
			what = "no mirror runs"
		}
		note := fmt.Sprintf("config %.12s cannot be built on %s: %v; %s (retried every %s)", h, n.cfg.ID, err, what, refusedRetry)
		n.configNote.Store(&note)
		n.log.Error("cannot build the mirror for the replicated config", zap.String("config_hash", h[:12]), zap.Error(err))
	}
	n.ap.failedHash, n.ap.failedAt = h, time.Now()
	return run
}

// mirrorOf returns run's mirror (nil for no run).
func mirrorOf(run *mirrorRun) Mirror {
	if run == nil {
		return nil
	}
	return run.m
}

// maybeSwap swaps from run to next once next is READY (or the apply
// wait passed, reported).
func (n *Node) maybeSwap(ctx context.Context, run, next *mirrorRun) *mirrorRun {
	waited := time.Since(next.since)
	if !next.m.Health().Ready {
		if waited < n.applyWait() {
			return run
		}
		note := fmt.Sprintf("the new mirror of config %.12s was not READY after %s on %s: swapped to it anyway", next.hash, n.applyWait(), n.cfg.ID)
		n.configNote.Store(&note)
		n.log.Warn(note)
	}
	n.ap.next = nil
	start := time.Now()
	// The old mirror stops writing; what it has in flight lands or is
	// aborted before the new one may write.
	run.gate.setHeld(true)
	quiet := n.quiesce(ctx) == nil
	if !quiet {
		n.log.Warn("config swap: the old mirror's Writes could not be confirmed idle; stopping it before the new one writes")
		run.halt()
	}
	swapped := n.swapTo(next)
	if quiet {
		run.halt()
	}
	n.log.Info("config swapped", zap.String("config_hash", next.hash[:12]), zap.Duration("warm_up", waited),
		zap.Duration("swap", time.Since(start)))
	return swapped
}

// swapTo makes next the node's mirror and lets it write.
func (n *Node) swapTo(next *mirrorRun) *mirrorRun {
	n.mirrorMu.Lock()
	n.mirror = next.m
	n.mirrorMu.Unlock()
	h := next.hash
	n.activeCfg.Store(&h)
	next.gate.setHeld(false)
	n.log.Info("mirror running", zap.String("config_hash", h[:12]), zap.Int("mappings", len(next.cfg.Mappings)))
	return next
}

// applyWait is how long the active waits for the standby, and a new
// mirror for READY, before going on anyway.
func (n *Node) applyWait() time.Duration {
	if n.opts.StandbyApplyWait > 0 {
		return n.opts.StandbyApplyWait
	}
	return DefaultStandbyApplyWait
}

// standbyWent reports whether the active may swap to config hash h: the
// standby reports h READY, no standby is in contact (nothing to wait
// for), or StandbyApplyWait passed (reported).
func (n *Node) standbyWent(h string) bool {
	now := time.Now()
	if n.ap.waitHash != h {
		n.ap.waitHash, n.ap.waitSince = h, now
	}
	n.peerMu.Lock()
	fresh := now.Sub(n.peerSeen) < time.Second
	ready := n.peerReady && n.peerReadyHash == h
	n.peerMu.Unlock()
	waited := now.Sub(n.ap.waitSince)
	limit := n.applyWait()
	switch {
	case !fresh && waited > n.cfg.SyncInterval*3:
		// Give a just-replicated config one sync round to be seen; a
		// standby not in contact cannot go first.
		n.log.Warn("applying the new config on the active: no standby in contact to apply it first", zap.String("config_hash", h[:12]))
		return true
	case ready:
		n.log.Info("standby READY on the new config: the active applies it", zap.String("config_hash", h[:12]),
			zap.Duration("standby_took", waited))
		return true
	case waited > limit:
		note := fmt.Sprintf("the standby did not report config %.12s READY within %s: the active applied it anyway", h, limit)
		n.configNote.Store(&note)
		n.log.Warn(note)
		return true
	}
	return false
}
