package redundancy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/mapping"
)

// Bounds of the peer link. A sync request's body may hold every flow of
// the config once: perFlowSyncBytes each plus syncBodySlack, and never
// less than minSyncBody (a value may be a large array); the active
// splits its stream into requests of half that. One request is
// processed at a time (the only sender is the active); others are
// answered 429 at once.
const (
	perFlowSyncBytes = 4 << 10
	syncBodySlack    = 64 << 10
	minSyncBody      = 4 << 20
	// peerReadTimeout bounds reading a request, body included: a slow
	// body is cut off after it.
	peerReadTimeout  = 5 * time.Second
	peerWriteTimeout = 5 * time.Second
	peerIdleTimeout  = 30 * time.Second
	peerMaxHeader    = 16 << 10
)

// TargetTyper is an optional capability of a Mirror: the OPC UA type of
// the value a mapping's flow writes (its target's type), as far as the
// mirror knows it. The standby refuses a value on the peer link whose
// type differs. Safe for concurrent use.
type TargetTyper interface {
	TargetType(mappingID string, reverse bool) (t ua.TypeID, known bool)
}

// wireState is one mapping flow's last written value on the peer link,
// with the source's status at its timestamp (FlowState).
type wireState struct {
	ID  string    `json:"id"`
	Rev bool      `json:"rev,omitempty"`
	TS  time.Time `json:"ts"`
	V   string    `json:"v"` // OPC UA binary Variant, base64
	// Status is the source's status code at TS (0: Good). Absent from a
	// previous release's active, which streams no status (decoded as
	// nil: unknown, the standby's own subscription decides); an older
	// standby ignores it (protocol 2 needs no bump for it: docs/UPGRADE.md).
	Status *uint32 `json:"status,omitempty"`
	v      *ua.Variant
	status ua.StatusCode // the active's, until flush sets Status
}

// syncRequest is what the active sends the standby every SyncInterval.
type syncRequest struct {
	From        string      `json:"from"`
	Epoch       uint64      `json:"epoch"`
	ConfigHash  string      `json:"config_hash"`
	LastWriteAt time.Time   `json:"last_write_at"`
	States      []wireState `json:"states,omitempty"`
	// Member is the sender's version (protocol 2; absent from a v0.1.0
	// member, which speaks LegacyProtocol).
	Member *VersionInfo `json:"member_version,omitempty"`
}

// syncResponse is the standby's answer: its health and readiness.
type syncResponse struct {
	Node string `json:"node"`
	// Rejected counts the values of the request the standby refused
	// (Error says why the first one was).
	Rejected   int    `json:"rejected,omitempty"`
	Health     Health `json:"health"`
	Ready      bool   `json:"ready"`
	ConfigHash string `json:"config_hash"`
	Error      string `json:"error,omitempty"`
	// Member is the standby's version (protocol 2; see syncRequest).
	Member *VersionInfo `json:"member_version,omitempty"`
}

type peerMemberKey struct{}

// servePeer starts the peer link's HTTP server on this member's peer
// address. The caller closes it.
func (n *Node) servePeer(ctx context.Context) (*http.Server, error) {
	ln, err := net.Listen("tcp", n.self.Peer)
	if err != nil {
		return nil, fmt.Errorf("peer link on %s: %w", n.self.Peer, err)
	}
	var cfg *tls.Config
	if n.cfg.TLS != nil {
		cfg = n.cfg.TLS.ServerConfig()
	}
	pl := newPairListener(ln, cfg, "peer link", n.refusals.add)
	if n.cfg.TLS != nil {
		pl.verify = n.cfg.TLS.Verifier.Verify
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /peer/v1/sync", n.handleSync)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 2 * time.Second, ReadTimeout: peerReadTimeout,
		WriteTimeout: peerWriteTimeout, IdleTimeout: peerIdleTimeout, MaxHeaderBytes: peerMaxHeader,
		ErrorLog:    zap.NewStdLog(n.log.Named("peer").WithOptions(zap.IncreaseLevel(zap.WarnLevel))),
		BaseContext: func(net.Listener) context.Context { return ctx },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, peerMemberKey{}, memberOf(c))
		}}
	go func() { _ = srv.Serve(pl.start()) }() // ends when the caller closes srv
	return srv, nil
}

