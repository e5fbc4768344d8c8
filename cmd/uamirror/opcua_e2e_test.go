package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/pki"
	"github.com/uamirror/uamirror/test/harness"
)

// uaNode is a gopcua client of one node's OPC UA endpoint.
type uaNode struct {
	t  *testing.T
	c  *opcua.Client
	ns uint16 // index of urn:uamirror:pair
}

func dialNode(t *testing.T, ctx context.Context, endpoint string) *uaNode {
	t.Helper()
	if !strings.HasPrefix(endpoint, "opc.tcp://") {
		t.Fatalf("ready line has no opcua endpoint (%q)", endpoint)
	}
	c, err := opcua.NewClient(endpoint, opcua.AutoReconnect(false), opcua.SecurityMode(ua.MessageSecurityModeNone))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect %s: %v", endpoint, err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	ns, err := c.FindNamespace(ctx, "urn:uamirror:pair")
	if err != nil {
		t.Fatalf("%s: %v", endpoint, err)
	}
	return &uaNode{t: t, c: c, ns: ns}
}

// pair returns the node id of a variable of the pair's namespace.
func (n *uaNode) pair(name string) *ua.NodeID { return ua.NewStringNodeID(n.ns, name) }

// read reads the values of nids (nil values when the read fails).
func (n *uaNode) read(ctx context.Context, nids ...*ua.NodeID) []any {
	req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnBoth}
	for _, nid := range nids {
		req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: nid, AttributeID: ua.AttributeIDValue})
	}
	out := make([]any, len(nids))
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := n.c.Read(rctx, req)
	if err != nil {
		n.t.Logf("read: %v", err)
		return out
	}
	for k, dv := range res.Results {
		if dv != nil && dv.Status == ua.StatusOK && dv.Value != nil {
			out[k] = dv.Value.Value()
		}
	}
	return out
}

var (
	serviceLevelID      = ua.NewNumericNodeID(0, id.Server_ServiceLevel)
	redundancySupportID = ua.NewNumericNodeID(0, id.Server_ServerRedundancy_RedundancySupport)
)

func (n *uaNode) serviceLevel(ctx context.Context) byte {
	b, _ := n.read(ctx, serviceLevelID)[0].(byte)
	return b
}

func (n *uaNode) failover(ctx context.Context) (*ua.CallMethodResult, error) {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return n.c.Call(cctx, &ua.CallMethodRequest{ObjectID: n.pair("Pair"), MethodID: n.pair("Pair/Failover")})
}

