// Package redundancy runs uamirror as a redundant pair: two bridge nodes
// (one active, one hot standby) and an optional arbiter, each its own
// process. The pair's replicated state — members, the mirror config, the
// active node and its epoch, the switchover journal — lives in
// hashicorp/raft with a bolt store in each node's data directory. The
// active is the raft leader among the bridge nodes; it writes only while
// it holds a lease confirmed by a quorum (VerifyLeader), so a node that
// lost the quorum stops writing before another can be elected. The
// active streams its per-mapping last-written state to the standby over
// the peer link and receives the standby's health in return.
//
// The package never imports the mirror engine: it drives it through the
// Mirror interface, and its Gate has the shape the engine asks for.
package redundancy

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Role of a member.
type Role string

// Member roles.
const (
	// RoleNode mirrors: it can be active or standby.
	RoleNode Role = "node"
	// RoleArbiter only votes; it never mirrors and never stays leader.
	RoleArbiter Role = "arbiter"
)

// PairRole is what a member is in the pair right now: a node is active
// or standby, an arbiter is an arbiter. Its string ("active", "standby",
// "arbiter") is what Status carries in JSON, metrics and log lines.
type PairRole string

// Pair roles.
const (
	// PairActive: the node that writes (it holds the lease).
	PairActive PairRole = "active"
	// PairStandby: a node that mirrors into nothing, ready to take over.
	PairStandby PairRole = "standby"
	// PairArbiter: the arbiter (it never mirrors).
	PairArbiter PairRole = "arbiter"
)

// Member is one member of the pair.
type Member struct {
	ID   string
	Role Role
	// Raft is the raft transport address (host:port).
	Raft string
	// Peer is the peer link address (host:port; HTTP): state stream and
	// health. Empty for an arbiter.
	Peer string
	// Admin is the admin API address (host:port), used to forward
	// requests to the active. May be empty.
	Admin string
}

// Policy is the server monitor's handover rule.
type Policy string

// Server monitor policies.
const (
	// PolicyAny hands over when any server connected to the active failed.
	PolicyAny Policy = "any"
	// PolicyAll hands over only when all servers failed.
	PolicyAll Policy = "all"
)

// Config is one member's configuration.
type Config struct {
	// ID is this member's id; it must appear in Members.
	ID string
	// DataDir holds the raft log, stable store and snapshots.
	DataDir string
	// Members lists every member, this one included.
	Members []Member
	// Policy of the server monitor (default any).
	Policy Policy
	// FaultDelay: a server must be failed this long before it counts
	// (default 2s).
	FaultDelay time.Duration
	// Cooldown: no monitor-driven handover within this long after a
	// switchover (default 30s).
	Cooldown time.Duration
	// Lease: how long a quorum confirmation lets the active write. It
	// must be shorter than HeartbeatTimeout (default 300ms).
	Lease time.Duration
	// HeartbeatTimeout and ElectionTimeout of raft (default 500ms).
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// SyncInterval is the period of the active → standby state stream
	// (default 50ms).
	SyncInterval time.Duration
	// AbortBound is how long after its lease lapses an old active may
	// still take to have closed, abortively, every session with a Write
	// in flight (the engine's lease watcher polls every 20 ms and closes
	// with RST; default 100ms). See FenceWait.
	AbortBound time.Duration
	// IdleWait bounds a planned handover's wait for the Writes in flight
	// to be answered; after it they are aborted (Aborter) or the handover
	// is withdrawn (default 2s).
	IdleWait time.Duration
	// FenceMargin is added to the fence wait for clock-rate differences
	// and scheduling delay (default 50ms). See FenceWait.
	FenceMargin time.Duration
	// TLS, when set, puts the raft transport and the peer link under
	// mutual TLS: only members whose certificates the verifier accepts
	// can connect. nil: plain TCP, which Validate accepts only when
	// every member's raft and peer address is loopback, or with
	// PairInsecure.
	TLS *PairTLS
	// PairInsecure allows plain TCP on non-loopback raft and peer
	// addresses (anyone who reaches them can take the pair over). Logged
	// at WARN on every start and shown in Status.
	PairInsecure bool
	// MaxClockSkew: a value on the peer link whose source timestamp is
	// further than this in the future of the standby's clock is refused
	// (default 1m).
	MaxClockSkew time.Duration
}

// Sentinel errors.
var (
	// ErrNotActive: the request needs the active node.
	ErrNotActive = errors.New("not the active node")
	// ErrStandbyNotReady: a switchover was asked while the standby is not
	// READY (use force).
	ErrStandbyNotReady = errors.New("standby not ready")
	// ErrInvalidConfig wraps configuration problems.
	ErrInvalidConfig = errors.New("invalid pair config")
	// ErrPairUnprotected: raft or the peer link would listen or connect
	// on a non-loopback address without mutual TLS.
	ErrPairUnprotected = errors.New("the pair's raft and peer ports would be open to the network without mutual TLS")
	// ErrNoQuorum: the pair has no leader.
	ErrNoQuorum = errors.New("no quorum: no active node")
	// ErrQuorumReachable: a forced promotion was refused because another
	// voter answers (a quorum may be reachable, or hold an active).
	ErrQuorumReachable = errors.New("a quorum may be reachable: --force is only for a lone survivor")
	// ErrHandoverWithdrawn: a planned handover was given up before
	// leadership moved because a Write could still be in flight.
	ErrHandoverWithdrawn = errors.New("handover withdrawn")
)

