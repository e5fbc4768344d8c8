package redundancy

// Version negotiation between the members of a pair, for a rolling
// upgrade (docs/UPGRADE.md): members of two consecutive releases run
// side by side while one is upgraded after the other.
//
// Each bridge node announces its software version and the range of pair
// protocols it speaks on every peer link message (both ways); the arbiter
// is asked through Options.MemberVersion. A member that announces nothing
// is a release from before the negotiation (v0.1.0) and speaks protocol
// LegacyProtocol. The pair runs at the lowest protocol of its members:
// a raft command or a replicated state record that an older member does
// not know is proposed only when every member announced a protocol that
// has it. A member whose window does not overlap the other's is refused
// on the peer link, with both versions named, and never becomes READY.
// A raft command this build cannot apply stops the member (Run returns
// ErrProtocolTooNew): applying the rest of the log without it would
// leave its state silently behind the other members'.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The pair protocol: the peer link's messages, the raft commands and the
// replicated state (PairState).
const (
	// ProtocolVersion is the newest pair protocol this build speaks.
	//   1 — v0.1.0: no announcement; ops config, promote, handover, gap.
	//   2 — members announce versions; the "versions" record (the pair's
	//       negotiated protocol and each member's version, replicated).
	ProtocolVersion = 2
	// MinProtocolVersion is the oldest protocol this build runs beside:
	// the compatibility window is the previous release (N−1).
	MinProtocolVersion = 1
	// LegacyProtocol is the protocol of a member that announces no
	// version (a release from before the negotiation, v0.1.0).
	LegacyProtocol = 1
)

// protocolVersionsRecord is the first protocol that knows the
// "versions" raft command.
const protocolVersionsRecord = 2

// ErrVersionWindow: a member's protocol window and this member's do not
// overlap; it cannot join (the message names both versions).
var ErrVersionWindow = errors.New("pair protocol versions incompatible")

// ErrProtocolTooNew: the raft log holds a command (or the state a
// record) that this build cannot apply; the member stops.
var ErrProtocolTooNew = errors.New("pair state written by a newer protocol")

// VersionInfo is what a member announces about itself.
type VersionInfo struct {
	// Version is the software version ("v0.2.0", "dev", …).
	Version string `json:"version"`
	// Protocol is the newest pair protocol the member speaks.
	Protocol int `json:"protocol"`
	// MinProtocol is the oldest pair protocol it runs beside.
	MinProtocol int `json:"min_protocol"`
}

// legacyVersion is what a member that announces nothing runs.
var legacyVersion = VersionInfo{Version: "v0.1.0 or older (announces no version)", Protocol: LegacyProtocol, MinProtocol: LegacyProtocol}

// Local returns the announcement of this build with software version v.
func Local(v string) VersionInfo {
	return VersionInfo{Version: v, Protocol: ProtocolVersion, MinProtocol: MinProtocolVersion}
}

// orLegacy returns vi, or the legacy announcement when vi announces no
// protocol (a peer link message of a release before the negotiation).
func (vi VersionInfo) orLegacy() VersionInfo {
	if vi.Protocol == 0 {
		return legacyVersion
	}
	if vi.MinProtocol == 0 || vi.MinProtocol > vi.Protocol {
		vi.MinProtocol = vi.Protocol
	}
	return vi
}

// String is "v0.2.0 (protocol 1–2)".
func (vi VersionInfo) String() string {
	if vi.MinProtocol == vi.Protocol {
		return fmt.Sprintf("%s (protocol %d)", vi.Version, vi.Protocol)
	}
	return fmt.Sprintf("%s (protocol %d–%d)", vi.Version, vi.MinProtocol, vi.Protocol)
}

// Compatible checks that the members announcing a (this one) and b
// (member id) can run in one pair: their protocol windows overlap. The
// error names both versions and wraps ErrVersionWindow.
func Compatible(a VersionInfo, id string, b VersionInfo) error {
	a, b = a.orLegacy(), b.orLegacy()
	if b.Protocol < a.MinProtocol {
		return fmt.Errorf("%w: member %s runs %s, older than this member's window (this member runs %s): upgrade %s first, at most one release at a time",
			ErrVersionWindow, id, b, a, id)
	}
	if b.MinProtocol > a.Protocol {
		return fmt.Errorf("%w: member %s runs %s, which needs a newer protocol than this member's %s: upgrade this member (or run %s's previous release)",
			ErrVersionWindow, id, b, a, id)
	}
	return nil
}

