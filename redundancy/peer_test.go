package redundancy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/hashicorp/raft"
)

// recMirror is a Mirror that records what the peer link delivers; every
// mapping's target takes Double.
type recMirror struct {
	mu  sync.Mutex
	got []FlowState
}

func (m *recMirror) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (m *recMirror) Observe(s FlowState) {
	m.mu.Lock()
	m.got = append(m.got, s)
	m.mu.Unlock()
}
func (m *recMirror) Health() Health                     { return Health{Ready: true} }
func (m *recMirror) WaitIdle(ctx context.Context) error { return nil }
func (m *recMirror) TargetType(string, bool) (ua.TypeID, bool) {
	return ua.TypeIDDouble, true
}

// reset forgets what was observed.
func (m *recMirror) reset() {
	m.mu.Lock()
	m.got = nil
	m.mu.Unlock()
}

func (m *recMirror) observed() []FlowState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]FlowState(nil), m.got...)
}

// standbyOf returns fuzzNode's standby b following active a under epoch
// 1, with m as its mirror.
func standbyOf(t testing.TB, m Mirror) *Node {
	n := fuzzNode(t)
	if res := n.fsm.Apply(&raft.Log{Index: 1, Data: []byte(`{"op":"promote","node":"a","epoch":1}`)}); res != nil {
		t.Fatalf("promote: %v", res)
	}
	n.mirrorMu.Lock()
	n.mirror = m
	n.mirrorMu.Unlock()
	return n
}

// postStates posts a sync of states from the active a under epoch 1 to
// n's peer handler and returns the answer.
func postStates(t *testing.T, n *Node, states string) (int, syncResponse) {
	t.Helper()
	body := `{"from":"a","epoch":1,"config_hash":"","last_write_at":"0001-01-01T00:00:00Z","states":[` + states + `]}`
	rec := httptest.NewRecorder()
	n.handleSync(rec, httptest.NewRequest(http.MethodPost, "/peer/v1/sync", strings.NewReader(body)))
	var resp syncResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("answer is not JSON: %q", rec.Body.String())
	}
	return rec.Code, resp
}

// TestPeerSyncCarriesStatus (issue 14 item 3): the standby receives the
// source's status with each value; a state without one (an active of the
// previous release) is delivered with the status unknown; a status of
// the reserved severity is refused with the reason, as are the existing
// checks (another type, a timestamp from the future).
func TestPeerSyncCarriesStatus(t *testing.T) {
	m := &recMirror{}
	n := standbyOf(t, m)
	v, _ := encodeVariant(ua.MustVariant(7.5))
	i, _ := encodeVariant(ua.MustVariant(int32(7)))
	ts := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
	state := func(id, val, ts, extra string) string {
		return `{"id":"` + id + `","ts":"` + ts + `","v":"` + val + `"` + extra + `}`
	}
	code, resp := postStates(t, n, strings.Join([]string{
		state("bad", v, ts, `,"status":2156658688`), // Bad_SensorFailure 0x808C0000
		state("good", v, ts, `,"status":0`),
		state("old", v, ts, ""),
		state("reserved", v, ts, `,"status":3221225472`), // 0xC0000000
		state("int", i, ts, `,"status":0`),
		state("future", v, future, `,"status":0`),
	}, ","))
	if code != http.StatusOK || resp.Rejected != 3 || !strings.Contains(resp.Error, "reserved severity") {
		t.Fatalf("answer %d, %d rejected (%q), want 200 with 3 rejected, the first for its status", code, resp.Rejected, resp.Error)
	}
	want := []FlowState{
		{MappingID: "bad", Status: ua.StatusBadSensorFailure, StatusKnown: true},
		{MappingID: "good", Status: ua.StatusGood, StatusKnown: true},
		{MappingID: "old"},
	}
	got := m.observed()
	if len(got) != len(want) {
		t.Fatalf("observed %d states, want %d: %+v", len(got), len(want), got)
	}
	for k, w := range want {
		g := got[k]
		if g.MappingID != w.MappingID || g.Status != w.Status || g.StatusKnown != w.StatusKnown || g.Value.Value() != 7.5 || g.Held {
			t.Errorf("state %d: %+v, want %+v with 7.5", k, g, w)
		}
	}
	evs := n.SecurityEvents()
	if len(evs) == 0 || !strings.Contains(evs[0].Detail, "reserved severity") {
		t.Errorf("the refused status is not journaled: %+v", evs)
	}
}