// WithDefaults returns c with zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	if c.Policy == "" {
		c.Policy = PolicyAny
	}
	if c.FaultDelay == 0 {
		c.FaultDelay = 2 * time.Second
	}
	if c.Cooldown == 0 {
		c.Cooldown = 30 * time.Second
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = 500 * time.Millisecond
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = 500 * time.Millisecond
	}
	if c.Lease == 0 {
		c.Lease = c.HeartbeatTimeout * 3 / 5
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = 50 * time.Millisecond
	}
	if c.AbortBound == 0 {
		c.AbortBound = 100 * time.Millisecond
	}
	if c.IdleWait == 0 {
		c.IdleWait = 2 * time.Second
	}
	if c.FenceMargin == 0 {
		c.FenceMargin = 50 * time.Millisecond
	}
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = time.Minute
	}
	return c
}

// FenceWait is how long a node that won the active role without a planned
// handover waits, counted from the moment it saw itself elected, before its
// first write: Lease + AbortBound + FenceMargin (450 ms with the defaults).
//
// Why it is enough: the old active writes only under a lease that starts
// when it sends a VerifyLeader and that a quorum then confirms. Every
// member that voted for the new leader moved to the new term before the
// election was won and answers no RPC of the old term after that; any
// quorum of the old active's shares one of those voters, so its last
// confirmed lease started before the win and ends before win + Lease.
// The old active's lease watcher then closes every session with a Write
// in flight within AbortBound (RST: unsent bytes are dropped, nothing can
// land later). FenceMargin covers the rest. A planned handover, where the
// old active closed its gate and waited until no Write was in flight (or
// aborted those) before it handed over, needs no wait.
func (c Config) FenceWait() time.Duration { return c.Lease + c.AbortBound + c.FenceMargin }

// Validate checks the fields against each other.
func (c Config) Validate() error {
	var errs []error
	bad := func(f string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+f, append([]any{ErrInvalidConfig}, a...)...))
	}
	if c.ID == "" {
		bad("id is empty")
	}
	if c.DataDir == "" {
		bad("data dir is empty")
	}
	seen := map[string]bool{}
	self := false
	nodes := 0
	for _, m := range c.Members {
		if m.ID == "" || seen[m.ID] {
			bad("member id %q empty or duplicate", m.ID)
		}
		seen[m.ID] = true
		if m.ID == c.ID {
			self = true
		}
		if m.Raft == "" {
			bad("member %s: raft address is empty", m.ID)
		}
		switch m.Role {
		case RoleNode:
			nodes++
			if m.Peer == "" {
				bad("member %s: peer address is empty", m.ID)
			}
		case RoleArbiter:
		default:
			bad("member %s: role %q (want node or arbiter)", m.ID, m.Role)
		}
	}
	if !self {
		bad("this member %q is not in the member list", c.ID)
	}
	if nodes != 2 {
		bad("a pair needs exactly 2 members with role node, has %d", nodes)
	}
	if c.Policy != PolicyAny && c.Policy != PolicyAll {
		bad("policy %q (want any or all)", c.Policy)
	}
	if c.TLS != nil && (c.TLS.Verifier == nil || c.TLS.Cert.PrivateKey == nil) {
		bad("tls: a certificate with its key and a verifier are both needed")
	}
	if c.AbortBound < 0 || c.FenceMargin < 0 {
		bad("abort bound %s and fence margin %s must not be negative", c.AbortBound, c.FenceMargin)
	}
	if c.TLS == nil && !c.PairInsecure {
		if open := c.nonLoopback(); len(open) > 0 {
			errs = append(errs, fmt.Errorf("%w: %w: %s; give the pair's mutual TLS (--tls-ca/--tls-pin, --tls-cert, --tls-key; "+
				"`uamirror pki init-pair` makes them) or, at your own risk, --pair-insecure", ErrInvalidConfig, ErrPairUnprotected, strings.Join(open, ", ")))
		}
	}
	if c.MaxClockSkew < 0 {
		bad("max clock skew %s is negative", c.MaxClockSkew)
	}
	if c.Lease >= c.HeartbeatTimeout {
		bad("lease %s must be shorter than the heartbeat timeout %s (fencing)", c.Lease, c.HeartbeatTimeout)
	}
	return errors.Join(errs...)
}

// nonLoopback lists the members' raft and peer addresses that are not
// loopback ("member a raft 10.0.0.1:7001"). A host name other than
// localhost, or an empty host (all interfaces), counts as not loopback.
func (c Config) nonLoopback() []string {
	var out []string
	for _, m := range c.Members {
		for _, a := range [][2]string{{"raft", m.Raft}, {"peer", m.Peer}} {
			if a[1] != "" && !isLoopback(a[1]) {
				out = append(out, fmt.Sprintf("member %s %s %s", m.ID, a[0], a[1]))
			}
		}
	}
	return out
}

func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// securityMode describes how the pair's raft and peer link are protected
// (Status.PairSecurity).
func (c Config) securityMode() string {
	switch {
	case c.TLS != nil:
		return "mutual TLS"
	case len(c.nonLoopback()) > 0:
		return "INSECURE: plain TCP on non-loopback addresses (--pair-insecure): anyone who reaches the raft or peer port can take the pair over"
	default:
		return "plain TCP on loopback only"
	}
}

// member returns the member with id, or nil.
func (c *Config) member(id string) *Member {
	for i := range c.Members {
		if c.Members[i].ID == id {
			return &c.Members[i]
		}
	}
	return nil
}