// syncBodyLimit is the largest sync request body for the pair's config.
func (n *Node) syncBodyLimit(st PairState) int64 {
	if c := n.bodyLimit.Load(); c != nil && c.hash == st.ConfigHash {
		return c.limit
	}
	flows := 0
	if cfg, err := parseConfig(st.Config); err == nil {
		for _, m := range cfg.Mappings {
			flows++
			if m.Direction == mapping.Both {
				flows++
			}
		}
	}
	limit := max(int64(minSyncBody), syncBodySlack+int64(flows)*perFlowSyncBytes)
	n.bodyLimit.Store(&bodyLimit{hash: st.ConfigHash, limit: limit})
	return limit
}

// bodyLimit caches syncBodyLimit per config.
type bodyLimit struct {
	hash  string
	limit int64
}

// handleSync applies the active's state stream (as standby) and answers
// with this node's health. It takes only what the active of the current
// epoch sends, and of that only values of the mapping's target type whose
// timestamps are not further than MaxClockSkew in the future and whose
// status (if sent) has a defined severity; each goes to the mirror with
// the source's status (FlowState.StatusKnown false: none was sent).
func (n *Node) handleSync(w http.ResponseWriter, req *http.Request) {
	var sr syncRequest
	sender, ok := n.peerSender(req)
	if !ok {
		writeJSON(w, http.StatusForbidden, syncResponse{Node: n.cfg.ID, Error: "peer link: client certificate names no member"})
		return
	}
	if o := n.other(); sender != "" && (o == nil || sender != o.ID) {
		// A member that is not the other bridge node (the arbiter):
		// refused on its certificate alone, before the one sync slot is
		// taken, so that it is refused (and journaled) even while the
		// active's stream is in, and cannot hold that stream off.
		err := fmt.Errorf("sync with the certificate of member %q (only the other node streams)", sender)
		n.refusals.add("peer link", remoteAddr(req.RemoteAddr), err)
		writeJSON(w, http.StatusForbidden, syncResponse{Node: n.cfg.ID, Error: "peer link: " + err.Error()})
		return
	}
	select {
	case n.syncSem <- struct{}{}:
		defer func() { <-n.syncSem }()
	default:
		writeJSON(w, http.StatusTooManyRequests, syncResponse{Node: n.cfg.ID, Error: "peer link: a sync request is being processed"})
		return
	}
	st := n.fsm.State()
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, n.syncBodyLimit(st)))
	err := dec.Decode(&sr)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF { // the whole body: no trailing data
			err = errors.New("trailing data after the request")
		}
	}
	if err != nil {
		code := http.StatusBadRequest
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			code = http.StatusRequestEntityTooLarge
			n.refusals.add("peer link", remoteAddr(req.RemoteAddr), fmt.Errorf("sync request larger than %d bytes", mbe.Limit))
		}
		writeJSON(w, code, syncResponse{Node: n.cfg.ID, Error: "bad sync request: " + err.Error()})
		return
	}
	if sender != "" && sr.From != sender {
		// The other node's certificate used to speak for another member.
		err := fmt.Errorf("sync sent as member %q with the certificate of member %q (only the other node streams)", sr.From, sender)
		n.refusals.add("peer link", remoteAddr(req.RemoteAddr), err)
		writeJSON(w, http.StatusForbidden, syncResponse{Node: n.cfg.ID, Error: "peer link: " + err.Error()})
		return
	}
	local := n.vers.local()
	if o := n.other(); o != nil && sr.From == o.ID {
		if err := n.peerHeard(o.ID, sr.Member); err != nil {
			writeJSON(w, http.StatusConflict, syncResponse{Node: n.cfg.ID, Member: &local, Error: "peer link: " + err.Error()})
			if !n.active.Load() {
				// Only the active streams: this member is the one joining
				// a pair it cannot follow, and refuses to (the active
				// carries on and sees this standby not READY).
				n.haltOn(fmt.Errorf("refusing to join the pair: %w", err))
			}
			return
		}
	}
	st = n.fsm.State()
	if n.active.Load() || sr.Epoch != st.Epoch || sr.From != st.Active {
		// Not the active of the current epoch (a stale active, one from an
		// epoch this node has not applied yet, or we are active): refuse.
		writeJSON(w, http.StatusConflict, syncResponse{Node: n.cfg.ID, Member: &local,
			Error: fmt.Sprintf("sync from %s epoch %d refused: the pair's active is %q at epoch %d", sr.From, sr.Epoch, st.Active, st.Epoch)})
		return
	}
	n.mirrorMu.Lock()
	m := n.mirror
	n.mirrorMu.Unlock()
	resp := syncResponse{Node: n.cfg.ID, ConfigHash: st.ConfigHash, Member: &local}
	horizon := time.Now().Add(n.cfg.MaxClockSkew)
	if m != nil {
		typer, _ := m.(TargetTyper)
		for _, s := range sr.States {
			st, err := n.checkState(s, typer, horizon)
			if err != nil {
				if resp.Rejected == 0 {
					resp.Error = err.Error()
				}
				resp.Rejected++
				if !errors.Is(err, errTypeUnknown) {
					n.refusals.add("peer link", remoteAddr(req.RemoteAddr), err)
				}
				continue
			}
			m.Observe(st)
		}
	}
	lastWrite := sr.LastWriteAt
	if lastWrite.After(horizon) {
		lastWrite = time.Time{}
	}
	n.peerMu.Lock()
	n.peerSeen = time.Now()
	n.peerLastWrite = lastWrite
	n.peerHash = sr.ConfigHash
	n.peerMu.Unlock()
	if m != nil {
		resp.Health = m.Health()
		cur := n.activeCfg.Load()
		resp.Ready = resp.Health.Ready && cur != nil && *cur == sr.ConfigHash
	}
	writeJSON(w, http.StatusOK, resp)
}

