package redundancy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// maxSyncBody bounds a peer request body.
const maxSyncBody = 64 << 20

// wireState is one mapping flow's last written value on the peer link.
type wireState struct {
	ID  string    `json:"id"`
	Rev bool      `json:"rev,omitempty"`
	TS  time.Time `json:"ts"`
	V   string    `json:"v"` // OPC UA binary Variant, base64
	v   *ua.Variant
}

// syncRequest is what the active sends the standby every SyncInterval.
type syncRequest struct {
	From        string      `json:"from"`
	Epoch       uint64      `json:"epoch"`
	ConfigHash  string      `json:"config_hash"`
	LastWriteAt time.Time   `json:"last_write_at"`
	States      []wireState `json:"states,omitempty"`
}

// syncResponse is the standby's answer: its health and readiness.
type syncResponse struct {
	Node       string `json:"node"`
	Health     Health `json:"health"`
	Ready      bool   `json:"ready"`
	ConfigHash string `json:"config_hash"`
	Error      string `json:"error,omitempty"`
}

// servePeer starts the peer link's HTTP server on this member's peer
// address. The caller closes it.
func (n *Node) servePeer(ctx context.Context) (*http.Server, error) {
	var ln net.Listener
	ln, err := net.Listen("tcp", n.self.Peer)
	if err != nil {
		return nil, fmt.Errorf("peer link on %s: %w", n.self.Peer, err)
	}
	if n.cfg.TLS != nil {
		ln = newPairListener(ln, n.cfg.TLS.ServerConfig(), "peer link", n.refusals.add)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /peer/v1/sync", n.handleSync)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 2 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() { _ = srv.Serve(ln) }() // ends when the caller closes srv
	return srv, nil
}

// handleSync applies the active's state stream (as standby) and answers
// with this node's health.
func (n *Node) handleSync(w http.ResponseWriter, req *http.Request) {
	var sr syncRequest
	sender, ok := n.peerSender(req)
	if !ok {
		writeJSON(w, http.StatusForbidden, syncResponse{Node: n.cfg.ID, Error: "peer link: client certificate names no member"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxSyncBody))
	if err == nil {
		err = json.Unmarshal(body, &sr) // the whole body: no trailing data
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, syncResponse{Node: n.cfg.ID, Error: "bad sync request: " + err.Error()})
		return
	}
	if o := n.other(); sender != "" && (sr.From != sender || o == nil || sender != o.ID) {
		// A member's certificate used to speak for another member, or a
		// member that is not the other bridge node (the arbiter).
		err := fmt.Errorf("sync sent as member %q with the certificate of member %q (only the other node streams)", sr.From, sender)
		n.refusals.add("peer link", remoteAddr(req.RemoteAddr), err)
		writeJSON(w, http.StatusForbidden, syncResponse{Node: n.cfg.ID, Error: "peer link: " + err.Error()})
		return
	}
	st := n.fsm.State()
	if sr.Epoch < st.Epoch || n.active.Load() {
		// A stale active (older epoch), or we are active ourselves: refuse.
		writeJSON(w, http.StatusConflict, syncResponse{Node: n.cfg.ID,
			Error: fmt.Sprintf("stale sync from %s epoch %d (pair epoch %d)", sr.From, sr.Epoch, st.Epoch)})
		return
	}
	n.mirrorMu.Lock()
	m := n.mirror
	n.mirrorMu.Unlock()
	if m != nil {
		for _, s := range sr.States {
			v, err := decodeVariant(s.V)
			if err != nil {
				continue
			}
			m.Observe(s.ID, s.Rev, v, s.TS)
		}
	}
	n.peerMu.Lock()
	n.peerSeen = time.Now()
	n.peerLastWrite = sr.LastWriteAt
	n.peerHash = sr.ConfigHash
	n.peerMu.Unlock()
	resp := syncResponse{Node: n.cfg.ID, ConfigHash: st.ConfigHash}
	if m != nil {
		resp.Health = m.Health()
		cur := n.activeCfg.Load()
		resp.Ready = resp.Health.Ready && cur != nil && *cur == sr.ConfigHash
	}
	writeJSON(w, http.StatusOK, resp)
}

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

// peerSender returns the member id the request's client certificate
// names ("" without TLS). ok is false when TLS is on and no verified
// member certificate came with the request (the listener refuses those
// before HTTP, so this is a second line).
func (n *Node) peerSender(req *http.Request) (id string, ok bool) {
	if n.cfg.TLS == nil {
		return "", true
	}
	if req.TLS == nil || len(req.TLS.PeerCertificates) == 0 {
		return "", false
	}
	raw := make([][]byte, len(req.TLS.PeerCertificates))
	for i, c := range req.TLS.PeerCertificates {
		raw[i] = c.Raw
	}
	id, err := n.cfg.TLS.Verifier.Verify(raw)
	return id, err == nil
}

func remoteAddr(s string) net.Addr { return stringAddr(s) }

// flush sends the pending states to the other node and records its
// answer. States that could not be sent are kept (newer ones win).
func (n *Node) flush(ctx context.Context) {
	o := n.other()
	if o == nil {
		return
	}
	n.pendMu.Lock()
	pend := n.pend
	n.pend = make(map[stateKey]wireState, len(pend))
	n.pendMu.Unlock()
	states := make([]wireState, 0, len(pend))
	for _, s := range pend {
		enc, err := encodeVariant(s.v)
		if err != nil {
			continue
		}
		s.V = enc
		states = append(states, s)
	}
	st := n.fsm.State()
	sr := syncRequest{From: n.cfg.ID, Epoch: n.epoch.Load(), ConfigHash: st.ConfigHash, States: states}
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
	if err == nil {
		defer res.Body.Close()
		var resp syncResponse
		err = json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&resp)
		if err == nil && res.StatusCode != http.StatusOK {
			err = errors.New(resp.Error)
		}
		if err == nil {
			n.peerMu.Lock()
			n.peerHealth, n.peerReady, n.peerSeen = resp.Health, resp.Ready, time.Now()
			n.peerMu.Unlock()
			return
		}
	}
	// Not delivered: put the states back unless newer ones arrived.
	n.pendMu.Lock()
	for k, s := range pend {
		if cur, ok := n.pend[k]; !ok || cur.TS.Before(s.TS) {
			n.pend[k] = s
		}
	}
	n.pendMu.Unlock()
	n.log.Debug("peer sync failed", zap.String("peer", o.ID), zap.Error(err))
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
	Health       *Health        `json:"health,omitempty"`
	PeerHealth   *Health        `json:"peer_health,omitempty"`
	// NotReady says why Ready is false ("" when it is true).
	NotReady string `json:"not_ready,omitempty"`
	// DataDir is the data directory's problem, if it does not take
	// writes ("" when it does).
	DataDir string `json:"data_dir_problem,omitempty"`
}

// Status returns this node's view of the pair.
func (n *Node) Status() Status {
	st := n.fsm.State()
	s := Status{Node: n.cfg.ID, Epoch: st.Epoch, Active: st.Active, Policy: n.cfg.Policy, ConfigHash: st.ConfigHash}
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
	for _, m := range n.cfg.Members {
		ms := MemberStatus{ID: m.ID, Role: m.Role, Raft: m.Raft, Admin: m.Admin, Link: "down"}
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
