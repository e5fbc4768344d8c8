package redundancy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
)

// fuzzNode is a standby node that was never started: enough for the peer
// link's handler.
func fuzzNode(t testing.TB) *Node {
	cfg := Config{ID: "b", DataDir: t.TempDir(), Members: []Member{
		{ID: "a", Role: RoleNode, Raft: "127.0.0.1:1", Peer: "127.0.0.1:2"},
		{ID: "b", Role: RoleNode, Raft: "127.0.0.1:3", Peer: "127.0.0.1:4"},
	}}
	n, err := New(Options{Config: cfg, NewMirror: func(*mapping.Config, *Gate, func(FlowState)) (Mirror, error) {
		return nil, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// FuzzPeerSync feeds arbitrary bodies to the peer link's sync handler of
// a standby following active a under epoch 1: no panic, a JSON answer,
// 200 only for a well-formed request; every state of an accepted request
// is either delivered to the mirror or counted as rejected, and a
// delivered status (issue 14 item 3) was sent and is no reserved one.
func FuzzPeerSync(f *testing.F) {
	v, _ := encodeVariant(ua.MustVariant(1.5))
	status := uint32(ua.StatusBadSensorFailure)
	good, _ := json.Marshal(syncRequest{From: "a", Epoch: 1, States: []wireState{{ID: "m1", TS: time.Unix(1, 0), V: v, Status: &status}}})
	for _, s := range []string{string(good), "", "{}", "{", `{"epoch":-1}`, `{"states":[{"v":"!!"}]}`,
		`{"states":[{"v":"AAAA"}]}`, `{"states":[{"v":"` + v + `","id":""}]}`, "\x00", "[]",
		`{"from":"a","epoch":1,"states":[{"id":"m","v":"` + v + `"}]}`,
		`{"from":"a","epoch":1,"states":[{"id":"m","v":"` + v + `","status":3221225472}]}`,
		`{"from":"a","epoch":1,"states":[{"id":"m","v":"` + v + `","status":-1}]}`,
		`{"from":"a","epoch":1,"states":[{"id":"m","v":"` + v + `","status":"bad"}]}`,
		`{"from":"a","epoch":1,"states":[{"id":"m","v":"` + v + `","status":null}]}`} {
		f.Add([]byte(s))
	}
	m := &recMirror{}
	n := standbyOf(f, m)
	f.Fuzz(func(t *testing.T, body []byte) {
		m.reset()
		w := httptest.NewRecorder()
		n.handleSync(w, httptest.NewRequest(http.MethodPost, "/peer/v1/sync", bytes.NewReader(body)))
		var resp syncResponse
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("status %d: answer is not JSON: %q", w.Code, w.Body.String())
		}
		if w.Code != http.StatusOK {
			return
		}
		var sr syncRequest
		if err := json.Unmarshal(body, &sr); err != nil {
			t.Fatalf("accepted a body that does not decode: %q", body)
		}
		got := m.observed()
		if len(got)+resp.Rejected != len(sr.States) {
			t.Fatalf("%d states sent, %d delivered + %d rejected", len(sr.States), len(got), resp.Rejected)
		}
		for _, s := range got {
			if s.StatusKnown && uint32(s.Status)>>30 == 3 {
				t.Fatalf("delivered a status of the reserved severity: %#x", uint32(s.Status))
			}
		}
	})
}

// FuzzDecodeVariant: whatever the peer sends as a value decodes or fails
// cleanly.
func FuzzDecodeVariant(f *testing.F) {
	for _, x := range []any{1.5, int32(-7), "text", []float64{1, 2}, true} {
		s, _ := encodeVariant(ua.MustVariant(x))
		f.Add(s)
	}
	f.Add("")
	f.Add("////")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := decodeVariant(s)
		if err == nil && v == nil {
			t.Fatal("nil variant without an error")
		}
	})
}
