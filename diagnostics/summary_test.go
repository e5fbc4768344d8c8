package diagnostics_test

import (
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/redundancy"
)

func TestSummary(t *testing.T) {
	e, _, _ := testEngine(t, 3)
	url := serve(t, diagnostics.NewAdmin(activePair("a"), engineFunc(e), zap.NewNop()))
	var s diagnostics.Summary
	getJSON(t, url+"/api/v1/summary", &s)
	if !s.Engine || s.Node != "a" || s.Role != "active" || s.Epoch != 3 || len(s.Servers) != 2 {
		t.Fatalf("summary: %+v", s)
	}
	if s.Mappings.Total != 5 || s.Mappings.States["ok"] != 3 || s.Mappings.States["quarantined"] != 1 || s.Mappings.States["disabled"] != 1 {
		t.Errorf("mapping counts: %+v", s.Mappings)
	}
	if len(s.Mappings.Problems) != 1 || s.Mappings.Problems[0].State != "quarantined" || s.Mappings.Problems[0].Reason == "" {
		t.Errorf("problems: %+v", s.Mappings.Problems)
	}
	if s.Totals.Writes == 0 || s.Totals.Notifications == 0 || s.Servers[0].State != "connected" {
		t.Errorf("totals %+v servers %+v", s.Totals, s.Servers)
	}
	if len(s.Latency.BoundsMS) != len(bridge.LatencyBounds) || len(s.Latency.Counts) != len(bridge.LatencyBounds)+1 || s.Latency.Count == 0 {
		t.Errorf("latency %+v", s.Latency)
	}
	// Rates are differences of totals: they only grow.
	var s2 diagnostics.Summary
	getJSON(t, url+"/api/v1/summary", &s2)
	if s2.Totals.Writes < s.Totals.Writes || !s2.Time.After(s.Time) {
		t.Errorf("second summary went back: %+v then %+v", s.Totals, s2.Totals)
	}
}

func TestSummaryWithoutEngine(t *testing.T) {
	url := serve(t, diagnostics.NewAdmin(activePair("arb"), nil, zap.NewNop()))
	var s diagnostics.Summary
	getJSON(t, url+"/api/v1/summary", &s)
	if s.Engine || s.Servers == nil || s.Mappings.Problems == nil {
		t.Errorf("summary without engine: %+v (lists must be [] for the page)", s)
	}
}

func TestPairView(t *testing.T) {
	// Three members: a and b serve their admin API, c's address is dead.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	pa, pb := activePair("a"), activePair("b")
	pb.st.Role, pb.st.Active = "standby", "a"
	sa := httptest.NewServer(diagnostics.NewAdmin(pa, nil, zap.NewNop()).Handler())
	defer sa.Close()
	sb := httptest.NewServer(diagnostics.NewAdmin(pb, nil, zap.NewNop()).Handler())
	defer sb.Close()
	members := []redundancy.MemberStatus{
		{ID: "a", Role: redundancy.RoleNode, Admin: strings.TrimPrefix(sa.URL, "http://"), Link: "self"},
		{ID: "b", Role: redundancy.RoleNode, Admin: strings.TrimPrefix(sb.URL, "http://"), Link: "up"},
		{ID: "c", Role: redundancy.RoleArbiter, Admin: deadAddr, Link: "down"},
	}
	pa.st.Members, pb.st.Members = members, members
	start := time.Now()
	var v diagnostics.PairView
	getJSON(t, sa.URL+"/api/v1/pair", &v)
	if time.Since(start) > 5*time.Second {
		t.Errorf("pair view took %v", time.Since(start))
	}
	if v.Self.Node != "a" || len(v.Members) != 3 {
		t.Fatalf("pair view: %+v", v)
	}
	if m := v.Members[0]; m.Status == nil || m.Status.Role != "active" {
		t.Errorf("self: %+v", m)
	}
	if m := v.Members[1]; m.Status == nil || m.Status.Role != "standby" || m.Status.Node != "b" || m.Link != "up" {
		t.Errorf("b: %+v", m)
	}
	if m := v.Members[2]; m.Status != nil || !strings.Contains(m.Error, "unreachable") || m.Link != "down" {
		t.Errorf("c: %+v", m)
	}
}