// MemberVersion is one member's announced version as known to a node.
type MemberVersion struct {
	ID string `json:"id"`
	VersionInfo
	// Source says how it is known: "self", "peer link", "admin API",
	// "recorded" (the replicated record) or "unknown" (not heard yet:
	// counted as LegacyProtocol).
	Source string `json:"source"`
}

// pairProtocol is the protocol the pair runs at: the lowest newest
// protocol of all members; a member not heard from counts as legacy.
func pairProtocol(vs []MemberVersion) int {
	p := ProtocolVersion
	for _, v := range vs {
		vi := v.VersionInfo.orLegacy()
		if v.Source == "unknown" {
			vi = legacyVersion
		}
		p = min(p, vi.Protocol)
	}
	return p
}

// needs returns the protocol a command needs of every member.
func (c command) needs() int {
	switch c.Op {
	case "config", "promote", "handover", "gap":
		return LegacyProtocol
	case "versions":
		return protocolVersionsRecord
	}
	return 0 // unknown
}

// versions is a node's knowledge of the members' versions. Safe for
// concurrent use.
type versions struct {
	self string
	mu   sync.Mutex
	m    map[string]MemberVersion
	// refused is why the other node cannot join ("" when it can).
	refused string
}

func newVersions(self string, local VersionInfo, members []Member) *versions {
	v := &versions{self: self, m: map[string]MemberVersion{}}
	for _, m := range members {
		v.m[m.ID] = MemberVersion{ID: m.ID, Source: "unknown"}
	}
	v.m[self] = MemberVersion{ID: self, VersionInfo: local, Source: "self"}
	return v
}

// heard records what member id announced on the peer link (nil:
// nothing, a legacy member) and returns the compatibility verdict and
// whether it changed.
func (v *versions) heard(id string, ann *VersionInfo, source string) (changed bool, err error) {
	var vi VersionInfo
	if ann != nil {
		vi = *ann
	}
	vi = vi.orLegacy()
	v.mu.Lock()
	defer v.mu.Unlock()
	prev := v.m[id]
	v.m[id] = MemberVersion{ID: id, VersionInfo: vi, Source: source}
	err = Compatible(v.m[v.self].VersionInfo, id, vi)
	was := v.refused
	if err != nil {
		v.refused = err.Error()
	} else {
		v.refused = ""
	}
	return was != v.refused || prev.VersionInfo != vi, err
}

// peerHeard records the other node's announcement from the peer link
// and logs a change (an upgrade of the other node, or a refusal).
func (n *Node) peerHeard(id string, ann *VersionInfo) error {
	changed, err := n.vers.heard(id, ann, "peer link")
	if changed {
		if err != nil {
			n.log.Error("the other node cannot join this pair: versions incompatible", zap.String("peer", id), zap.Error(err))
		} else {
			n.log.Info("the other node's version", zap.String("peer", id), zap.Stringer("version", n.vers.get(id).VersionInfo),
				zap.Int("pair_protocol", n.PairProtocol()))
		}
	}
	return err
}

// local returns this member's announcement.
func (v *versions) local() VersionInfo {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.m[v.self].VersionInfo
}

// list returns every member's version, by id.
func (v *versions) list() []MemberVersion {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]MemberVersion, 0, len(v.m))
	for _, mv := range v.m {
		out = append(out, mv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// set records a member's version (the arbiter's, from its admin API).
func (v *versions) set(mv MemberVersion) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.m[mv.ID] = mv
}

// get returns member id's version.
func (v *versions) get(id string) MemberVersion {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.m[id]
}

// refusal returns why the other node cannot join ("" when it can).
func (v *versions) refusal() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.refused
}

// PairProtocol returns the pair protocol the pair runs at, as far as
// this node knows: the lowest of its members'. A member it has not heard
// from counts as LegacyProtocol, unless the replicated versions record
// names it (an arbiter hears from nobody directly; a node whose probe of
// the arbiter fails knows it from the record).
func (n *Node) PairProtocol() int {
	return pairProtocol(n.memberVersions(n.fsm.State()))
}

