package diagnostics_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/uaserver"
)

// TestUAServerRefusesInsecureNonLoopback: an endpoint on a non-loopback
// address without security is refused (issue 12: an anonymous client
// switched the pair over through --opcua 0.0.0.0:PORT), unless Insecure
// says so explicitly; loopback stays allowed as before.
func TestUAServerRefusesInsecureNonLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		insecure bool
		wantErr  bool
	}{
		{"0.0.0.0:0", false, true},
		{"[::]:0", false, true},
		{"192.0.2.7:4840", false, true},
		{"0.0.0.0:0", true, false},
		{"127.0.0.1:0", false, false},
		{"localhost:0", false, false},
	} {
		u, err := diagnostics.NewUAServer(diagnostics.UAServerConfig{Addr: tc.addr, Pair: activePair("a"),
			Insecure: tc.insecure, Logger: zap.NewNop()})
		if got := errors.Is(err, diagnostics.ErrUAInsecure); got != tc.wantErr {
			t.Errorf("%s insecure=%v: %v, want ErrUAInsecure %v", tc.addr, tc.insecure, err, tc.wantErr)
		}
		if u != nil {
			_ = u.Close()
		}
	}
}

// TestUAServerSecured: a secured endpoint offers only Sign and
// SignAndEncrypt endpoints with its certificate; an anonymous session
// reads the pair's variables but its Failover is refused with
// Bad_UserAccessDenied (and no switchover happens); a wrong password
// opens no session; the operator's Failover switches over. Failover
// declares its arguments.
func TestUAServerSecured(t *testing.T) {
	ctx := harness.Context(t)
	pair := activePair("a")
	der, key, err := uaserver.GenerateCertificate(diagnostics.UAServerURIPrefix+"a", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	u, err := diagnostics.NewUAServer(diagnostics.UAServerConfig{Addr: "127.0.0.1:0", Pair: pair, Logger: zap.NewNop(),
		Security: &diagnostics.UASecurity{Certificate: der, Key: key,
			Operators: map[string]string{"operator": "the-admin-token-0123456789"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = u.Run(rctx) }()
	defer func() { stop(); wg.Wait() }()

	eps, err := opcua.GetEndpoints(ctx, u.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		if ep.SecurityMode == ua.MessageSecurityModeNone || ep.SecurityPolicyURI == ua.SecurityPolicyURINone {
			t.Fatalf("secured endpoint offers %s %s", ep.SecurityPolicyURI, ep.SecurityMode)
		}
	}
	cder, ckey, err := uaserver.GenerateCertificate("urn:uamirror:test:client", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	dial := func(auth opcua.Option, tok ua.UserTokenType) (*opcua.Client, error) {
		ep, err := opcua.SelectEndpoint(eps, "Basic256Sha256", ua.MessageSecurityModeSignAndEncrypt)
		if err != nil {
			t.Fatal(err)
		}
		c, err := opcua.NewClient(ep.EndpointURL, opcua.AutoReconnect(false), auth, opcua.SecurityFromEndpoint(ep, tok),
			opcua.Certificate(cder), opcua.PrivateKey(ckey), opcua.ApplicationURI("urn:uamirror:test:client"))
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := c.Connect(cctx); err != nil {
			return nil, err
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c, nil
	}
	failover := func(c *opcua.Client) *ua.CallMethodResult {
		t.Helper()
		ns, err := c.FindNamespace(ctx, diagnostics.UANamespaceURI)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Call(ctx, &ua.CallMethodRequest{ObjectID: ua.NewStringNodeID(ns, "Pair"),
			MethodID: ua.NewStringNodeID(ns, "Pair/Failover")})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	anon, err := dial(opcua.AuthAnonymous(), ua.UserTokenTypeAnonymous)
	if err != nil {
		t.Fatalf("anonymous session: %v", err)
	}
	ns, err := anon.FindNamespace(ctx, diagnostics.UANamespaceURI)
	if err != nil {
		t.Fatal(err)
	}
	rr, err := anon.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{
		{NodeID: ua.NewStringNodeID(ns, "Role"), AttributeID: ua.AttributeIDValue},
		{NodeID: ua.NewStringNodeID(ns, "Pair/Failover/OutputArguments"), AttributeID: ua.AttributeIDValue},
		{NodeID: ua.NewStringNodeID(ns, "Pair/Failover/InputArguments"), AttributeID: ua.AttributeIDValue},
		{NodeID: ua.NewStringNodeID(ns, "Pair/Failover/OutputArguments"), AttributeID: ua.AttributeIDDataType},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Results[0].Value.Value() != "active" {
		t.Errorf("anonymous read of Role: %v %v", rr.Results[0].Status, rr.Results[0].Value)
	}
	outs, _ := rr.Results[1].Value.Value().([]*ua.ExtensionObject)
	if len(outs) != 1 {
		t.Fatalf("OutputArguments %v %v", rr.Results[1].Status, rr.Results[1].Value)
	}
	if a, ok := outs[0].Value.(*ua.Argument); !ok || a.Name != "Error" || a.DataType.IntID() != id.String || a.ValueRank != -1 {
		t.Errorf("OutputArguments[0] %#v", outs[0].Value)
	}
	if ins, ok := rr.Results[2].Value.Value().([]*ua.ExtensionObject); !ok || len(ins) != 0 {
		t.Errorf("InputArguments %v %v, want an empty Argument array", rr.Results[2].Status, rr.Results[2].Value)
	}
	if dt := rr.Results[3].Value; dt == nil || dt.NodeID().IntID() != id.Argument {
		t.Errorf("OutputArguments DataType %v, want Argument (i=296)", dt)
	}

	if res := failover(anon); res.StatusCode != ua.StatusBadUserAccessDenied {
		t.Fatalf("anonymous Failover: %v, want Bad_UserAccessDenied", res.StatusCode)
	}
	if _, err := dial(opcua.AuthUsername("operator", "wrong"), ua.UserTokenTypeUserName); !errors.Is(err, ua.StatusBadUserAccessDenied) {
		t.Fatalf("wrong password: %v, want Bad_UserAccessDenied", err)
	}
	pair.mu.Lock()
	n := pair.switchover
	pair.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d switchovers after refused calls", n)
	}

	op, err := dial(opcua.AuthUsername("operator", "the-admin-token-0123456789"), ua.UserTokenTypeUserName)
	if err != nil {
		t.Fatalf("operator session: %v", err)
	}
	if res := failover(op); res.StatusCode != ua.StatusOK {
		t.Fatalf("operator Failover: %v %v", res.StatusCode, res.OutputArguments)
	}
	pair.mu.Lock()
	n = pair.switchover
	pair.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d switchovers after the operator's Failover, want 1", n)
	}
}
