package uaserver

import (
	"context"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap/zaptest"
)

// startServer starts a server for cfg (with a test logger unless cfg has
// one) and closes it when the test ends.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// connect returns a connected gopcua client (auto-reconnect off), closed
// when the test ends.
func connect(t testing.TB, endpoint string, opts ...opcua.Option) *opcua.Client {
	t.Helper()
	opts = append([]opcua.Option{opcua.AutoReconnect(false), opcua.RequestTimeout(10 * time.Second)}, opts...)
	c, err := opcua.NewClient(endpoint, opts...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("Connect %s: %v", endpoint, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// testCtx is a context bounded by the test's deadline (or 60 s).
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// read reads one attribute of each node.
func read(t testing.TB, c *opcua.Client, attr ua.AttributeID, nodes ...*ua.NodeID) []*ua.DataValue {
	t.Helper()
	req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnBoth}
	for _, n := range nodes {
		req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: n, AttributeID: attr})
	}
	resp, err := c.Read(testCtx(t), req)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(resp.Results) != len(nodes) {
		t.Fatalf("Read: %d results for %d nodes", len(resp.Results), len(nodes))
	}
	return resp.Results
}

// write writes values and returns the per-value results.
func write(t testing.TB, c *opcua.Client, wvs ...*ua.WriteValue) []ua.StatusCode {
	t.Helper()
	resp, err := c.Write(testCtx(t), &ua.WriteRequest{NodesToWrite: wvs})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return resp.Results
}

// valueWrite is a WriteValue of v with a source timestamp and status.
func valueWrite(n *ua.NodeID, v any, ts time.Time, status ua.StatusCode) *ua.WriteValue {
	dv := &ua.DataValue{
		EncodingMask:    ua.DataValueValue | ua.DataValueSourceTimestamp,
		Value:           ua.MustVariant(v),
		SourceTimestamp: ts,
	}
	if status != ua.StatusGood {
		dv.Status = status
		dv.EncodingMask |= ua.DataValueStatusCode
	}
	return &ua.WriteValue{NodeID: n, AttributeID: ua.AttributeIDValue, Value: dv}
}

var serviceLevelNode = ua.NewNumericNodeID(0, 2267)
