package adminclient_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/diagnostics/adminclient"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/redundancy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair is a diagnostics.Pair whose answers the test sets.
type pair struct {
	mu        sync.Mutex
	st        redundancy.Status
	events    []redundancy.Event
	switchErr error
	switched  []string // "to/force" of each switchover asked
}

func (p *pair) Status() redundancy.Status { p.mu.Lock(); defer p.mu.Unlock(); return p.st }
func (p *pair) Events() []redundancy.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]redundancy.Event(nil), p.events...)
}
func (p *pair) Switchover(_ context.Context, to string, force bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.switched = append(p.switched, fmt.Sprintf("%s/%v", to, force))
	return p.switchErr
}
func (p *pair) ForcePromote(context.Context) error { return nil }
func (p *pair) ApplyConfig(_ context.Context, yaml []byte, file string) (mapping.Delta, error) {
	c, err := mapping.ParseYAML(yaml, file)
	if err == nil {
		err = c.Validate()
	}
	return mapping.Delta{}, err
}

// serve runs the real admin API of p on 127.0.0.1 until the test ends.
func serve(t *testing.T, p *pair, auth diagnostics.AdminAuth) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := diagnostics.NewAdmin(p, nil, zap.NewNop())
	a.SetAuth(auth)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admin API: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestClient(t *testing.T) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	p := &pair{st: redundancy.Status{Node: "a", Role: redundancy.PairActive, Epoch: 3, Active: "a", Ready: true},
		events: []redundancy.Event{{Time: t0, To: "a", Epoch: 1, Reason: "bootstrap"}}}
	addr := serve(t, p, diagnostics.AdminAuth{})
	ctx := t.Context()

	for _, a := range []string{addr, "http://" + addr, "http://" + addr + "/"} {
		c := adminclient.New(a, adminclient.Options{})
		st, err := c.Status(ctx)
		if err != nil || st.Node != "a" || st.Role != redundancy.PairActive || st.Epoch != 3 {
			t.Errorf("%s: Status = %+v, %v", a, st, err)
		}
	}
	c := adminclient.New(addr, adminclient.Options{})
	if evs, err := c.Events(ctx); err != nil || len(evs) != 1 || evs[0].Reason != "bootstrap" || !evs[0].Time.Equal(t0) {
		t.Errorf("Events = %+v, %v", evs, err)
	}
	res, err := c.Switchover(ctx, diagnostics.SwitchoverRequest{To: "b", Force: true})
	if err != nil || res.Status.Node != "a" || fmt.Sprint(p.switched) != "[b/true]" {
		t.Errorf("Switchover = %+v, %v; the pair was asked %v", res, err, p.switched)
	}

	// A standby that is not READY: 409, matched by the sentinel.
	p.mu.Lock()
	p.switchErr = fmt.Errorf("%w: b is not READY", redundancy.ErrStandbyNotReady)
	p.mu.Unlock()
	_, err = c.Switchover(ctx, diagnostics.SwitchoverRequest{})
	var ae *adminclient.APIError
	if !errors.Is(err, redundancy.ErrStandbyNotReady) || !errors.As(err, &ae) || ae.StatusCode != 409 ||
		!strings.Contains(err.Error(), "b is not READY") || errors.Is(err, adminclient.ErrUnauthorized) {
		t.Errorf("switchover refused: %v (%#v)", err, ae)
	}

	// A mapping file that does not validate: every error, one per line.
	_, err = c.ApplyMappings(ctx, "bad.yml", []byte("servers: []\nmappings:\n  - source: {server: nowhere, node: \"ns=1;s=x\"}\n    target: {server: nowhere, node: \"ns=1;s=y\"}\n"))
	if !errors.As(err, &ae) || ae.StatusCode/100 != 4 || len(ae.Errors) == 0 || !strings.Contains(err.Error(), "\n  ") {
		t.Errorf("ApplyMappings of a bad file: %v (%#v)", err, ae)
	}

	// An arbiter has no engine: 503 with the node's message.
	_, err = c.Mappings(ctx, adminclient.MappingQuery{State: "held", Page: 1, PerPage: 10})
	if !errors.As(err, &ae) || ae.StatusCode != 503 || ae.Message == "" {
		t.Errorf("Mappings without an engine: %v (%#v)", err, ae)
	}
	if raw, err := c.GetRaw(ctx, "/metrics"); err != nil || !strings.Contains(string(raw), "uamirror_pair_epoch 3") {
		t.Errorf("GetRaw /metrics: %v\n%s", err, raw)
	}
}

func TestClientCredentialsAndUnreachable(t *testing.T) {
	token := "0123456789abcdef0123"
	p := &pair{st: redundancy.Status{Node: "a", Role: redundancy.PairStandby}}
	addr := serve(t, p, diagnostics.AdminAuth{Token: []byte(token)})
	ctx := t.Context()

	_, err := adminclient.New(addr, adminclient.Options{}).Switchover(ctx, diagnostics.SwitchoverRequest{})
	if !errors.Is(err, adminclient.ErrUnauthorized) || errors.Is(err, adminclient.ErrUnreachable) {
		t.Errorf("a command without the token: %v, want ErrUnauthorized", err)
	}
	_, err = adminclient.New(addr, adminclient.Options{Token: "not-the-token-at-all"}).Switchover(ctx, diagnostics.SwitchoverRequest{})
	if !errors.Is(err, adminclient.ErrUnauthorized) {
		t.Errorf("a command with a wrong token: %v, want ErrUnauthorized", err)
	}
	if _, err := adminclient.New(addr, adminclient.Options{Token: token}).Switchover(ctx, diagnostics.SwitchoverRequest{}); err != nil {
		t.Errorf("a command with the token: %v", err)
	}

	// Nothing listens: ErrUnreachable, naming the node.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	_, err = adminclient.New(dead, adminclient.Options{}).Status(ctx)
	if !errors.Is(err, adminclient.ErrUnreachable) || !strings.Contains(err.Error(), "node http://"+dead) {
		t.Errorf("no node: %v, want ErrUnreachable naming http://%s", err, dead)
	}
	// The timeout ends a request to a node that never answers.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	start := time.Now()
	_, err = adminclient.New(hang.Addr().String(), adminclient.Options{Timeout: 200 * time.Millisecond}).Status(ctx)
	if !errors.Is(err, adminclient.ErrUnreachable) || time.Since(start) > 5*time.Second {
		t.Errorf("a node that never answers: %v after %v", err, time.Since(start))
	}
}
