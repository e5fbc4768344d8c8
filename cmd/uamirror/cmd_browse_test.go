package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/simserver"
	"github.com/uamirror/uamirror/test/harness"
)

// startSim starts an in-process simulation server (variable types cycle
// through every type: v0 Boolean, v1 SByte, …).
func startSim(t *testing.T, vars int) *simserver.Server {
	t.Helper()
	s, err := simserver.New(simserver.Config{Vars: vars, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(harness.Context(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestBrowse(t *testing.T) {
	sim := startSim(t, 12)
	ep := sim.Endpoint()
	cfg := filepath.Join(t.TempDir(), "mirror.yml")
	yml := fmt.Sprintf("servers:\n  - name: plc\n    endpoints: [%q]\n  - name: scada\n    endpoints: [%q]\nmappings:\n"+
		"  - source: {server: plc, node: \"nsu=urn:uamirror:simserver;s=v1\"}\n    target: {server: scada, node: \"nsu=urn:uamirror:simserver;s=v1\"}\n", ep, ep)
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	const sim0 = "nsu=urn:uamirror:simserver;s="
	tests := []struct {
		name  string
		args  []string
		lines []string // each must appear as a line's fields (whitespace-collapsed)
		not   []string // substrings that must not appear
	}{
		{"objects by default", []string{"browse", "--endpoint", ep},
			[]string{sim0 + "Sim Sim Object -", "i=2253 Server Object -"}, []string{sim0 + "v0"}},
		{"the Sim folder", []string{"browse", "--endpoint", ep, sim0 + "Sim"},
			[]string{sim0 + "v0 v0 Variable Boolean", sim0 + "v10 v10 Variable Double", sim0 + "v11 v11 Variable String"}, nil},
		{"index form", []string{"browse", "--endpoint", ep, fmt.Sprintf("ns=%d;s=Sim", sim.NamespaceIndex())},
			[]string{sim0 + "v5 v5 Variable Int32"}, nil},
		{"recursive", []string{"browse", "--endpoint", ep, "--recursive", "--depth", "2"},
			[]string{sim0 + "Sim Sim Object -", sim0 + "v3 v3 Variable Int16", "i=2267 ServiceLevel Variable Byte"}, nil},
		{"depth 1 stays at the children", []string{"browse", "--endpoint", ep, "-r", "--depth", "1"},
			[]string{sim0 + "Sim Sim Object -"}, []string{sim0 + "v3"}},
		{"a server of a config", []string{"browse", "plc", "--config", cfg, sim0 + "Sim"},
			[]string{sim0 + "v7 v7 Variable Int64"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			got := map[string]bool{}
			for _, l := range strings.Split(out, "\n") {
				got[strings.Join(strings.Fields(l), " ")] = true
			}
			for _, want := range tt.lines {
				if !got[want] {
					t.Errorf("no line %q in:\n%s", want, out)
				}
			}
			for _, s := range tt.not {
				if strings.Contains(out, s) {
					t.Errorf("%q listed:\n%s", s, out)
				}
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		out, errOut, code := runCLI(t, "browse", "--endpoint", ep, "-r", "--depth", "2", "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var nodes []browsedNode
		if err := json.Unmarshal([]byte(out), &nodes); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, n := range nodes {
			if n.NodeID == sim0+"v10" {
				found = n.Path == "Sim/v10" && n.Depth == 2 && n.DataType == "Double" && n.NodeClass == "Variable"
			}
		}
		if !found {
			t.Errorf("v10 not listed as Sim/v10, depth 2, Double: %s", out)
		}
	})

	errs := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no server", []string{"browse"}, exitUsage, "give --endpoint URL"},
		{"both", []string{"browse", "--endpoint", ep, "--config", cfg}, exitUsage, "not both"},
		{"unknown server", []string{"browse", "mes", "--config", cfg}, exitUsage, "servers: plc, scada"},
		{"bad node id", []string{"browse", "--endpoint", ep, "Sim"}, exitUsage, "NODE"},
		{"unknown namespace", []string{"browse", "--endpoint", ep, "nsu=urn:nope;s=x"}, exitFailed, "urn:nope"},
		{"unknown node", []string{"browse", "--endpoint", ep, sim0 + "nope"}, exitFailed, "BadNodeIDUnknown"},
		{"unreachable", []string{"browse", "--endpoint", "opc.tcp://127.0.0.1:1", "--timeout", "3s"}, exitNoNode, "cannot connect"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.msg) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tt.code, errOut, tt.msg)
			}
		})
	}
}
