package diagnostics_test

import (
	"testing"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/diagnostics"
)

// TestServerSetMembers: the summary and the metrics show every member of
// a redundant server set, its ServiceLevel, which is in use and why.
func TestServerSetMembers(t *testing.T) {
	st := bridge.Stats{States: map[bridge.State]int{}, Servers: []bridge.ServerStats{{
		Name: "plc", State: bridge.Connected, Endpoint: "opc.tcp://h2:4840", ServiceLevel: 255, Switches: 2,
		Members: []bridge.MemberStats{
			{Endpoint: "opc.tcp://h1:4840", State: bridge.Connected, ServiceLevel: 0},
			{Endpoint: "opc.tcp://h2:4840", State: bridge.Connected, ServiceLevel: 255, InUse: true, Reason: "member in use left the Healthy range"},
		},
	}}}
	url := serve(t, diagnostics.NewAdmin(activePair("a"), engineFunc(fixedEngine{st}), zap.NewNop()))
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