// errTypeUnknown: the standby does not know the flow's target type yet
// (no value seen); the value is refused without a security event.
var errTypeUnknown = errors.New("target type not known yet")

// ErrPeerValueRefused marks a value on the peer link the standby refused.
var ErrPeerValueRefused = errors.New("peer link value refused")

// checkState decodes one streamed value and checks it.
func (n *Node) checkState(s wireState, typer TargetTyper, horizon time.Time) (FlowState, error) {
	refuse := func(kind, format string, a ...any) error {
		return &refusal{kind: kind, detail: "mapping " + s.ID + ": " + fmt.Sprintf(format, a...), sentinel: ErrPeerValueRefused}
	}
	v, err := decodeVariant(s.V)
	if err != nil {
		return FlowState{}, refuse("peer link value undecodable", "%v", err)
	}
	if s.TS.After(horizon) {
		return FlowState{}, refuse("peer link value from the future", "timestamp %s is more than %s in the future",
			s.TS.UTC().Format(time.RFC3339Nano), n.cfg.MaxClockSkew)
	}
	if s.Status != nil && *s.Status>>30 == 3 {
		// Part 4, 7.34.1: severity 11 is reserved.
		return FlowState{}, refuse("peer link status invalid", "status code 0x%08X has the reserved severity 11", *s.Status)
	}
	if typer != nil {
		want, known := typer.TargetType(s.ID, s.Rev)
		if !known {
			return FlowState{}, fmt.Errorf("%w: mapping %s: %w", ErrPeerValueRefused, s.ID, errTypeUnknown)
		}
		if v.Type() != want {
			return FlowState{}, refuse("peer link value of another type", "value of type %s, the mapping's target takes %s", typeName(v.Type()), typeName(want))
		}
	}
	st := FlowState{MappingID: s.ID, Reverse: s.Rev, Value: v, SourceTS: s.TS}
	if s.Status != nil {
		st.Status, st.StatusKnown = ua.StatusCode(*s.Status), true
	}
	return st, nil
}

func typeName(t ua.TypeID) string { return strings.TrimPrefix(t.String(), "TypeID") }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func encodeVariant(v *ua.Variant) (string, error) {
	b, err := v.Encode()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// decodeVariant decodes a value from the peer link. gopcua's decoder
// panics on some malformed input (a negative array length, found by
// FuzzDecodeVariant): a bad peer message must not take the node down, so
// a panic becomes an error.
func decodeVariant(s string) (v *ua.Variant, err error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("malformed value: %v", p)
		}
	}()
	v = new(ua.Variant)
	if _, err := v.Decode(b); err != nil {
		return nil, err
	}
	return v, nil
}