// TestOPCUAEndpoint watches a real pair through its nodes' OPC UA
// endpoints with a gopcua client: ServiceLevel 255 on the active and 200
// on the READY standby, RedundancySupport Hot, the partner's ServerUri,
// the pair's role and health variables; then switches the pair over with
// the Failover method, called first on the standby's endpoint (forwarded
// to the active) and then on the new active's, and sees ServiceLevel
// (read and subscribed) and roles swap each time.
func TestOPCUAEndpoint(t *testing.T) {
	start := time.Now()
	const mappings = 4
	// Without an arbiter, the nodes serving their OPC UA endpoints.
	p := startPair(t, mappings, pairOpts{noArbiter: true, nodeArgs: []string{"--opcua", "127.0.0.1:0"}})
	active, epoch := p.waitReady(t, 90*time.Second)
	standby := map[string]string{"a": "b", "b": "a"}[active]
	t.Logf("pair up in %v: active %s epoch %d", time.Since(start).Round(time.Millisecond), active, epoch)

	ctx := harness.Context(t)
	eps := map[string]*uaNode{}
	for _, id := range []string{"a", "b"} {
		eps[id] = dialNode(t, ctx, p.nodes[id].Ready("opcua"))
	}

	// waitLevels waits until the active reads 255 and the standby 200.
	waitLevels := func(active, standby string) {
		t.Helper()
		var la, ls byte
		if !harness.WaitFor(30*time.Second, func() bool {
			la, ls = eps[active].serviceLevel(ctx), eps[standby].serviceLevel(ctx)
			return la == 255 && ls == 200
		}) {
			t.Fatalf("ServiceLevel: active %s %d, standby %s %d; want 255 and 200", active, la, standby, ls)
		}
	}
	waitLevels(active, standby)

	// The standard model and the pair's variables.
	for _, id := range []string{"a", "b"} {
		n := eps[id]
		other := map[string]string{"a": "b", "b": "a"}[id]
		role := map[bool]string{true: "active", false: "standby"}[id == active]
		var got []any
		if !harness.WaitFor(30*time.Second, func() bool {
			got = n.read(ctx, redundancySupportID, n.pair("Role"), n.pair("Active"), n.pair("Epoch"),
				n.pair("ServerUriArray"), n.pair("ServerUri"), n.pair("Servers/plc/Up"), n.pair("Servers/scada/Up"),
				n.pair("Mappings/ok"), n.pair("LastSwitchover/To"), n.pair("Ready"))
			uris, _ := got[4].([]string)
			return got[0] == int32(3) && got[1] == role && got[2] == active && got[3] == epoch &&
				slices.Equal(uris, []string{"urn:uamirror:pair:a", "urn:uamirror:pair:b"}) && got[5] == "urn:uamirror:pair:"+id &&
				got[6] == true && got[7] == true && got[8] == uint32(mappings) && got[9] == active && got[10] == true
		}) {
			t.Fatalf("node %s reads %#v; want RedundancySupport 3 (Hot), role %s, active %s, epoch %d, server URIs of a and b (partner %s), servers up, %d mappings ok, last switchover to %s, ready",
				id, got, role, active, epoch, other, mappings, active)
		}
	}

	// A subscriber to the active's ServiceLevel sees it fall on failover.
	notes := make(chan *opcua.PublishNotificationData, 16)
	sub, err := eps[active].c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 50 * time.Millisecond}, notes)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Cancel(context.Background()) }()
	if _, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth, opcua.NewMonitoredItemCreateRequestWithDefaults(serviceLevelID, ua.AttributeIDValue, 1)); err != nil {
		t.Fatal(err)
	}
	levels := make(chan byte, 16)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case n := <-notes:
				if n == nil || n.Error != nil {
					continue
				}
				if dc, ok := n.Value.(*ua.DataChangeNotification); ok {
					for _, it := range dc.MonitoredItems {
						if b, ok := it.Value.Value.Value().(byte); ok {
							select {
							case levels <- b:
							default:
							}
						}
					}
				}
			}
		}
	}()
	waitLevel := func(want func(byte) bool, what string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case b := <-levels:
				if want(b) {
					return
				}
			case <-deadline:
				t.Fatalf("subscription: no ServiceLevel notification %s", what)
			}
		}
	}
	waitLevel(func(b byte) bool { return b == 255 }, "of 255 (initial value)")

	// Failover through the standby's endpoint: forwarded to the active.
	t0 := time.Now()
	res, err := eps[standby].failover(ctx)
	if err != nil || res.StatusCode != ua.StatusOK {
		t.Fatalf("Failover on the standby %s: %v %+v", standby, err, res)
	}
	t.Logf("Failover (via standby %s) returned in %v", standby, time.Since(t0).Round(time.Millisecond))
	waitLevel(func(b byte) bool { return b < 255 }, "below 255 on the old active")
	waitLevels(standby, active)
	roles := eps[standby].read(ctx, eps[standby].pair("Role"), eps[standby].pair("Epoch"), eps[standby].pair("LastSwitchover/From"), eps[standby].pair("LastSwitchover/Reason"))
	if roles[0] != "active" || roles[1].(uint64) <= epoch || roles[2] != active || roles[3] != "manual" {
		t.Fatalf("after Failover node %s reads role, epoch, last switchover from, reason = %v; want active, > %d, %s, manual", standby, roles, epoch, active)
	}

	// An unknown method is refused per call.
	bad, err := eps[standby].c.Call(ctx, &ua.CallMethodRequest{ObjectID: eps[standby].pair("Pair"), MethodID: eps[standby].pair("Pair/Nothing")})
	if err != nil || bad.StatusCode != ua.StatusBadMethodInvalid {
		t.Fatalf("unknown method: %v %+v; want Bad_MethodInvalid", err, bad)
	}

	// And back, through the new active's own endpoint, once the old
	// active is a READY standby.
	p.waitReady(t, 60*time.Second)
	t0 = time.Now()
	res, err = eps[standby].failover(ctx)
	if err != nil || res.StatusCode != ua.StatusOK {
		t.Fatalf("Failover on the active %s: %v %+v", standby, err, res)
	}
	t.Logf("Failover (on active %s) returned in %v", standby, time.Since(t0).Round(time.Millisecond))
	waitLevels(active, standby)
	waitLevel(func(b byte) bool { return b == 255 }, "of 255 again on the first active")

	// A generic client finds it all by browsing: `uamirror browse` walks
	// Objects/Pair of a real node.
	out, err := exec.Command(harness.Binary(t), "browse", "--endpoint", p.nodes[active].Ready("opcua"),
		"nsu=urn:uamirror:pair;s=Pair", "--recursive", "--depth", "4").CombinedOutput()
	if err != nil {
		t.Fatalf("browse Pair: %v\n%s", err, out)
	}
	for _, want := range []string{"s=Role", "s=Pair/Failover", "s=Servers/plc/Up", "s=Mappings/ok", "s=LastSwitchover/Reason",
		"s=Mappings/Items/" + mapping.DeriveID(mapping.NodeRef{Server: "plc", Node: "nsu=urn:uamirror:simserver;s=v0"},
			mapping.NodeRef{Server: "scada", Node: "nsu=urn:uamirror:simserver;s=v0"}) + "/State"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("browse Pair: no %s in\n%s", want, out)
		}
	}
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}

