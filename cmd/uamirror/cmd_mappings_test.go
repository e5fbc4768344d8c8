package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/harness"
)

// standalonePair is a Pair for an admin API without a pair: a single
// active node.
type standalonePair struct{}

func (standalonePair) Status() redundancy.Status {
	return redundancy.Status{Node: "solo", Role: "active", Active: "solo", Epoch: 1, Ready: true}
}
func (standalonePair) Events() []redundancy.Event                     { return nil }
func (standalonePair) Switchover(context.Context, string, bool) error { return nil }
func (standalonePair) ForcePromote(context.Context) error             { return nil }
func (standalonePair) ApplyConfig(context.Context, []byte, string) (mapping.Delta, error) {
	return mapping.Delta{}, nil
}

func TestMappingsList(t *testing.T) {
	plc, scada := startSim(t, 16), startSim(t, 16)
	cfg := &mapping.Config{Servers: []mapping.Server{
		{Name: "plc", Endpoints: []string{plc.Endpoint()}},
		{Name: "scada", Endpoints: []string{scada.Endpoint()}},
	}}
	add := func(src, dst string, dir mapping.Direction) {
		m := mapping.Mapping{Source: mapping.NodeRef{Server: "plc", Node: src}, Target: mapping.NodeRef{Server: "scada", Node: dst}, Direction: dir}
		m.ID = mapping.DeriveID(m.Source, m.Target)
		cfg.Mappings = append(cfg.Mappings, m)
	}
	n := func(i int) string { return fmt.Sprintf("nsu=urn:uamirror:simserver;s=v%d", i) }
	add(n(10), n(10), "")                              // Double → Double
	add(n(11), n(11), "")                              // String → String
	add(n(5), n(5), mapping.Write)                     // Int32, scada → plc: a reverse flow
	add("nsu=urn:uamirror:simserver;s=nope", n(6), "") // quarantined
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e, err := bridge.New(bridge.Options{Config: cfg, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = e.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	harness.Eventually(t, 45*time.Second, "mappings settled", func() bool {
		st := e.Stats()
		return st.States[bridge.StateOK] == 3 && st.States[bridge.StateQuarantined] == 1
	})
	srv := httptest.NewServer(diagnostics.NewAdmin(standalonePair{}, func() diagnostics.Engine { return e }, zap.NewNop()).Handler())
	defer srv.Close()

	out, errOut, code := runCLI(t, "mappings", "list", "--node", srv.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "#") || lines[5] != "4 flows" {
		t.Fatalf("table:\n%s", out)
	}
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"plc → scada ok", "scada → plc (rev) ok", "plc → scada quarantined - - - - source:", "Double", "String", "Int32"} {
		if !strings.Contains(flat, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}

	out, errOut, code = runCLI(t, "mappings", "list", "--node", srv.URL, "--state", "quarantined", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var items []diagnostics.MappingItem
	if err := json.Unmarshal([]byte(out), &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Index != 3 || items[0].Reason == "" {
		t.Errorf("quarantined: %+v", items)
	}

	out, _, code = runCLI(t, "mappings", "list", "--node", srv.URL, "--server", "plc", "--state", "ok")
	if code != 0 || !strings.Contains(out, "3 flows") {
		t.Errorf("--server plc --state ok: exit %d\n%s", code, out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	errs := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--state", "fine"}, exitUsage, `state "fine"`},
		{[]string{"--server", "mes"}, exitUsage, "servers: plc, scada"},
		{[]string{"-o", "yaml"}, exitUsage, "--output"},
	}
	for _, tt := range errs {
		_, errOut, code := runCLI(t, append([]string{"mappings", "list", "--node", srv.URL}, tt.args...)...)
		if code != tt.code || !strings.Contains(errOut, tt.msg) {
			t.Errorf("%v: exit %d (want %d), %q", tt.args, code, tt.code, errOut)
		}
	}
	if _, errOut, code := runCLI(t, "mappings", "list", "--node", dead); code != exitNoNode {
		t.Errorf("node down: exit %d (want %d): %s", code, exitNoNode, errOut)
	}
}