// syncLoop streams coalesced written state to the other node while this
// node is active, and on a standby keeps the peer's liveness fresh.
func (n *Node) syncLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n.active.Load() {
			n.flush(ctx)
		}
	}
}

// peerSender returns the member id the request's connection was
// authenticated as ("" without TLS). ok is false when TLS is on and the
// connection names no member (the listener refuses those before HTTP, so
// this is a second line).
func (n *Node) peerSender(req *http.Request) (id string, ok bool) {
	if n.cfg.TLS == nil {
		return "", true
	}
	id, _ = req.Context().Value(peerMemberKey{}).(string)
	return id, id != ""
}

func remoteAddr(s string) net.Addr { return stringAddr(s) }

// flush sends the pending states to the other node and records its
// answer, in requests of at most half the standby's body limit. States
// that could not be sent are kept (newer ones win).
func (n *Node) flush(ctx context.Context) {
	o := n.other()
	if o == nil {
		return
	}
	n.pendMu.Lock()
	pend := n.pend
	n.pend = make(map[stateKey]wireState, len(pend))
	n.pendMu.Unlock()
	st := n.fsm.State()
	budget := n.syncBodyLimit(st) / 2
	var batch []wireState
	size := int64(0)
	var err error
	sent := map[stateKey]bool{}
	requests := 0
	send := func() {
		requests++
		if err == nil {
			if err = n.sendSync(ctx, o, st, batch); err == nil {
				for _, s := range batch {
					sent[stateKey{s.ID, s.Rev}] = true
				}
			}
		}
		batch, size = batch[:0], 0
	}
	for _, s := range pend {
		enc, eerr := encodeVariant(s.v)
		if eerr != nil {
			sent[stateKey{s.ID, s.Rev}] = true // never sendable
			continue
		}
		s.V = enc
		code := uint32(s.status)
		s.Status = &code
		sz := int64(len(s.V) + len(s.ID) + 128)
		if sz > budget {
			n.log.Error("value too large for the peer link; not streamed", zap.String("mapping", s.ID), zap.Int64("bytes", sz))
			sent[stateKey{s.ID, s.Rev}] = true
			continue
		}
		if size+sz > budget {
			send()
		}
		batch = append(batch, s)
		size += sz
	}
	if len(batch) > 0 || requests == 0 { // an empty sync keeps the link's liveness fresh
		send()
	}
	if err == nil {
		return
	}
	// Not delivered: put the states back unless newer ones arrived.
	n.pendMu.Lock()
	for k, s := range pend {
		if sent[k] {
			continue
		}
		if cur, ok := n.pend[k]; !ok || cur.TS.Before(s.TS) {
			n.pend[k] = s
		}
	}
	n.pendMu.Unlock()
	n.log.Debug("peer sync failed", zap.String("peer", o.ID), zap.Error(err))
}

// sendSync sends one sync request and records the answer.
func (n *Node) sendSync(ctx context.Context, o *Member, st PairState, states []wireState) error {
	local := n.vers.local()
	sr := syncRequest{From: n.cfg.ID, Epoch: n.epoch.Load(), ConfigHash: st.ConfigHash, States: states, Member: &local}
	if lw := n.lastWriteAt.Load(); lw != 0 {
		sr.LastWriteAt = time.Unix(0, lw)
	}
	body, _ := json.Marshal(sr)
	rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	scheme := "http://"
	if n.cfg.TLS != nil {
		scheme = "https://"
	}
	req, _ := http.NewRequestWithContext(rctx, http.MethodPost, scheme+o.Peer+"/peer/v1/sync", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := n.peerClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var resp syncResponse
	err = json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&resp)
	if err == nil && resp.Node == o.ID {
		if verr := n.peerHeard(o.ID, resp.Member); verr != nil {
			n.peerMu.Lock()
			n.peerReady = false
			n.peerMu.Unlock()
			return verr
		}
	}
	if err == nil && res.StatusCode != http.StatusOK {
		err = errors.New(resp.Error)
	}
	if err != nil {
		return err
	}
	if resp.Rejected > 0 {
		n.log.Debug("standby refused streamed values", zap.Int("rejected", resp.Rejected), zap.String("first", resp.Error))
	}
	n.peerMu.Lock()
	n.peerHealth, n.peerReady, n.peerSeen = resp.Health, resp.Ready, time.Now()
	n.peerReadyHash = sr.ConfigHash
	n.peerMu.Unlock()
	return nil
}