// TestOPCUANonLoopbackNeedsSecurity: `node --opcua 0.0.0.0:PORT` without
// an admin token refuses to start (exit 2) unless --opcua-insecure
// (issue 12: an anonymous client switched the pair over through such an
// endpoint). With --admin-token-file it starts secured: no None endpoint,
// an anonymous Failover is refused with Bad_UserAccessDenied, the
// operator's is authorised (and refused by the pair only because this
// lone node has no READY standby).
func TestOPCUANonLoopbackNeedsSecurity(t *testing.T) {
	dir := t.TempDir()
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)) }
	uaPort := harness.FreePort(t)
	args := []string{"node", "--id", "a", "--data", filepath.Join(dir, "a"),
		"--member", fmt.Sprintf("id=a,role=node,raft=%s,peer=%s,admin=%s", addr(), addr(), addr()),
		"--member", fmt.Sprintf("id=b,role=node,raft=%s,peer=%s,admin=%s", addr(), addr(), addr()),
		"--opcua", fmt.Sprintf("0.0.0.0:%d", uaPort)}

	ctx, cancel := context.WithTimeout(harness.Context(t), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Binary(t), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), "needs security") {
		t.Fatalf("non-loopback --opcua without security: %v, stderr %q; want exit 2 naming the missing security", err, stderr.String())
	}

	tokenFile := filepath.Join(dir, "token")
	const token = "0123456789abcdef-opcua-token"
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	n := harness.Start(t, append(args, "--admin-token-file", tokenFile)...)
	if n.Ready("opcua") == "" {
		t.Fatal("no opcua endpoint in the ready line")
	}
	local := fmt.Sprintf("opc.tcp://127.0.0.1:%d", uaPort)
	failover := func(auth opcua.Option, tok ua.UserTokenType) ua.StatusCode {
		return secureFailover(t, ctx, local, auth, tok)
	}
	if got := failover(opcua.AuthAnonymous(), ua.UserTokenTypeAnonymous); got != ua.StatusBadUserAccessDenied {
		t.Errorf("anonymous Failover: %v, want Bad_UserAccessDenied", got)
	}
	if got := failover(opcua.AuthUsername("operator", token), ua.UserTokenTypeUserName); got == ua.StatusBadUserAccessDenied || got == ua.StatusOK {
		t.Errorf("operator Failover on a lone node: %v, want it authorised and refused by the pair (no READY standby)", got)
	}
}

