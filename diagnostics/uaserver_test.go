package diagnostics_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/harness"
)

func TestServiceLevelFor(t *testing.T) {
	up := &redundancy.Health{Ready: true, Servers: []redundancy.ServerHealth{{Name: "plc", Up: true}}}
	down := &redundancy.Health{Servers: []redundancy.ServerHealth{{Name: "plc", Up: true}, {Name: "scada"}}}
	for _, tc := range []struct {
		name string
		st   redundancy.Status
		want byte
	}{
		{"active healthy", redundancy.Status{Role: "active", Ready: true, Health: up}, 255},
		{"active not writing", redundancy.Status{Role: "active", Health: up}, 150},
		{"active with a server down", redundancy.Status{Role: "active", Ready: true, Health: down}, 150},
		{"standby ready", redundancy.Status{Role: "standby", Ready: true, Health: up}, 200},
		{"standby not ready", redundancy.Status{Role: "standby", Health: down}, 100},
		{"arbiter", redundancy.Status{Role: "arbiter", Ready: true}, 0},
		{"no role", redundancy.Status{}, 0},
		{"unknown role", redundancy.Status{Role: "confused"}, 1},
	} {
		if got := diagnostics.ServiceLevelFor(tc.st); got != tc.want {
			t.Errorf("%s: ServiceLevel %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestUAServer serves a fake pair member's endpoint in process and reads,
// writes and calls it with a gopcua client.
func TestUAServer(t *testing.T) {
	ctx := harness.Context(t)
	pair := activePair("a")
	pair.switchErr = fmt.Errorf("switchover: %w", redundancy.ErrStandbyNotReady)
	u, err := diagnostics.NewUAServer(diagnostics.UAServerConfig{Addr: "127.0.0.1:0", Pair: pair,
		Interval: 20 * time.Millisecond, Logger: zap.NewNop()})
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

	c := dialUA(t, ctx, u.Endpoint())
	ns, err := c.FindNamespace(ctx, diagnostics.UANamespaceURI)
	if err != nil {
		t.Fatal(err)
	}
	pn := func(s string) *ua.NodeID { return ua.NewStringNodeID(ns, s) }
	read := func(attr ua.AttributeID, nids ...*ua.NodeID) []*ua.DataValue {
		t.Helper()
		req := &ua.ReadRequest{}
		for _, n := range nids {
			req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: n, AttributeID: attr})
		}
		res, err := c.Read(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res.Results
	}
	sl := ua.NewNumericNodeID(0, id.Server_ServiceLevel)
	vals := read(ua.AttributeIDValue, sl, ua.NewNumericNodeID(0, id.Server_ServerRedundancy_RedundancySupport),
		pn("Role"), pn("Epoch"), pn("ServerUriArray"), pn("LastSwitchover/From"), pn("Mappings/ok"), pn("Nothing"))
	want := []any{byte(255), int32(ua.RedundancySupportHot), "active", uint64(3), []string{"urn:uamirror:pair:a", "urn:uamirror:pair:b"}, "b", uint32(0)}
	for k, w := range want {
		if vals[k].Status != ua.StatusOK || fmt.Sprint(vals[k].Value.Value()) != fmt.Sprint(w) {
			t.Errorf("value %d: %v %v, want %v", k, vals[k].Status, vals[k].Value, w)
		}
	}
	if vals[7].Status != ua.StatusBadNodeIDUnknown {
		t.Errorf("unknown variable: %v, want Bad_NodeIdUnknown", vals[7].Status)
	}
	if dt := read(ua.AttributeIDDataType, pn("Epoch"))[0]; dt.Value == nil || dt.Value.NodeID().IntID() != id.UInt64 {
		t.Errorf("Epoch DataType %v, want UInt64", dt.Value)
	}
	wres, err := c.Write(ctx, &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{
		{NodeID: pn("Role"), AttributeID: ua.AttributeIDValue,
			Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant("standby")}},
		{NodeID: sl, AttributeID: ua.AttributeIDValue,
			Value: &ua.DataValue{EncodingMask: ua.DataValueValue, Value: ua.MustVariant(byte(1))}},
	}})
	if err != nil || wres.Results[0] != ua.StatusBadNotWritable || wres.Results[1] != ua.StatusBadNotWritable {
		t.Errorf("write Role and ServiceLevel: %v %v, want Bad_NotWritable twice", err, wres)
	}

	// Failover refused: a Bad status and the reason as output.
	res, err := c.Call(ctx, &ua.CallMethodRequest{ObjectID: pn("Pair"), MethodID: pn("Pair/Failover")})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != ua.StatusBadInvalidState || len(res.OutputArguments) != 1 ||
		!strings.Contains(res.OutputArguments[0].Value().(string), "standby not ready") {
		t.Errorf("Failover: %v %v, want Bad_InvalidState and the reason", res.StatusCode, res.OutputArguments)
	}
	pair.mu.Lock()
	pair.switchErr = nil
	pair.mu.Unlock()
	if res, err := c.Call(ctx, &ua.CallMethodRequest{ObjectID: pn("Pair"), MethodID: pn("Pair/Failover")}); err != nil || res.StatusCode != ua.StatusOK {
		t.Errorf("Failover: %v %v, want Good", err, res)
	}
	pair.mu.Lock()
	calls := pair.switchover
	pair.mu.Unlock()
	if calls != 2 {
		t.Errorf("Switchover called %d times, want 2", calls)
	}

	// The ServiceLevel follows the status.
	pair.mu.Lock()
	pair.st.Role, pair.st.Ready = "standby", false
	pair.mu.Unlock()
	var got byte
	if !harness.WaitFor(5*time.Second, func() bool {
		got, _ = read(ua.AttributeIDValue, sl)[0].Value.Value().(byte)
		return got == 100
	}) {
		t.Errorf("ServiceLevel %d, want 100 (standby not ready)", got)
	}
	if err := u.Close(); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Close: %v", err)
	}
}

