package redundancy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/uamirror/uamirror/mapping"
)

func TestCompatible(t *testing.T) {
	cur := Local("v0.2.0")
	for _, tc := range []struct {
		name  string
		a, b  VersionInfo
		err   bool
		names []string // in the message
	}{
		{"same build", cur, cur, false, nil},
		{"legacy peer (announces nothing) is N-1", cur, VersionInfo{}, false, nil},
		{"next release speaking 2-3", cur, VersionInfo{Version: "v0.3.0", Protocol: 3, MinProtocol: 2}, false, nil},
		{"a release two ahead", cur, VersionInfo{Version: "v0.4.0", Protocol: 4, MinProtocol: 3}, true,
			[]string{"v0.2.0 (protocol 1–2)", "v0.4.0 (protocol 3–4)", "upgrade this member"}},
		{"a legacy peer beside a release that dropped protocol 1", VersionInfo{Version: "v0.3.0", Protocol: 3, MinProtocol: 2}, VersionInfo{}, true,
			[]string{"v0.3.0 (protocol 2–3)", "v0.1.0 or older", "upgrade b first"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Compatible(tc.a, "b", tc.b)
			if (err != nil) != tc.err {
				t.Fatalf("Compatible = %v, want error %v", err, tc.err)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, ErrVersionWindow) {
				t.Errorf("%v does not wrap ErrVersionWindow", err)
			}
			for _, s := range tc.names {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not name %q", err, s)
				}
			}
		})
	}
}