// MemberStatus is one member as seen from this node.
type MemberStatus struct {
	ID    string `json:"id"`
	Role  Role   `json:"role"`
	Raft  string `json:"raft"`
	Admin string `json:"admin,omitempty"`
	// Link: up when this node heard from it recently (peer link for the
	// other bridge node, raft membership and leader contact otherwise).
	Link string `json:"link"`
	// Version is the member's announced version and pair protocols
	// (Source "unknown": not heard yet).
	Version MemberVersion `json:"version"`
}

// Status is a node's view of the pair.
type Status struct {
	Node         string         `json:"node"`
	Role         PairRole       `json:"role"` // active, standby, arbiter
	Epoch        uint64         `json:"epoch"`
	Active       string         `json:"active"`
	Leader       string         `json:"leader"`
	RaftState    string         `json:"raft_state"`
	Members      []MemberStatus `json:"members"`
	Policy       Policy         `json:"policy"`
	Ready        bool           `json:"ready"` // this node: active and writing, or standby and READY
	StandbyReady bool           `json:"standby_ready"`
	ConfigHash   string         `json:"config_hash"`
	LocalDiff    string         `json:"local_config_diff,omitempty"`
	// ConfigNote reports a config change that did not go as asked: a
	// replicated config this node cannot build (the old one keeps
	// running), or a standby that did not apply first in time.
	ConfigNote string  `json:"config_note,omitempty"`
	Health     *Health `json:"health,omitempty"`
	PeerHealth *Health `json:"peer_health,omitempty"`
	// NotReady says why Ready is false ("" when it is true).
	NotReady string `json:"not_ready,omitempty"`
	// DataDir is the data directory's problem, if it does not take
	// writes ("" when it does).
	DataDir string `json:"data_dir_problem,omitempty"`
	// PairSecurity says how raft and the peer link are protected
	// ("mutual TLS", "plain TCP on loopback only", or INSECURE…).
	PairSecurity string `json:"pair_security"`
	// Version is this member's version and the pair protocols it speaks.
	Version VersionInfo `json:"version"`
	// PairProtocol is the protocol the pair runs at as this node knows
	// it: the lowest of its members' (version.go).
	PairProtocol int `json:"pair_protocol"`
	// RecordedProtocol and RecordedVersions are the replicated "versions"
	// record (0 and none while a member of protocol 1 is in the pair).
	RecordedProtocol int             `json:"recorded_protocol,omitempty"`
	RecordedVersions []MemberVersion `json:"recorded_versions,omitempty"`
	// VersionProblem says why the other node cannot join ("" when it can).
	VersionProblem string `json:"version_problem,omitempty"`
}