// TestUAServerBrowse walks the pair's endpoint from Objects with a gopcua
// client, as a generic OPC UA client would, and reads the per-server and
// per-mapping health it finds there; ServerUriArray is found under
// Server.ServerRedundancy.
func TestUAServerBrowse(t *testing.T) {
	ctx := harness.Context(t)
	e, _, _ := testEngine(t, 3)
	pair := activePair("a")
	pair.st.Health = &redundancy.Health{Ready: true, Servers: []redundancy.ServerHealth{
		{Name: "plc", Up: true, ServiceLevel: 255}, {Name: "scada", Up: false}}}
	u, err := diagnostics.NewUAServer(diagnostics.UAServerConfig{Addr: "127.0.0.1:0", Pair: pair,
		Engine: engineFunc(e), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	c := dialUA(t, ctx, u.Endpoint())

	// browse returns BrowseName → reference of nid's references in dir.
	browse := func(nid *ua.NodeID, dir ua.BrowseDirection) map[string]*ua.ReferenceDescription {
		t.Helper()
		res, err := c.Browse(ctx, &ua.BrowseRequest{NodesToBrowse: []*ua.BrowseDescription{{
			NodeID: nid, BrowseDirection: dir, ReferenceTypeID: ua.NewNumericNodeID(0, id.HierarchicalReferences),
			IncludeSubtypes: true, ResultMask: uint32(ua.BrowseResultMaskAll)}}})
		if err != nil {
			t.Fatalf("browse %v: %v", nid, err)
		}
		if res.Results[0].StatusCode != ua.StatusOK {
			t.Fatalf("browse %v: %v", nid, res.Results[0].StatusCode)
		}
		out := map[string]*ua.ReferenceDescription{}
		for _, r := range res.Results[0].References {
			out[r.BrowseName.Name] = r
		}
		return out
	}
	child := func(parent *ua.NodeID, name string, class ua.NodeClass) *ua.NodeID {
		t.Helper()
		kids := browse(parent, ua.BrowseDirectionForward)
		r, ok := kids[name]
		if !ok {
			names := make([]string, 0, len(kids))
			for n := range kids {
				names = append(names, n)
			}
			t.Fatalf("%v has no child %q; children: %v", parent, name, names)
		}
		if r.NodeClass != class {
			t.Errorf("%s: node class %v, want %v", name, r.NodeClass, class)
		}
		return r.NodeID.NodeID
	}
	readOne := func(nid *ua.NodeID, attr ua.AttributeID) *ua.DataValue {
		t.Helper()
		res, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: nid, AttributeID: attr}}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Results[0]
	}

	pairObj := child(ua.NewNumericNodeID(0, id.ObjectsFolder), "Pair", ua.NodeClassObject)
	top := browse(pairObj, ua.BrowseDirectionForward)
	for _, n := range []string{"Role", "Active", "Epoch", "Ready", "ServerUri", "Servers", "Mappings", "LastSwitchover", "Failover"} {
		if _, ok := top[n]; !ok {
			t.Errorf("Pair has no child %q", n)
		}
	}
	if r := top["Failover"]; r != nil {
		if r.NodeClass != ua.NodeClassMethod {
			t.Errorf("Failover: class %v, want Method", r.NodeClass)
		}
		if dv := readOne(r.NodeID.NodeID, ua.AttributeIDExecutable); dv.Value == nil || dv.Value.Value() != true {
			t.Errorf("Failover Executable: %v", dv.Value)
		}
	}
	if dv := readOne(child(pairObj, "Role", ua.NodeClassVariable), ua.AttributeIDValue); dv.Value.Value() != "active" {
		t.Errorf("Role: %v", dv.Value)
	}
	// Versions (#17): this member's, the pair's protocol, every member's.
	if dv := readOne(child(pairObj, "Version", ua.NodeClassVariable), ua.AttributeIDValue); dv.Value.Value() != "v0.2.0 (protocol 1–2)" {
		t.Errorf("Version: %v", dv.Value)
	}
	if dv := readOne(child(pairObj, "PairProtocol", ua.NodeClassVariable), ua.AttributeIDValue); dv.Value.Value() != int32(1) {
		t.Errorf("PairProtocol: %v", dv.Value)
	}
	dv := readOne(child(pairObj, "MemberVersions", ua.NodeClassVariable), ua.AttributeIDValue)
	if mv, _ := dv.Value.Value().([]string); len(mv) != 2 || mv[0] != "a=v0.2.0 (protocol 1–2)" || !strings.HasPrefix(mv[1], "b=v0.1.0 or older") {
		t.Errorf("MemberVersions: %v", dv.Value)
	}

	// Per server.
	scada := child(child(pairObj, "Servers", ua.NodeClassObject), "scada", ua.NodeClassObject)
	if dv := readOne(child(scada, "Up", ua.NodeClassVariable), ua.AttributeIDValue); dv.Value.Value() != false {
		t.Errorf("Servers/scada/Up: %v, want false", dv.Value)
	}
	// Per mapping: three ok, one quarantined, one disabled.
	items := child(child(pairObj, "Mappings", ua.NodeClassObject), "Items", ua.NodeClassObject)
	list := browse(items, ua.BrowseDirectionForward)
	if len(list) != 5 {
		t.Errorf("Mappings/Items: %d items, want 5", len(list))
	}
	states := map[string]int{}
	for name, r := range list {
		st := child(r.NodeID.NodeID, "State", ua.NodeClassVariable)
		s, _ := readOne(st, ua.AttributeIDValue).Value.Value().(string)
		states[s]++
		if s == "ok" {
			v := readOne(child(r.NodeID.NodeID, "Value", ua.NodeClassVariable), ua.AttributeIDValue)
			if v.Status != ua.StatusOK || v.Value == nil {
				t.Errorf("item %s Value: %v %v", name, v.Status, v.Value)
			}
			if from := readOne(child(r.NodeID.NodeID, "From", ua.NodeClassVariable), ua.AttributeIDValue); from.Value.Value() != "plc" {
				t.Errorf("item %s From: %v", name, from.Value)
			}
		}
		// The inverse reference leads back to Items.
		if up := browse(st, ua.BrowseDirectionInverse); up[name] == nil {
			t.Errorf("item %s State: no inverse reference to its item (got %v)", name, up)
		}
	}
	if states["ok"] != 3 || states["quarantined"] != 1 || states["disabled"] != 1 {
		t.Errorf("item states %v, want 3 ok, 1 quarantined, 1 disabled", states)
	}

	// ServerUriArray (this server included) as a Property of
	// Server.ServerRedundancy (Part 5, 6.3.9).
	red := browse(ua.NewNumericNodeID(0, id.Server_ServerRedundancy), ua.BrowseDirectionForward)
	r, ok := red["ServerUriArray"]
	switch {
	case !ok:
		t.Fatalf("Server.ServerRedundancy has no ServerUriArray: %v", red)
	case r.BrowseName.NamespaceIndex != 0 || r.ReferenceTypeID.IntID() != id.HasProperty:
		t.Errorf("ServerUriArray: browse name %v, reference %v; want 0:ServerUriArray by HasProperty", r.BrowseName, r.ReferenceTypeID)
	}
	if dv := readOne(r.NodeID.NodeID, ua.AttributeIDValue); fmt.Sprint(dv.Value.Value()) != "[urn:uamirror:pair:a urn:uamirror:pair:b]" {
		t.Errorf("ServerUriArray: %v", dv.Value)
	}
	if up := browse(r.NodeID.NodeID, ua.BrowseDirectionInverse); up["ServerRedundancy"] == nil {
		t.Errorf("ServerUriArray: no inverse reference to ServerRedundancy: %v", up)
	}
}

// dialUA connects a gopcua client (security None) to endpoint; the test's
// cleanup closes it.
func dialUA(t *testing.T, ctx context.Context, endpoint string) *opcua.Client {
	t.Helper()
	c, err := opcua.NewClient(endpoint, opcua.AutoReconnect(false), opcua.SecurityMode(ua.MessageSecurityModeNone))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}
