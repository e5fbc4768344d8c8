package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/pki"
	"github.com/uamirror/uamirror/redundancy"
)

// pairFlags are the flags shared by `node` and `arbiter`.
type pairFlags struct {
	id, data, admin, config string
	opcua                   string
	members, overrides      []string
	policy                  string
	faultDelay, cooldown    time.Duration
	heartbeat, lease        time.Duration
	maxSkew                 time.Duration
}

func newMemberCmd(a *app, role redundancy.Role) *cobra.Command {
	var f pairFlags
	cmd := &cobra.Command{
		Use:   string(role),
		Short: "Run a member of a redundant pair (" + string(role) + ")",
		Long: `A redundant pair is two bridge nodes (one active, one hot standby) and an
optional arbiter, each started with the same --member list:

  --member id=a,role=node,raft=10.0.0.1:7001,peer=10.0.0.1:7101,admin=10.0.0.1:7201
  --member id=b,role=node,raft=10.0.0.2:7001,peer=10.0.0.2:7101,admin=10.0.0.2:7201
  --member id=arb,role=arbiter,raft=10.0.0.3:7001,admin=10.0.0.3:7201

A node's --config seeds the pair's mirror config at first start; afterwards
the replicated config is used and a differing local file is reported.
With --opcua HOST:PORT the member also serves the pair's state on an OPC UA
endpoint of its own (ServiceLevel, ServerRedundancy, a Failover method; see
diagnostics/uaserver.go). With --admin-token-file that endpoint is secured
(Sign/SignAndEncrypt only, certificate in <data>/opcua; anonymous users may
read; Failover needs the user "operator" with the admin token as password);
without a token a non-loopback --opcua is refused unless --opcua-insecure.

With --tls-ca/--tls-cert/--tls-key (from 'uamirror pki init-pair') raft and
the peer link use mutual TLS and only members of the pair can connect, each
raft RPC bound to the member whose certificate sent it. Without them a
member refuses to start when any raft or peer address is not loopback,
unless --pair-insecure (logged at WARN on every start, shown in status); with
--admin-token-file (or TLS) the admin API wants credentials for commands
(README: "Securing the pair").

The member prints one line "<role> ready id=… admin=http://…" once serving
(followed by " opcua=opc.tcp://…" when --opcua is given).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMember(cmd.Context(), cmd, a, role, f)
		},
	}
	if role == redundancy.RoleNode {
		cmd.Long += "\n" + pkiNote
		addPKIFlag(cmd, "<--data>/pki")
	}
	fl := cmd.Flags()
	fl.StringVar(&f.id, "id", "", "this member's id (one of the --member ids)")
	fl.StringVar(&f.data, "data", "", "data directory (raft log and snapshots)")
	fl.StringVar(&f.admin, "admin", "", "admin API listen address (default: this member's admin=)")
	fl.StringVar(&f.opcua, "opcua", "", "serve the pair's state on an OPC UA endpoint at HOST:PORT (empty: off)")
	fl.StringArrayVar(&f.members, "member", nil, "a `member`: id=…,role=node|arbiter,raft=host:port,peer=host:port,admin=host:port (repeat)")
	if role == redundancy.RoleNode {
		fl.StringVarP(&f.config, "config", "c", "", "mirror config (YAML) that seeds the pair at first start")
		fl.StringArrayVar(&f.overrides, "server-endpoint", nil, "`NAME=URL`: this node reaches server NAME at URL (node-local; repeat)")
	}
	fl.StringVar(&f.policy, "policy", "any", "server monitor policy: any or all")
	fl.DurationVar(&f.faultDelay, "fault-delay", 2*time.Second, "a server must be failed this long before the monitor acts")
	fl.DurationVar(&f.cooldown, "cooldown", 30*time.Second, "no monitor-driven switchover within this long of the last one")
	fl.DurationVar(&f.heartbeat, "heartbeat", 500*time.Millisecond, "raft heartbeat and election timeout")
	fl.DurationVar(&f.lease, "lease", 0, "write lease (default 3/5 of --heartbeat; must be shorter)")
	fl.DurationVar(&f.maxSkew, "peer-max-skew", time.Minute, "a standby refuses streamed values whose timestamps are further than this in its future")
	addSecurityFlags(fl) // cmd_node_tls.go
	addOPCUAFlags(fl)    // cmd_node_opcua.go
	return cmd
}

// parseMember parses id=…,role=…,raft=…,peer=…,admin=….
func parseMember(s string) (redundancy.Member, error) {
	m := redundancy.Member{Role: redundancy.RoleNode}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return m, fmt.Errorf("--member %q: %q is not key=value", s, kv)
		}
		switch k {
		case "id":
			m.ID = v
		case "role":
			m.Role = redundancy.Role(v)
		case "raft":
			m.Raft = v
		case "peer":
			m.Peer = v
		case "admin":
			m.Admin = v
		default:
			return m, fmt.Errorf("--member %q: unknown key %q (want id, role, raft, peer, admin)", s, k)
		}
	}
	return m, nil
}

// abortSchedAllowance is what the pair's AbortBound adds to the bridge's
// own bound (bridge.LeaseAbortBound: the lease watcher's interval plus the
// close) for a loaded host, where the watcher goroutine waits for a core.
// Measured from lapse to reset: 6 ms at load average 25 on 2 cores.
const abortSchedAllowance = 75 * time.Millisecond

// memberConfig is the pair configuration from the flags. Its AbortBound
// (part of every new active's fence wait: how long after its lease lapsed
// an old active's Write may still land) is derived from what bounds it:
// the bridge's lease watcher, which resets the sockets with a Write in
// flight, and this host's neighbour queues, which a reset does not empty
// (neigh.go). The peer's host is taken to be set up like this one.
func memberConfig(f pairFlags) redundancy.Config {
	return redundancy.Config{ID: f.id, DataDir: f.data, Policy: redundancy.Policy(f.policy), FaultDelay: f.faultDelay,
		Cooldown: f.cooldown, HeartbeatTimeout: f.heartbeat, ElectionTimeout: f.heartbeat, Lease: f.lease, MaxClockSkew: f.maxSkew,
		AbortBound: max(bridge.LeaseAbortBound+abortSchedAllowance, neighQueueBound("/proc/sys/net"))}
}

func runMember(ctx context.Context, cmd *cobra.Command, a *app, role redundancy.Role, f pairFlags) error {
	cfg := memberConfig(f)
	for _, s := range f.members {
		m, err := parseMember(s)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		cfg.Members = append(cfg.Members, m)
	}
	var self *redundancy.Member
	for i := range cfg.Members {
		if cfg.Members[i].ID == f.id {
			self = &cfg.Members[i]
		}
	}
	if self == nil {
		return &exitError{code: 2, err: fmt.Errorf("--id %q is not one of the --member ids", f.id)}
	}
	if self.Role != role {
		return &exitError{code: 2, err: fmt.Errorf("member %s has role %s; start it with `uamirror %s`", f.id, self.Role, self.Role)}
	}
	sec, err := loadSecurity(a, cmd, cfg.Members)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	cfg.TLS = sec.pair
	cfg.PairInsecure = sec.pairInsecure
	// Every line a member logs carries node, role and epoch; role and
	// epoch are read when the line is written (see memberRole).
	mr := &memberRole{start: redundancy.PairStandby} // a node starts as standby (gate closed)
	if role == redundancy.RoleArbiter {
		mr.start = redundancy.PairArbiter
	}
	log := a.logger.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return diagnostics.RoleFields(c, mr.get)
	})).With(zap.String("node", f.id))
	// node is the pair member, set once redundancy.New returns (the
	// engine's server-switch hook journals into it).
	var node *redundancy.Node
	restoreStdLog, err := zap.RedirectStdLogAt(log.Named("gopcua"), zapcore.DebugLevel)
	if err != nil {
		return err
	}
	defer restoreStdLog()
	opts := redundancy.Options{Config: cfg, Logger: log, Version: softwareVersion(), MemberVersion: memberVersionProbe(sec)}
	if role == redundancy.RoleNode {
		if f.config != "" {
			b, err := os.ReadFile(f.config)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			c, err := mapping.ParseYAML(b, f.config)
			if err == nil {
				err = c.Validate()
			}
			if err != nil {
				printConfigErrors(cmd, err)
				return &exitError{code: 1, err: errBadConfig}
			}
			opts.InitialConfig = b
			for _, w := range c.Warnings() {
				log.Warn(w)
			}
		}
		overrides := map[string]string{}
		for _, o := range f.overrides {
			k, v, ok := strings.Cut(o, "=")
			if !ok {
				return &exitError{code: 2, err: fmt.Errorf("--server-endpoint %q: want NAME=URL", o)}
			}
			overrides[k] = v
		}
		// The store is opened whatever the config says: the replicated
		// config may turn security on later.
		defPKI := defaultPKIDir
		if f.data != "" {
			defPKI = filepath.Join(f.data, "pki")
		}
		pkiPath, _ := pkiDir(a, cmd, defPKI)
		store, err := openPKI(pkiPath, log)
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		opts.NewMirror = func(mc *mapping.Config, gate *redundancy.Gate, onWritten func(redundancy.FlowState)) (redundancy.Mirror, error) {
			mc = withEndpointOverrides(mc, overrides)
			report := func(s bridge.FlowState) { onWritten(redundancy.FlowState(s)) }
			e, err := bridge.New(bridge.Options{Config: mc, Gate: gate, Logger: log, OnWritten: report, Security: store,
				OnServerSwitch: func(ev bridge.ServerSwitch) {
					// NewMirror runs after redundancy.New returned: node is set.
					node.RecordServerSwitch(ev.Server, ev.From, ev.To, ev.Reason, ev.Gap, ev.At)
				}})
			if err != nil {
				return nil, err
			}
			return &mirrorAdapter{e: e, overrides: overrides}, nil
		}
		// An apply is refused before it is replicated when the engine
		// cannot be built from it (nothing is started).
		opts.CheckConfig = func(mc *mapping.Config) error {
			mc = withEndpointOverrides(mc, overrides)
			_, err := bridge.New(bridge.Options{Config: mc, Logger: zap.NewNop(), Security: store})
			return err
		}
	}
	node, err = redundancy.New(opts)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	adminAddr := f.admin
	if adminAddr == "" {
		adminAddr = self.Admin
	}
	if adminAddr == "" {
		adminAddr = "127.0.0.1:0"
	}
	if err := diagnostics.CheckAdminBind(adminAddr, sec.admin, sec.insecure); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("admin API on %s: %w", adminAddr, err)}
	}
	warnAdminSecurity(log, adminAddr, sec)
	ln, err := net.Listen("tcp", adminAddr)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("admin API on %s: %w", adminAddr, err)}
	}
	adminScheme := "http"
	if sec.adminTLS != nil {
		ln, adminScheme = tls.NewListener(ln, sec.adminTLS), "https"
	}
	// The member's components run as one group (group.go): the first to
	// return stops the others; runMember returns after all have returned.
	g := newGroup(ctx)
	defer g.cancel() // also on the early returns below
	mr.node.Store(node)
	// The engine is asked for on every request: the node rebuilds it when
	// the pair's config changes.
	engine := func() diagnostics.Engine {
		if m, ok := node.Mirror().(*mirrorAdapter); ok && m != nil {
			return m.e
		}
		return nil
	}
	admin := diagnostics.NewAdmin(node, engine, log)
	admin.SetAuth(sec.admin)
	var drills *redundancy.DrillJournal
	if role == redundancy.RoleNode {
		drills = &redundancy.DrillJournal{} // cmd_drill.go reports to it
		admin.SetDrills(drills)
	}
	var ready strings.Builder
	fmt.Fprintf(&ready, "%s ready id=%s admin=%s://%s", role, f.id, adminScheme, ln.Addr())
	if f.opcua != "" {
		ucfg, err := opcuaConfig(a, cmd, f, sec, log) // cmd_node_opcua.go
		if err != nil {
			_ = ln.Close()
			return &exitError{code: 2, err: err}
		}
		ucfg.Pair, ucfg.Engine, ucfg.Logger = uaPairFor(node, sec), engine, log
		ucfg.Drills = drills
		if ucfg.Security != nil {
			// Failover authenticates its caller: the node itself, forwarding
			// to the active with the node's admin credentials.
			ucfg.Pair, ucfg.Forward = node, sec.admin
		}
		uas, err := diagnostics.NewUAServer(ucfg)
		if errors.Is(err, diagnostics.ErrUAInsecure) {
			_ = ln.Close()
			return &exitError{code: 2, err: fmt.Errorf("--opcua %s: %w: give --admin-token-file (the OPC UA user %q with the token as password may call Failover) or --opcua-insecure", f.opcua, err, opcuaOperator)}
		}
		if err == nil {
			err = uas.Start(g.ctx)
		}
		if err != nil {
			_ = ln.Close()
			return &exitError{code: 1, err: fmt.Errorf("--opcua %s: %w", f.opcua, err)}
		}
		fmt.Fprintf(&ready, " opcua=%s", uas.Endpoint())
		g.add("OPC UA endpoint", uas.Run)
	}
	g.add("pair node", node.Run) // raft, the peer link and the engine
	if drills != nil {
		g.add("drill schedule", newDrillScheduler(node, drills, log).run) // drill_schedule.go
	}
	g.add("admin API", func(ctx context.Context) error { return admin.Serve(ctx, ln) })
	fmt.Fprintln(cmd.OutOrStdout(), ready.String())
	return g.wait()
}

// warnAdminSecurity logs, at every start, an admin API left open on
// purpose (--admin-insecure off loopback) or a bearer token sent over
// plain http.
func warnAdminSecurity(log *zap.Logger, addr string, sec memberSecurity) {
	if sec.insecure && diagnostics.CheckAdminBind(addr, diagnostics.AdminAuth{}, false) != nil {
		log.Warn("ADMIN API INSECURE (--admin-insecure): served without authentication on a non-loopback address", zap.String("admin", addr))
	}
	if len(sec.admin.Token) > 0 && sec.adminTLS == nil {
		log.Warn("the admin API's bearer token travels over plain http: give --admin-tls-cert/--admin-tls-key (or --tls-cert)", zap.String("admin", addr))
	}
}

// TargetType is the type of the values a mapping's flow writes: its
// target's type as this node's engine read it, else (a target of any
// type) the type of the value it last produced or was told
// (redundancy.TargetTyper). The standby refuses streamed values of
// another type; one that cannot read its sources still takes them.
func (m *mirrorAdapter) TargetType(id string, reverse bool) (ua.TypeID, bool) {
	if t, ok := m.e.TargetType(id, reverse); ok {
		return t, true
	}
	for _, st := range m.e.Mapping(id) {
		if st.Reverse != reverse {
			continue
		}
		switch {
		case st.Value != nil:
			return st.Value.Type(), true
		case st.Written != nil:
			return st.Written.Type(), true
		}
	}
	return 0, false
}

// withEndpointOverrides returns a copy of mc in which the named servers
// use node-local endpoints.
func withEndpointOverrides(mc *mapping.Config, o map[string]string) *mapping.Config {
	if len(o) == 0 {
		return mc
	}
	c := *mc
	c.Servers = append([]mapping.Server(nil), mc.Servers...)
	for i := range c.Servers {
		if url, ok := o[c.Servers[i].Name]; ok {
			c.Servers[i].Endpoints = []string{url}
		}
	}
	return &c
}

// The pair's gate is the engine's write fence: LeaseValid is part of
// bridge.Gate, so a rename on either side fails to compile here.
var _ bridge.Gate = (*redundancy.Gate)(nil)

// mirrorAdapter presents the engine as a redundancy.Mirror (and a
// redundancy.LiveApplier). A flow's state crosses as a struct conversion
// (bridge.FlowState ↔ redundancy.FlowState): a field added on one side
// only fails to compile here. overrides are the node-local endpoints of
// named servers, applied to every config it runs.
type mirrorAdapter struct {
	e         *bridge.Engine
	overrides map[string]string
}

// ApplyLive implements redundancy.LiveApplier: the engine changes only
// what differs. A change it cannot make live, or a config it cannot
// build, changed nothing (applied false).
func (m *mirrorAdapter) ApplyLive(ctx context.Context, mc *mapping.Config) (bool, error) {
	err := m.e.ApplyLive(ctx, withEndpointOverrides(mc, m.overrides))
	if errors.Is(err, bridge.ErrNotLive) || errors.Is(err, bridge.ErrConfig) {
		return false, err
	}
	return true, err
}

var _ redundancy.LiveApplier = (*mirrorAdapter)(nil)

func (m *mirrorAdapter) Run(ctx context.Context) error      { return m.e.Run(ctx) }
func (m *mirrorAdapter) Observe(s redundancy.FlowState)     { m.e.Observe(bridge.FlowState(s)) }
func (m *mirrorAdapter) WaitIdle(ctx context.Context) error { return m.e.WaitIdle(ctx) }

// AbortInFlight implements redundancy.Aborter: the engine resets every
// session with a Write unanswered (RST, unsent bytes dropped), then the
// aborted requests settle.
func (m *mirrorAdapter) AbortInFlight(ctx context.Context) error {
	m.e.AbortWrites()
	return m.e.WaitIdle(ctx)
}

var _ redundancy.Aborter = (*mirrorAdapter)(nil)

// Health: a server is up while its session is connected; the node is
// ready when every session is up and no mapping is pending or quarantined.
func (m *mirrorAdapter) Health() redundancy.Health {
	st := m.e.Stats()
	h := redundancy.Health{Ready: true}
	var down []string
	for _, s := range st.Servers {
		up := s.State == bridge.Connected
		h.Servers = append(h.Servers, redundancy.ServerHealth{Name: s.Name, Up: up, ServiceLevel: s.ServiceLevel, Endpoint: s.Endpoint})
		if !up {
			down = append(down, s.Name)
		}
	}
	h.Warnings = certWarnings(st, time.Now())
	switch {
	case len(down) > 0:
		h.Ready, h.Reason = false, "sessions down: "+strings.Join(down, ",")
	case st.States[bridge.StatePending] > 0:
		h.Ready, h.Reason = false, fmt.Sprintf("%d mappings not yet resolved", st.States[bridge.StatePending])
	case st.States[bridge.StateQuarantined] > 0:
		h.Ready, h.Reason = false, fmt.Sprintf("%d mappings quarantined", st.States[bridge.StateQuarantined])
	}
	return h
}

// certWarnings names the certificates in use (own, each server's) that
// are expired, not yet valid or expire within pki.ExpiryWarning.
func certWarnings(st bridge.Stats, now time.Time) []string {
	var out []string
	warn := func(what string, c *bridge.CertInfo) {
		if c == nil {
			return
		}
		if mark := pki.ExpiryMark(c.NotBefore, c.NotAfter, now); mark != "" {
			out = append(out, fmt.Sprintf("%s certificate %s (%s): %s, not after %s",
				what, c.Thumbprint, c.Subject, mark, c.NotAfter.UTC().Format(time.DateOnly)))
		}
	}
	warn("own", st.OwnCertificate)
	for _, s := range st.Servers {
		warn("server "+s.Name, s.Certificate)
	}
	return out
}

// memberRole is the RoleFunc of a member's logger. The logger exists
// before the node (the node logs through it), so the node arrives later;
// until then the lines carry the role the member starts in.
type memberRole struct {
	node  atomic.Pointer[redundancy.Node]
	start redundancy.PairRole
}

func (m *memberRole) get() (string, uint64) {
	if n := m.node.Load(); n != nil {
		r, epoch := n.Role() // from atomics: cheap enough for every line
		return string(r), epoch
	}
	return string(m.start), 0
}