func TestPairProtocol(t *testing.T) {
	cur := Local("v0.2.0")
	for _, tc := range []struct {
		name string
		vs   []MemberVersion
		want int
	}{
		{"all current", []MemberVersion{{ID: "a", VersionInfo: cur, Source: "self"}, {ID: "b", VersionInfo: cur, Source: "peer link"}}, 2},
		{"peer not heard yet", []MemberVersion{{ID: "a", VersionInfo: cur, Source: "self"}, {ID: "b", Source: "unknown"}}, 1},
		{"legacy peer", []MemberVersion{{ID: "a", VersionInfo: cur, Source: "self"}, {ID: "b", VersionInfo: legacyVersion, Source: "peer link"}}, 1},
		{"newer peer", []MemberVersion{{ID: "a", VersionInfo: cur, Source: "self"}, {ID: "b", VersionInfo: VersionInfo{Protocol: 3, MinProtocol: 2}, Source: "peer link"}}, 2},
	} {
		if got := pairProtocol(tc.vs); got != tc.want {
			t.Errorf("%s: pairProtocol = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func logOf(t *testing.T, i uint64, c command) *raft.Log {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: i, Data: b}
}

// An fsm stops at a command it cannot apply, refuses every later one
// without changing its state, and says so once through halt.
func TestFSMStopsOnCommandItCannotApply(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"unknown op", mustJSON(t, command{Op: "teleport"}), `command "teleport", unknown to this member`},
		{"known op needing a newer protocol", mustJSON(t, command{Op: "config", Need: ProtocolVersion + 1}), "needs pair protocol 3"},
		{"undecodable", []byte("{"), "does not decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var halts []error
			f := &fsm{halt: func(err error) { halts = append(halts, err) }}
			if res := f.Apply(logOf(t, 1, command{Op: "config", Hash: "h1"})); res != nil {
				t.Fatalf("config: %v", res)
			}
			res := f.Apply(&raft.Log{Index: 2, Data: tc.data})
			err, _ := res.(error)
			if !errors.Is(err, ErrProtocolTooNew) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply = %v, want ErrProtocolTooNew naming %q", res, tc.want)
			}
			if res := f.Apply(logOf(t, 3, command{Op: "config", Hash: "h2"})); res == nil {
				t.Fatal("a stopped fsm applied a later command")
			}
			if h := f.State().ConfigHash; h != "h1" {
				t.Errorf("state changed after the stop: config hash %q", h)
			}
			if len(halts) != 1 {
				t.Errorf("halt called %d times, want once", len(halts))
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The versions record is applied and survives a snapshot; a snapshot of
// a pair at a newer protocol stops the fsm.
func TestFSMVersionsRecord(t *testing.T) {
	f := &fsm{}
	vs := []MemberVersion{{ID: "a", VersionInfo: Local("v0.2.0"), Source: "self"}, {ID: "b", VersionInfo: Local("v0.2.0"), Source: "peer link"}}
	if res := f.Apply(logOf(t, 1, command{Op: "versions", Need: 2, Protocol: 2, Versions: vs})); res != nil {
		t.Fatal(res)
	}
	st := f.State()
	if st.Protocol != 2 || !sameVersions(st.Versions, vs) {
		t.Fatalf("state after versions: protocol %d versions %+v", st.Protocol, st.Versions)
	}
	// The v0.1.0 fsm ignores the fields it does not know in a snapshot
	// (encoding/json); a newer protocol's snapshot stops this one.
	b, _ := json.Marshal(PairState{Protocol: ProtocolVersion + 1})
	var halted error
	g := &fsm{halt: func(err error) { halted = err }}
	if err := g.Restore(nopCloser{strings.NewReader(string(b))}); !errors.Is(err, ErrProtocolTooNew) || halted == nil {
		t.Fatalf("Restore of a protocol %d snapshot = %v (halted %v)", ProtocolVersion+1, err, halted)
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

// testNode builds node id of a loopback pair (not started) with software
// version v.
func testNode(t *testing.T, id, v string) *Node {
	t.Helper()
	ms := []Member{{ID: "a", Role: RoleNode, Raft: "127.0.0.1:1", Peer: "127.0.0.1:2"},
		{ID: "b", Role: RoleNode, Raft: "127.0.0.1:3", Peer: "127.0.0.1:4"}, {ID: "arb", Role: RoleArbiter, Raft: "127.0.0.1:5"}}
	n, err := New(Options{Config: Config{ID: id, DataDir: t.TempDir(), Members: ms}, Version: v,
		NewMirror: func(*mapping.Config, *Gate, func(FlowState)) (Mirror, error) {
			return nil, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	n.syncSem = make(chan struct{}, 1)
	return n
}

// postSync posts a sync request from "a" announcing ann (nil: a v0.1.0
// member) to n's peer handler and returns the answer.
func postSync(t *testing.T, n *Node, ann *VersionInfo) (int, syncResponse) {
	t.Helper()
	body := mustJSON(t, syncRequest{From: "a", Epoch: 0, Member: ann})
	rec := httptest.NewRecorder()
	n.handleSync(rec, httptest.NewRequest(http.MethodPost, "/peer/v1/sync", bytes.NewReader(body)))
	var resp syncResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	return rec.Code, resp
}

// A standby hearing an active outside its window refuses the sync,
// names both versions and stops (it refuses to join); one hearing a
// v0.1.0 active (no announcement) or its own release takes it and
// answers with its own version.
func TestStandbyRefusesToJoinOutsideTheWindow(t *testing.T) {
	for _, tc := range []struct {
		name string
		ann  *VersionInfo
		stop bool
		pair int
	}{
		{"previous release (no announcement)", nil, false, LegacyProtocol},
		{"same release", &VersionInfo{Version: "v0.2.0", Protocol: ProtocolVersion, MinProtocol: MinProtocolVersion}, false, LegacyProtocol}, // the arbiter is not heard yet
		{"two releases ahead", &VersionInfo{Version: "v0.4.0", Protocol: ProtocolVersion + 2, MinProtocol: ProtocolVersion + 1}, true, LegacyProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := testNode(t, "b", "v0.2.0")
			code, resp := postSync(t, n, tc.ann)
			if resp.Member == nil || resp.Member.Protocol != ProtocolVersion || resp.Member.Version != "v0.2.0" {
				t.Errorf("answer announces %+v, want this member's version", resp.Member)
			}
			stopped := n.haltErr.Load() != nil
			if stopped != tc.stop {
				t.Fatalf("stopped = %v, want %v (answer %d %q)", stopped, tc.stop, code, resp.Error)
			}
			if tc.stop {
				msg := (*n.haltErr.Load()).Error()
				if code != http.StatusConflict || !strings.Contains(resp.Error, "v0.4.0 (protocol 3–4)") || !strings.Contains(msg, "v0.2.0 (protocol 1–2)") ||
					!strings.Contains(msg, "v0.4.0") || !errors.Is(*n.haltErr.Load(), ErrVersionWindow) {
					t.Errorf("answer %d %q, stop %q: want 409 naming both versions", code, resp.Error, msg)
				}
				if st := n.Status(); !strings.Contains(st.VersionProblem, "v0.4.0") || !strings.Contains(st.NotReady, "v0.4.0") {
					t.Errorf("status does not say why: %+v", st)
				}
				select {
				case <-n.halted:
				default:
					t.Error("halted not closed")
				}
				return
			}
			want := LegacyProtocol
			if tc.ann != nil {
				want = tc.ann.Protocol
			}
			if v := n.vers.get("a"); v.Protocol != want || v.Source != "peer link" {
				t.Errorf("a's version as b knows it: %+v, want protocol %d from the peer link", v, want)
			}
			if p := n.PairProtocol(); p != tc.pair {
				t.Errorf("pair protocol %d, want %d", p, tc.pair)
			}
		})
	}
}

// A config change is refused while the other node runs the previous
// release (it may not parse it), allowed once it runs this one.
func TestConfigChangeWaitsForTheUpgrade(t *testing.T) {
	n := testNode(t, "b", "v0.2.0")
	if err := n.checkConfigChange(); err != nil {
		t.Fatalf("other node not heard yet: %v", err)
	}
	n.vers.heard("a", nil, "peer link")
	err := n.checkConfigChange()
	if !errors.Is(err, ErrMixedVersions) || !strings.Contains(err.Error(), "v0.1.0 or older") || !strings.Contains(err.Error(), "v0.2.0 (protocol 1–2)") {
		t.Fatalf("beside a v0.1.0 node: %v, want ErrMixedVersions naming both versions", err)
	}
	cur := Local("v0.2.0")
	n.vers.heard("a", &cur, "peer link")
	if err := n.checkConfigChange(); err != nil {
		t.Fatalf("beside this release: %v", err)
	}
}

// A member whose fsm meets a command it cannot apply stops: Run returns
// the error (the process exits with it) instead of running on.
func TestRunStopsOnCommandItCannotApply(t *testing.T) {
	n := testNode(t, "b", "v0.2.0")
	n.opts.PeerTransport = http.DefaultTransport // no peer listener
	store := raft.NewInmemStore()
	_, trans := raft.NewInmemTransport(raft.ServerAddress(n.self.Raft))
	n.opts.OpenRaft = func() (RaftParts, error) {
		return RaftParts{Logs: store, Stable: store, Snaps: raft.NewInmemSnapshotStore(), Trans: trans}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for n.raft() == nil {
		if time.Now().After(deadline) {
			t.Fatal("raft did not start")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
	n.fsm.Apply(&raft.Log{Index: 7, Data: []byte(`{"op":"teleport"}`)})
	select {
	case err := <-done:
		if !errors.Is(err, ErrProtocolTooNew) || !strings.Contains(err.Error(), `"teleport"`) {
			t.Fatalf("Run returned %v, want ErrProtocolTooNew naming the command", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not stop after the fsm met a command it cannot apply")
	}
}
