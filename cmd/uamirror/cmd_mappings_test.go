package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// TestMappingsImportIntoKeepsCommentsAndConfirms: import --into replaces
// only the mappings (the file's comments stay), and a header-only CSV
// (which would empty the mirror) needs --confirm.
func TestMappingsImportIntoKeepsCommentsAndConfirms(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "mirror.yaml")
	const base = `# Plant mirror: owned by the controls team.
servers:
  - name: plc # line 3
    endpoints: ["opc.tcp://127.0.0.1:4840"]
  - name: scada
    endpoints: ["opc.tcp://127.0.0.1:4841"]
# From mappings.csv.
mappings:
  - source: {server: plc, node: "ns=1;s=a"}
    target: {server: scada, node: "ns=1;s=a"}
  - source: {server: plc, node: "ns=1;s=b"}
    target: {server: scada, node: "ns=1;s=b"}
`
	if err := os.WriteFile(cfgPath, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	header := "id,source_server,source_node,target_server,target_node\n"
	empty := filepath.Join(dir, "empty.csv")
	rows := filepath.Join(dir, "rows.csv")
	if err := os.WriteFile(empty, []byte(header), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rows, []byte(header+",plc,ns=1;s=a,scada,ns=1;s=a\n,plc,ns=1;s=c,scada,ns=1;s=c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		b, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	_, errOut, code := runCLI(t, "mappings", "import", empty, "--into", cfgPath)
	if code != 1 || !strings.Contains(errOut, "--confirm") || read() != base {
		t.Fatalf("header-only CSV without --confirm: exit %d, %q; file:\n%s", code, errOut, read())
	}

	_, errOut, code = runCLI(t, "mappings", "import", rows, "--into", cfgPath)
	if code != 0 {
		t.Fatalf("import: exit %d: %s", code, errOut)
	}
	got := read()
	for _, want := range []string{"# Plant mirror: owned by the controls team.", "# line 3", "# From mappings.csv.", "ns=1;s=c"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q after import:\n%s", want, got)
		}
	}
	if strings.Contains(got, "ns=1;s=b") {
		t.Errorf("the replaced mapping b is still there:\n%s", got)
	}

	_, errOut, code = runCLI(t, "mappings", "import", empty, "--into", cfgPath, "--confirm")
	if code != 0 {
		t.Fatalf("header-only CSV with --confirm: exit %d: %s", code, errOut)
	}
	c, err := mapping.LoadAndValidate(cfgPath)
	if err != nil || len(c.Mappings) != 0 || !strings.Contains(read(), "# line 3") {
		t.Fatalf("confirmed empty import: %v, %d mappings:\n%s", err, len(c.Mappings), read())
	}
}

// confirmPair is an active for the admin API that keeps the applied
// config and refuses large removals unless confirmed, as the node does.
type confirmPair struct {
	standalonePair
	mu  sync.Mutex
	cfg *mapping.Config
}

func (p *confirmPair) ApplyConfigWith(_ context.Context, yaml []byte, file string, o redundancy.ApplyOptions) (mapping.Delta, error) {
	cfg, err := mapping.ParseAndValidate(yaml, file)
	if err != nil {
		return mapping.Delta{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !o.Confirm {
		if err := mapping.CheckRemoval(p.cfg, cfg, o.MaxRemoveShare); err != nil {
			return mapping.Delta{}, err
		}
	}
	d := mapping.Diff(p.cfg, cfg)
	p.cfg = cfg
	return d, nil
}

// TestMappingsApplyConfirm: `mappings apply` of an empty `mappings: []`
// (or one removing more than --max-remove-share) is refused without
// --confirm, through the admin API.
func TestMappingsApplyConfirm(t *testing.T) {
	dir := t.TempDir()
	const servers = `servers:
  - name: plc
    endpoints: ["opc.tcp://127.0.0.1:4840"]
  - name: scada
    endpoints: ["opc.tcp://127.0.0.1:4841"]
`
	write := func(name string, nodes ...string) string {
		var b strings.Builder
		b.WriteString(servers + "mappings:")
		if len(nodes) == 0 {
			b.WriteString(" []")
		}
		b.WriteString("\n")
		for _, n := range nodes {
			fmt.Fprintf(&b, "  - source: {server: plc, node: \"ns=1;s=%s\"}\n    target: {server: scada, node: \"ns=1;s=%s\"}\n", n, n)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pair := &confirmPair{}
	srv := httptest.NewServer(diagnostics.NewAdmin(pair, nil, zap.NewNop()).Handler())
	defer srv.Close()
	apply := func(args ...string) (string, string, int) {
		return runCLI(t, append([]string{"mappings", "apply", "--node", srv.URL}, args...)...)
	}
	if out, errOut, code := apply(write("four.yaml", "a", "b", "c", "d")); code != 0 || !strings.Contains(out, "4 added") {
		t.Fatalf("first apply: exit %d: %s %s", code, out, errOut)
	}
	for _, tt := range []struct {
		file string
		args []string
		code int
		want string
	}{
		{write("empty.yaml"), nil, exitFailed, "all 4 running mappings would be removed"},
		{write("one.yaml", "a"), nil, exitFailed, "3 of 4"},
		{write("three.yaml", "a", "b", "c"), []string{"--max-remove-share", "0.2"}, exitFailed, "1 of 4"},
		{write("three.yaml", "a", "b", "c"), []string{"--max-remove-share", "2"}, exitUsage, "--max-remove-share"},
		{write("two.yaml", "a", "b"), nil, 0, "2 removed"},
		{write("empty.yaml"), []string{"--confirm"}, 0, "2 removed"},
	} {
		out, errOut, code := apply(append([]string{tt.file}, tt.args...)...)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) {
			t.Errorf("apply %s %v: exit %d (want %d), %q %q; want %q", filepath.Base(tt.file), tt.args, code, tt.code, out, errOut, tt.want)
		}
	}
}
