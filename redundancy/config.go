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
	// TLS, when set, puts the raft transport and the peer link under
	// mutual TLS: only members whose certificates the verifier accepts
	// can connect. nil: plain TCP.
	TLS *PairTLS
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
	// ErrNoQuorum: the pair has no leader.
	ErrNoQuorum = errors.New("no quorum: no active node")
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
	return c
}

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
	if c.Lease >= c.HeartbeatTimeout {
		bad("lease %s must be shorter than the heartbeat timeout %s (fencing)", c.Lease, c.HeartbeatTimeout)
	}
	return errors.Join(errs...)
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