// secureFailover calls Failover on the node's OPC UA endpoint at local
// over Basic256Sha256 SignAndEncrypt (failing the test if the endpoint
// offers None) and returns the call's status.
func secureFailover(t *testing.T, ctx context.Context, local string, auth opcua.Option, tok ua.UserTokenType) ua.StatusCode {
	t.Helper()
	eps, err := opcua.GetEndpoints(ctx, local)
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		if ep.SecurityMode == ua.MessageSecurityModeNone {
			t.Fatalf("secured --opcua offers %s %s", ep.SecurityPolicyURI, ep.SecurityMode)
		}
	}
	ep, err := opcua.SelectEndpoint(eps, "Basic256Sha256", ua.MessageSecurityModeSignAndEncrypt)
	if err != nil {
		t.Fatal(err)
	}
	cder, ckey, err := pki.GenerateCertificate(pki.CertTemplate{AppURI: "urn:uamirror:test:client", Hosts: []string{"localhost"},
		NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := opcua.NewClient(local, opcua.AutoReconnect(false), auth, opcua.SecurityFromEndpoint(ep, tok),
		opcua.Certificate(cder), opcua.PrivateKey(ckey), opcua.ApplicationURI("urn:uamirror:test:client"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close(context.Background())
	ns, err := c.FindNamespace(ctx, "urn:uamirror:pair")
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Call(ctx, &ua.CallMethodRequest{ObjectID: ua.NewStringNodeID(ns, "Pair"), MethodID: ua.NewStringNodeID(ns, "Pair/Failover")})
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode
}

// TestOPCUASecuredFailover: a pair whose admin API has a token serves a
// secured OPC UA endpoint on each node. An anonymous Failover is refused
// (Bad_UserAccessDenied) and changes nothing; the operator's Failover
// called on the standby is forwarded to the active with the node's token
// and switches the pair over.
func TestOPCUASecuredFailover(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	const token = "secured-failover-token-0123456789"
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startPair(t, 4, pairOpts{noArbiter: true, nodeArgs: []string{"--opcua", "127.0.0.1:0", "--admin-token-file", tokenFile}})
	active, epoch := p.waitReady(t, 90*time.Second)
	standby := map[string]string{"a": "b", "b": "a"}[active]
	ctx := harness.Context(t)
	local := func(id string) string { return p.nodes[id].Ready("opcua") }

	if got := secureFailover(t, ctx, local(active), opcua.AuthAnonymous(), ua.UserTokenTypeAnonymous); got != ua.StatusBadUserAccessDenied {
		t.Fatalf("anonymous Failover: %v, want Bad_UserAccessDenied", got)
	}
	if st := p.status(active); st.Role != "active" || st.Epoch != epoch {
		t.Fatalf("after the refused Failover: %s is %s at epoch %d (was active at %d)", active, st.Role, st.Epoch, epoch)
	}
	if got := secureFailover(t, ctx, local(standby), opcua.AuthUsername("operator", token), ua.UserTokenTypeUserName); got != ua.StatusOK {
		t.Fatalf("operator Failover on the standby: %v, want Good", got)
	}
	if !harness.WaitFor(30*time.Second, func() bool {
		st := p.status(standby)
		return st.Role == "active" && st.Epoch > epoch
	}) {
		t.Fatalf("the operator's Failover did not make %s active: %+v", standby, p.status(standby))
	}
}