// memberVersions returns every member's version as this node knows it:
// heard directly, else as the replicated record has it.
func (n *Node) memberVersions(st PairState) []MemberVersion {
	vs := n.vers.list()
	for i, v := range vs {
		if v.Source != "unknown" {
			continue
		}
		for _, r := range st.Versions {
			if r.ID == v.ID {
				vs[i] = MemberVersion{ID: v.ID, VersionInfo: r.VersionInfo, Source: "recorded"}
			}
		}
	}
	return vs
}

// versionProbeInterval is how often the active asks the members without
// a peer link (the arbiter) for their version.
const versionProbeInterval = 2 * time.Second

// versionLoop, on a bridge node, asks the arbiter(s) for their version
// (Options.MemberVersion) and, while this node is active and every
// member speaks protocol 2 or newer, keeps the replicated "versions"
// record up to date. It returns when ctx is done.
func (n *Node) versionLoop(ctx context.Context) {
	t := time.NewTicker(versionProbeInterval / 4)
	defer t.Stop()
	var lastProbe time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(lastProbe) >= versionProbeInterval {
			lastProbe = time.Now()
			n.probeVersions(ctx)
		}
		if n.active.Load() {
			n.recordVersions()
		}
	}
}

// probeVersions asks each arbiter for its version. Without
// Options.MemberVersion (a pair in one test process, one build) the
// arbiter is taken to run this build.
func (n *Node) probeVersions(ctx context.Context) {
	for _, m := range n.cfg.Members {
		if m.Role != RoleArbiter {
			continue
		}
		if n.opts.MemberVersion == nil {
			n.vers.set(MemberVersion{ID: m.ID, VersionInfo: n.vers.local(), Source: "assumed (same build)"})
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		vi, err := n.opts.MemberVersion(pctx, m)
		cancel()
		if err != nil {
			n.log.Debug("member version probe failed", zap.String("member", m.ID), zap.Error(err))
			continue
		}
		if err := Compatible(n.vers.local(), m.ID, vi); err != nil {
			n.log.Error("member outside the compatibility window", zap.String("member", m.ID), zap.Error(err))
		}
		n.vers.set(MemberVersion{ID: m.ID, VersionInfo: vi.orLegacy(), Source: "admin API"})
	}
}

// recordVersions proposes the "versions" record when every member speaks
// a protocol that has it and the recorded one differs from what is
// known now. Called by the active only.
func (n *Node) recordVersions() {
	vs := n.vers.list()
	p := pairProtocol(vs)
	if p < protocolVersionsRecord {
		return
	}
	st := n.fsm.State()
	if st.Protocol == p && sameVersions(st.Versions, vs) {
		return
	}
	c := command{Op: "versions", Need: protocolVersionsRecord, Protocol: p, Versions: vs}
	if err := n.applyCmd(c); err != nil {
		n.log.Warn("recording the members' versions", zap.Error(err))
		return
	}
	n.log.Info("pair protocol recorded", zap.Int("protocol", p), zap.Any("versions", vs))
}

func sameVersions(a, b []MemberVersion) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].VersionInfo != b[i].VersionInfo {
			return false
		}
	}
	return true
}

// haltOn is the fsm's halt: the member stops (Run returns err).
func (n *Node) haltOn(err error) {
	if !n.haltErr.CompareAndSwap(nil, &err) {
		return
	}
	n.gate.setOpen(false, 0)
	n.log.Error("STOPPING: this member cannot follow the pair's state", zap.Error(err))
	close(n.halted)
}

// ErrMixedVersions: a change an older member might not follow was
// refused while the pair runs mixed versions.
var ErrMixedVersions = errors.New("the pair runs mixed versions")

// checkConfigChange refuses a mirror config change while the other
// bridge node is known to run an older release: its strict parser may
// not know a key this release takes, and a node whose config does not
// parse runs no mirror and is never READY. The arbiter never parses the
// mirror config and does not count.
func (n *Node) checkConfigChange() error {
	o := n.other()
	if o == nil {
		return nil
	}
	v := n.vers.get(o.ID)
	if v.Source == "unknown" || v.Protocol >= ProtocolVersion {
		return nil
	}
	return fmt.Errorf("%w: node %s runs %s, this node %s; it may not parse a config this release writes: "+
		"finish the upgrade (docs/UPGRADE.md), then apply the mappings", ErrMixedVersions, o.ID, v.VersionInfo, n.vers.local())
}
