package redundancy

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
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
