package diagnostics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/simserver"
	"github.com/uamirror/uamirror/test/harness"
)

const simNS = "urn:uamirror:simserver"

func simNode(i int) string { return fmt.Sprintf("nsu=%s;s=v%d", simNS, i) }

// fakePair is a Pair whose status the test sets.
type fakePair struct {
	mu         sync.Mutex
	st         redundancy.Status
	events     []redundancy.Event
	switchErr  error
	switchover int
}

func (p *fakePair) Status() redundancy.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

func (p *fakePair) Events() []redundancy.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]redundancy.Event(nil), p.events...)
}

func (p *fakePair) Switchover(context.Context, string, bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.switchover++
	return p.switchErr
}

func (p *fakePair) ForcePromote(context.Context) error { return nil }

func (p *fakePair) ApplyConfig(_ context.Context, yaml []byte, file string) (mapping.Delta, error) {
	c, err := mapping.ParseYAML(yaml, file)
	if err == nil {
		err = c.Validate()
	}
	return mapping.Delta{}, err
}

func activePair(node string) *fakePair {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return &fakePair{
		st: redundancy.Status{Node: node, Role: "active", Epoch: 3, Active: node, Ready: true, StandbyReady: true,
			ConfigHash: "abc123", Policy: redundancy.PolicyAny,
			Version: redundancy.Local("v0.2.0"), PairProtocol: 1,
			Members: []redundancy.MemberStatus{
				{ID: node, Role: redundancy.RoleNode, Link: "self", Version: redundancy.MemberVersion{ID: node, VersionInfo: redundancy.Local("v0.2.0"), Source: "self"}},
				{ID: "b", Role: redundancy.RoleNode, Link: "up", Version: redundancy.MemberVersion{ID: "b",
					VersionInfo: redundancy.VersionInfo{Version: "v0.1.0 or older (announces no version)", Protocol: 1, MinProtocol: 1}, Source: "peer link"}}},
			PeerHealth: &redundancy.Health{Ready: true, Servers: []redundancy.ServerHealth{{Name: "plc", Up: true, ServiceLevel: 200}}}},
		events: []redundancy.Event{
			{Time: t0, To: node, Epoch: 1, Reason: "bootstrap"},
			{Time: t0.Add(time.Minute), From: node, To: "b", Epoch: 2, Reason: "manual"},
			{Time: t0.Add(2 * time.Minute), From: "b", To: node, Epoch: 3, Reason: "manual"},
		},
	}
}

// startSim starts an in-process simulation server of n Double variables.
func startSim(t *testing.T, n int, rate float64) *simserver.Server {
	t.Helper()
	s, err := simserver.New(simserver.Config{Vars: n, Type: "Double", Rate: rate, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(harness.Context(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// testEngine is a real engine mirroring plc → scada over TCP:
// mappings 0..n-1 plc.v_i → scada.v_i, then one whose source does not
// exist (quarantined) and one disabled.
func testEngine(t *testing.T, n int) (*bridge.Engine, *simserver.Server, *simserver.Server) {
	t.Helper()
	plc, scada := startSim(t, n+2, 200), startSim(t, n+2, 0)
	fast := mapping.Timeouts{Connect: 2 * time.Second, Request: time.Second, KeepAlive: 200 * time.Millisecond,
		Session: 30 * time.Second, DataAge: 3 * time.Second}
	cfg := &mapping.Config{
		Servers: []mapping.Server{
			{Name: "plc", Endpoints: []string{plc.Endpoint()}, Timeouts: fast},
			{Name: "scada", Endpoints: []string{scada.Endpoint()}, Timeouts: fast},
		},
		Engine: mapping.Engine{PublishingInterval: 50 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond},
	}
	add := func(src, dst string, mod func(*mapping.Mapping)) {
		m := mapping.Mapping{Source: mapping.NodeRef{Server: "plc", Node: src}, Target: mapping.NodeRef{Server: "scada", Node: dst}}
		if mod != nil {
			mod(&m)
		}
		m.ID = mapping.DeriveID(m.Source, m.Target)
		cfg.Mappings = append(cfg.Mappings, m)
	}
	for i := range n {
		add(simNode(i), simNode(i), nil)
	}
	add(fmt.Sprintf("nsu=%s;s=nope", simNS), simNode(n), nil)
	f := false
	add(simNode(n+1), simNode(n+1), func(m *mapping.Mapping) { m.Enabled = &f })
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	e, err := bridge.New(bridge.Options{Config: cfg, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = e.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	var last string // what the wait saw last, logged if it fails
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testEngine: last seen: %s", last)
		}
	})
	harness.Eventually(t, 45*time.Second, "engine: sessions up, ServiceLevel read, every mapping settled, notifications received and values written", func() bool {
		st := e.Stats()
		last = fmt.Sprintf("states %v, servers %+v", st.States, st.Servers)
		var writes, notes uint64
		for _, s := range st.Servers {
			if s.State != bridge.Connected || s.ServiceLevel < 0 {
				return false
			}
			writes += s.Writes
			notes += s.Notifications
		}
		return st.States[bridge.StateOK] == n && st.States[bridge.StateQuarantined] == 1 && writes > 0 && notes > 0
	})
	return e, plc, scada
}

func engineFunc(e diagnostics.Engine) diagnostics.EngineFunc {
	return func() diagnostics.Engine { return e }
}

// serve starts an admin API on a test server and returns its URL.
func serve(t *testing.T, a *diagnostics.Admin) string {
	t.Helper()
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// do sends one request and returns the status and body.
func do(t *testing.T, method, url string, body []byte, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	code, b := do(t, http.MethodGet, url, nil)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %d %s: %v", url, code, b, err)
	}
	return code
}
