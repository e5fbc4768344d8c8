package diagnostics_test

import (
	"testing"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/harness"
)

// setStats is an engine's stats with one server set of two members, the
// second in use.
func setStats() bridge.Stats {
	return bridge.Stats{States: map[bridge.State]int{}, Servers: []bridge.ServerStats{{
		Name: "plc", State: bridge.Connected, Endpoint: "opc.tcp://h2:4840", ServiceLevel: 255, Switches: 2,
		Members: []bridge.MemberStats{
			{Endpoint: "opc.tcp://h1:4840", State: bridge.Connected, ServiceLevel: 0},
			{Endpoint: "opc.tcp://h2:4840", State: bridge.Connected, ServiceLevel: 255, InUse: true, Reason: "member in use left the Healthy range"},
		},
	}}}
}

// TestServerSetMembers: the summary and the metrics show every member of
// a redundant server set, its ServiceLevel, which is in use and why.
func TestServerSetMembers(t *testing.T) {
	url := serve(t, diagnostics.NewAdmin(activePair("a"), engineFunc(fixedEngine{setStats()}), zap.NewNop()))
	var s diagnostics.Summary
	getJSON(t, url+"/api/v1/summary", &s)
	if len(s.Servers) != 1 || len(s.Servers[0].Members) != 2 || s.Servers[0].Switches != 2 {
		t.Fatalf("servers %+v", s.Servers)
	}
	m0, m1 := s.Servers[0].Members[0], s.Servers[0].Members[1]
	if m0.InUse || m0.ServiceLevel != 0 || !m1.InUse || m1.ServiceLevel != 255 || m1.Reason == "" || m1.State != "connected" {
		t.Fatalf("members %+v %+v", m0, m1)
	}
	fams := scrape(t, url)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"uamirror_server_member_service_level", []string{"server", "plc", "endpoint", "opc.tcp://h1:4840"}, 0},
		{"uamirror_server_member_service_level", []string{"server", "plc", "endpoint", "opc.tcp://h2:4840"}, 255},
		{"uamirror_server_member_in_use", []string{"server", "plc", "endpoint", "opc.tcp://h1:4840"}, 0},
		{"uamirror_server_member_in_use", []string{"server", "plc", "endpoint", "opc.tcp://h2:4840"}, 1},
		{"uamirror_server_member_switches_total", []string{"server", "plc"}, 2},
	} {
		if v, ok := value(fams, c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
}

// TestServerSetUAFace: the pair's OPC UA face browses and reads every
// member of a server set under Servers/<name>/Members/<i>.
func TestServerSetUAFace(t *testing.T) {
	ctx := harness.Context(t)
	pair := activePair("a")
	pair.st.Health = &redundancy.Health{Ready: true, Servers: []redundancy.ServerHealth{{Name: "plc", Up: true, ServiceLevel: 255}}}
	u, err := diagnostics.NewUAServer(diagnostics.UAServerConfig{Addr: "127.0.0.1:0", Pair: pair,
		Engine: engineFunc(fixedEngine{setStats()}), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	c := dialUA(t, ctx, u.Endpoint())
	ns, err := c.FindNamespace(ctx, diagnostics.UANamespaceURI)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Browse(ctx, &ua.BrowseRequest{NodesToBrowse: []*ua.BrowseDescription{{
		NodeID: ua.NewStringNodeID(ns, "Servers/plc/Members"), BrowseDirection: ua.BrowseDirectionForward,
		ReferenceTypeID: ua.NewNumericNodeID(0, id.HierarchicalReferences), IncludeSubtypes: true, ResultMask: uint32(ua.BrowseResultMaskAll)}}})
	if err != nil || res.Results[0].StatusCode != ua.StatusOK || len(res.Results[0].References) != 2 {
		t.Fatalf("browse Members: %v %+v", err, res)
	}
	var req ua.ReadRequest
	for _, n := range []string{"Servers/plc/Members/0/InUse", "Servers/plc/Members/1/InUse", "Servers/plc/Members/0/ServiceLevel",
		"Servers/plc/Members/1/Endpoint", "Servers/plc/Members/1/Reason", "Servers/plc/Members/2/InUse"} {
		req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: ua.NewStringNodeID(ns, n), AttributeID: ua.AttributeIDValue})
	}
	rr, err := c.Read(ctx, &req)
	if err != nil {
		t.Fatal(err)
	}
	got := func(i int) any { return rr.Results[i].Value.Value() }
	if got(0) != false || got(1) != true || got(2) != int32(0) || got(3) != "opc.tcp://h2:4840" || got(4) == "" ||
		rr.Results[5].Status == ua.StatusOK {
		t.Fatalf("members read: %v %v %v %v %v %v", got(0), got(1), got(2), got(3), got(4), rr.Results[5].Status)
	}
}