// TestOnWrittenStreamsStatus: every report of the engine goes to the
// standby with its status; a held source's report (nothing written) is
// streamed but is no write of this node (the takeover gap is measured
// from the last real write).
func TestOnWrittenStreamsStatus(t *testing.T) {
	var bodies []syncRequest
	var mu sync.Mutex
	n := fuzzNode(t)
	n.peerClient.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		var sr syncRequest
		if err := json.NewDecoder(r.Body).Decode(&sr); err != nil {
			t.Errorf("sync body: %v", err)
		}
		mu.Lock()
		bodies = append(bodies, sr)
		mu.Unlock()
		b, _ := json.Marshal(syncResponse{Node: "a"})
		return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(bytes.NewReader(b)), Header: http.Header{}}, nil
	})
	ts := time.Now().Truncate(time.Millisecond)
	n.onWritten(FlowState{MappingID: "held", Value: ua.MustVariant(3.5), SourceTS: ts, Status: ua.StatusBadSensorFailure, StatusKnown: true, Held: true})
	if n.lastWriteAt.Load() != 0 {
		t.Fatal("a held source's report counted as a write")
	}
	n.onWritten(FlowState{MappingID: "w", Reverse: true, Value: ua.MustVariant(7.5), SourceTS: ts, Status: ua.StatusGood, StatusKnown: true})
	if n.lastWriteAt.Load() == 0 {
		t.Fatal("a write was not recorded as the last write")
	}
	n.flush(context.Background())
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 || len(bodies[0].States) != 2 {
		t.Fatalf("sync requests %+v, want one with two states", bodies)
	}
	for _, s := range bodies[0].States {
		want := map[string]uint32{"held": uint32(ua.StatusBadSensorFailure), "w": 0}[s.ID]
		if s.Status == nil || *s.Status != want || !s.TS.Equal(ts) {
			t.Errorf("state %s: status %v at %v, want %#x at %v", s.ID, s.Status, s.TS, want, ts)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A member's certificate that is not the other bridge node's (the
// arbiter's) is refused on the peer link with 403 and journaled even
// while the active's sync holds the one sync slot (it answered 429,
// unjournaled: TestSecuredPair failed under stress-ng), and the other
// node's certificate speaking for another member is refused after the
// body is read.
func TestPeerSyncRefusesOtherMembersWhileBusy(t *testing.T) {
	n := standbyOf(t, &recMirror{})
	n.cfg.TLS = &PairTLS{} // peerSender takes the member from the request's context
	post := func(cert, from string) (int, string) {
		body := `{"from":"` + from + `","epoch":999}`
		req := httptest.NewRequest(http.MethodPost, "/peer/v1/sync", strings.NewReader(body))
		req = req.WithContext(context.WithValue(req.Context(), peerMemberKey{}, cert))
		rec := httptest.NewRecorder()
		n.handleSync(rec, req)
		return rec.Code, rec.Body.String()
	}
	n.syncSem <- struct{}{} // the active's stream is in
	for _, from := range []string{"a", "arb"} {
		if code, body := post("arb", from); code != http.StatusForbidden {
			t.Errorf("sync as %s with the arbiter's certificate while a sync is in: %d %s, want 403", from, code, body)
		}
	}
	if code, body := post("a", "a"); code != http.StatusTooManyRequests {
		t.Errorf("the active's second sync while one is in: %d %s, want 429", code, body)
	}
	<-n.syncSem
	if code, body := post("a", "arb"); code != http.StatusForbidden || !strings.Contains(body, `sent as member \"arb\" with the certificate of member \"a\"`) {
		t.Errorf("sync as arb with a's certificate: %d %s, want 403 naming both", code, body)
	}
	evs := n.refusals.list()
	if len(evs) == 0 || !strings.Contains(evs[0].Detail, `with the certificate of member "arb"`) {
		t.Errorf("refusals journaled: %+v, want the arbiter's first", evs)
	}
}