// Status returns this node's view of the pair.
func (n *Node) Status() Status {
	st := n.fsm.State()
	s := Status{Node: n.cfg.ID, Epoch: st.Epoch, Active: st.Active, Policy: n.cfg.Policy, ConfigHash: st.ConfigHash,
		PairSecurity: n.cfg.securityMode(), Version: n.vers.local(), PairProtocol: pairProtocol(n.memberVersions(st)),
		RecordedProtocol: st.Protocol, RecordedVersions: st.Versions, VersionProblem: n.vers.refusal()}
	r := n.raft()
	if r != nil {
		s.RaftState = r.State().String()
		_, id := r.LeaderWithID()
		s.Leader = string(id)
	}
	switch {
	case n.self.Role == RoleArbiter:
		s.Role = PairArbiter
	case n.active.Load():
		s.Role = PairActive
	default:
		s.Role = PairStandby
	}
	if d := n.localDiff.Load(); d != nil {
		s.LocalDiff = *d
	}
	if d := n.configNote.Load(); d != nil {
		s.ConfigNote = *d
	}
	n.mirrorMu.Lock()
	m := n.mirror
	n.mirrorMu.Unlock()
	if m != nil {
		h := m.Health()
		s.Health = &h
	}
	n.peerMu.Lock()
	peerFresh := time.Since(n.peerSeen) < time.Second
	if n.active.Load() && peerFresh {
		ph := n.peerHealth
		s.PeerHealth = &ph
		s.StandbyReady = n.peerReady
	}
	activeHash := n.peerHash
	n.peerMu.Unlock()
	s.DataDir = n.dataDirProblem()
	switch s.Role {
	case PairActive:
		_, ok := n.gate.Permit()
		s.Ready = ok
		if !ok {
			s.NotReady = "no write lease (the pair's quorum is not confirmed)"
		}
	case PairStandby:
		cur := n.activeCfg.Load()
		switch {
		case s.DataDir != "":
			s.NotReady = s.DataDir
		case s.VersionProblem != "":
			s.NotReady = s.VersionProblem
		case s.Health == nil:
			s.NotReady = "no mirror running (no config applied yet)"
		case !s.Health.Ready:
			s.NotReady = s.Health.Reason
			if s.NotReady == "" {
				s.NotReady = "mirror not ready"
			}
		case !peerFresh:
			s.NotReady = "no recent sync from the active on the peer link"
		case cur == nil || *cur != activeHash:
			s.NotReady = "running a config other than the active's (replication behind)"
		}
		s.Ready = s.NotReady == ""
		s.StandbyReady = s.Ready
	case PairArbiter:
		s.Ready = r != nil && s.Leader != ""
		if !s.Ready {
			s.NotReady = "no leader known"
		}
	}
	var lastContact time.Time
	if r != nil {
		lastContact = r.LastContact()
	}
	known := n.memberVersions(st)
	for _, m := range n.cfg.Members {
		ms := MemberStatus{ID: m.ID, Role: m.Role, Raft: m.Raft, Admin: m.Admin, Link: "down"}
		for _, v := range known {
			if v.ID == m.ID {
				ms.Version = v
			}
		}
		switch {
		case m.ID == n.cfg.ID:
			ms.Link = "self"
		case m.Role == RoleNode && peerFresh:
			ms.Link = "up"
		case r != nil && r.State() == raft.Leader:
			// The leader hears from every voter that acknowledges it.
			ms.Link = "unknown"
		case m.ID == s.Leader && time.Since(lastContact) < 2*n.cfg.HeartbeatTimeout:
			ms.Link = "up"
		}
		s.Members = append(s.Members, ms)
	}
	return s
}

// Events returns the switchover journal, oldest first.
func (n *Node) Events() []Event { return n.fsm.State().Journal }

// Config returns the pair's replicated mirror config (YAML, as applied)
// and its hash; empty before a config was applied.
func (n *Node) Config() (yaml []byte, hash string) {
	st := n.fsm.State()
	return st.Config, st.ConfigHash
}

// SecurityEvents returns the connections this node refused (TLS), oldest
// first, rate-limited per remote host (see refusals.go). They are local
// to this node, not replicated.
func (n *Node) SecurityEvents() []Event { return n.refusals.list() }

// RecordRefusal journals a refusal by another part of this member (the
// admin API) beside the pair's own, under the same rate limit. reason
// must not contain secrets.
func (n *Node) RecordRefusal(source, remote, reason string) {
	n.refusals.add(source, stringAddr(remote), errors.New(reason))
}

// RecordServerSwitch journals a change of the member in use of a
// redundant OPC UA server set seen by this node's engine, in the local
// list merged into /api/v1/events (Kind ServerSwitchKind). Safe for
// concurrent use; it never blocks on anything but a mutex.
func (n *Node) RecordServerSwitch(server, from, to, reason string, gap time.Duration, at time.Time) {
	ev := Event{Time: at, Kind: ServerSwitchKind, From: from, To: to, Reason: reason, Detail: "server " + server}
	if from != "" && to != "" {
		ms := float64(gap) / float64(time.Millisecond)
		ev.GapMS = &ms
	}
	if to == "" {
		ev.To = "none (values held)"
	}
	n.refusals.addSwitch(ev)
}

// Mirror returns the running mirror (nil before the config arrived).
func (n *Node) Mirror() Mirror {
	n.mirrorMu.Lock()
	defer n.mirrorMu.Unlock()
	return n.mirror
}

// Role returns this member's role (active, standby or arbiter) and the
// epoch it knows, from atomics: cheap enough for every log line.
func (n *Node) Role() (PairRole, uint64) {
	switch {
	case n.self.Role == RoleArbiter:
		return PairArbiter, n.fsm.epoch()
	case n.active.Load():
		return PairActive, n.epoch.Load()
	default:
		return PairStandby, n.fsm.epoch()
	}
}
