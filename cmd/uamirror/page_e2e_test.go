package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/diagnostics/adminclient"
	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/harness"
)

// testPair is a redundant pair of real processes: simservers plc (with a
// control channel) and scada, an arbiter and nodes a and b.
type testPair struct {
	plc, scada *harness.Proc
	nodes      map[string]*harness.Proc // a, b, arb
	admin      map[string]string        // id → http://host:port
	config     string                   // the mirror config the nodes started with
}

// pairOpts chooses the members of a test pair.
type pairOpts struct {
	noArbiter bool     // two bridge nodes only
	nodeArgs  []string // extra flags for both bridge nodes
}

// startPair starts the pair on ephemeral ports with mappings plc.v_i →
// scada.v_i for i < n.
func startPair(t *testing.T, n int, o pairOpts) *testPair {
	t.Helper()
	p := &testPair{nodes: map[string]*harness.Proc{}, admin: map[string]string{}}
	p.plc = harness.Start(t, "simserver", "--vars", "16", "--type", "Double", "--rate", "40", "--changing", "8", "--control")
	p.scada = harness.Start(t, "simserver", "--vars", "16", "--type", "Double")
	dir := t.TempDir()
	var yml strings.Builder
	fmt.Fprintf(&yml, "servers:\n  - name: plc\n    endpoints: [%q]\n  - name: scada\n    endpoints: [%q]\n", p.plc.Ready("endpoint"), p.scada.Ready("endpoint"))
	yml.WriteString("engine:\n  publishing_interval: 50ms\n  retry_min: 50ms\n  retry_max: 1s\nmappings:\n")
	for i := range n {
		fmt.Fprintf(&yml, "  - source: {server: plc, node: \"nsu=urn:uamirror:simserver;s=v%d\"}\n    target: {server: scada, node: \"nsu=urn:uamirror:simserver;s=v%d\"}\n", i, i)
	}
	cfg := filepath.Join(dir, "mirror.yml")
	if err := os.WriteFile(cfg, []byte(yml.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p.config = cfg
	ids := []string{"arb", "a", "b"}
	if o.noArbiter {
		ids = ids[1:]
	}
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)) }
	var members []string
	for _, id := range ids {
		admin := addr()
		p.admin[id] = "http://" + admin
		if id == "arb" {
			members = append(members, fmt.Sprintf("id=arb,role=arbiter,raft=%s,admin=%s", addr(), admin))
			continue
		}
		members = append(members, fmt.Sprintf("id=%s,role=node,raft=%s,peer=%s,admin=%s", id, addr(), addr(), admin))
	}
	for _, id := range ids {
		args := []string{"--id", id, "--data", filepath.Join(dir, id)}
		for _, m := range members {
			args = append(args, "--member", m)
		}
		if id == "arb" {
			p.nodes[id] = harness.Start(t, append([]string{"arbiter"}, args...)...)
			continue
		}
		args = append(append([]string{"node", "--config", cfg}, o.nodeArgs...), args...)
		p.nodes[id] = harness.Start(t, args...)
	}
	return p
}

// client returns the admin API client of member id.
func (p *testPair) client(id string) *adminclient.Client {
	return adminclient.New(p.admin[id], adminclient.Options{Timeout: 2 * time.Second})
}

// status reads a member's /api/v1/status (zero Status if unreachable).
func (p *testPair) status(id string) redundancy.Status {
	st, _ := p.client(id).Status(context.Background())
	return st
}

// waitReady waits until a node is active and its standby READY, and
// returns the active's id and the epoch.
func (p *testPair) waitReady(t *testing.T, timeout time.Duration) (string, uint64) {
	t.Helper()
	var active string
	var epoch uint64
	ok := harness.WaitFor(timeout, func() bool {
		for _, id := range []string{"a", "b"} {
			if st := p.status(id); st.Role == "active" && st.StandbyReady {
				active, epoch = id, st.Epoch
				return true
			}
		}
		return false
	})
	if !ok {
		for _, id := range []string{"a", "b"} {
			st, err := p.client(id).Status(context.Background())
			b, _ := json.Marshal(st)
			t.Logf("status of %s: %v %s\nstderr tail: %s", id, err, b, tail(p.nodes[id].Stderr.String(), 3000))
		}
		t.Fatalf("timed out after %v: no active node with a READY standby", timeout)
	}
	return active, epoch
}

// TestStatusPage opens the status page of node a in headless Chromium,
// checks that it shows the pair, the servers and an unhealthy mapping,
// clicks "Switch over" and sees the other node become active.
func TestStatusPage(t *testing.T) {
	needChromium(t)
	start := time.Now()
	p := startPair(t, 6, pairOpts{})
	active, epoch := p.waitReady(t, 90*time.Second)
	standby := map[string]string{"a": "b", "b": "a"}[active]
	t.Logf("pair up in %v: active %s epoch %d", time.Since(start).Round(time.Millisecond), active, epoch)

	// An unhealthy mapping for the page to list: plc v3 goes Bad, the
	// mapping holds its last good value.
	if err := p.plc.Send("bad 3"); err != nil {
		t.Fatal(err)
	}

	b := startBrowser(t)
	b.navigate(p.admin["a"] + "/")
	waitText := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		if !harness.WaitFor(timeout, cond) {
			var dump string
			_ = b.eval(`document.body.innerText`, &dump)
			t.Fatalf("page: timed out after %v waiting for %s; the page shows:\n%s", timeout, what, dump)
		}
	}
	waitText("the active node", 30*time.Second, func() bool {
		return b.text("#active") == active && b.text("#epoch") == fmt.Sprint(epoch)
	})
	// Both servers, up, as seen by both nodes (4 cells), with their
	// ServiceLevel.
	waitText("both servers up on both nodes", 30*time.Second, func() bool {
		var cells []string
		_ = b.eval(`[...document.querySelectorAll("#servers tbody td[data-node]")].map(td => td.closest("tr").dataset.server + "@" + td.dataset.node + ": " + td.innerText)`, &cells)
		want := map[string]bool{"plc@a: up SL 255": true, "plc@b: up SL 255": true, "scada@a: up SL 255": true, "scada@b: up SL 255": true}
		for _, c := range cells {
			delete(want, c)
		}
		return len(want) == 0
	})
	waitText("members with their roles", 30*time.Second, func() bool {
		return strings.Contains(b.text(`#members tr[data-member="`+active+`"]`), "ACTIVE") &&
			strings.Contains(b.text(`#members tr[data-member="`+standby+`"]`), "STANDBY") &&
			strings.Contains(b.text(`#members tr[data-member="arb"]`), "ARBITER")
	})
	waitText("every member's version (#17)", 30*time.Second, func() bool {
		for _, m := range []string{"a", "b", "arb"} {
			if !strings.Contains(b.text(`#members tr[data-member="`+m+`"]`), "(protocol 1–2)") {
				return false
			}
		}
		return strings.Contains(b.text("#self"), "version ")
	})
	waitText("the held mapping with its reason", 30*time.Second, func() bool {
		row := b.text(`#problems tr[data-state="held"]`)
		return strings.Contains(row, "held") && strings.Contains(row, "BadNoCommunication")
	})
	waitText("rates computed from successive polls", 30*time.Second, func() bool {
		r := b.text("#rates")
		return strings.Contains(r, "values/s") && !strings.Contains(r, "written – values/s")
	})
	waitText("the bootstrap in the journal", 30*time.Second, func() bool {
		return strings.Contains(b.text("#journal tbody"), "bootstrap")
	})
	t.Logf("page shows the pair after %v", time.Since(start).Round(time.Millisecond))

	// Switch over with two real clicks.
	b.click("#switchover")
	waitText("the confirmation", 10*time.Second, func() bool { return strings.Contains(b.text("#confirmbox"), standby) })
	clicked := time.Now()
	b.click("#confirm")
	waitText("the switchover's answer", 30*time.Second, func() bool {
		return strings.Contains(b.text("#answer"), "switchover done")
	})
	waitText("the other node active", 30*time.Second, func() bool {
		return b.text("#active") == standby && b.text("#epoch") == fmt.Sprint(epoch+1)
	})
	waitText("the manual switchover in the journal", 30*time.Second, func() bool {
		return strings.Contains(b.text("#journal tbody tr"), "manual")
	})
	t.Logf("switchover clicked → page shows %s active in %v (test total %v)", standby,
		time.Since(clicked).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if path := os.Getenv("UAMIRROR_PAGE_SCREENSHOT"); path != "" {
		// For a look at the page: UAMIRROR_PAGE_SCREENSHOT=/tmp/page.png
		if err := b.screenshot(path); err != nil {
			t.Errorf("screenshot: %v", err)
		}
	}
	if st := p.status(standby); st.Role != "active" || st.Epoch != epoch+1 {
		t.Errorf("API: %s is %s in epoch %d", standby, st.Role, st.Epoch)
	}

	t.Run("mappings list", func(t *testing.T) {
		out, err := exec.Command(harness.Binary(t), "mappings", "list", "--node", p.admin["a"], "--state", "held").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "held") || !strings.Contains(string(out), "1 flows") {
			t.Errorf("mappings list --state held: %v\n%s", err, out)
		}
	})
	t.Run("mappings export", func(t *testing.T) {
		// The standby exports the replicated config: the same mappings as
		// the file the pair started from.
		fromNode, err := exec.Command(harness.Binary(t), "mappings", "export", "--node", p.admin[standby]).Output()
		if err != nil {
			t.Fatalf("mappings export --node: %v", err)
		}
		fromFile, err := exec.Command(harness.Binary(t), "mappings", "export", p.config).Output()
		if err != nil {
			t.Fatalf("mappings export FILE: %v", err)
		}
		if string(fromNode) != string(fromFile) || strings.Count(string(fromNode), "\n") != 7 {
			t.Errorf("export from the node:\n%s\nfrom the file:\n%s", fromNode, fromFile)
		}
		// Every member holds the replicated state, the arbiter too.
		yml, err := exec.Command(harness.Binary(t), "mappings", "export", "--format", "yaml", "--node", p.admin["arb"]).CombinedOutput()
		if err != nil || strings.Count(string(yml), "source:") != 6 {
			t.Errorf("export --format yaml from the arbiter: %v\n%s", err, yml)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		metrics, err := p.client(standby).GetRaw(t.Context(), "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body := string(metrics)
		for _, want := range []string{`uamirror_pair_role{role="active"} 1`, fmt.Sprintf("uamirror_pair_epoch %d", epoch+1),
			`uamirror_pair_switchovers_total{reason="manual"} 1`, `uamirror_server_up{server="plc"} 1`, `uamirror_mappings{state="held"} 1`} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics of %s lacks %q", standby, want)
			}
		}
	})
	t.Run("logs carry node, role and epoch", func(t *testing.T) {
		roles := map[string][]any{"a": {"active", "standby"}, "b": {"active", "standby"}, "arb": {"arbiter"}}
		for id, proc := range p.nodes {
			lines := jsonLines(proc.Stderr.String())
			if len(lines) == 0 {
				t.Errorf("%s logged no JSON lines", id)
			}
			for _, l := range lines {
				if l["msg"] == "member started" {
					continue // its call site logs the member's kind as "role" (node, arbiter), which wins
				}
				if l["node"] != id || !slices.Contains(roles[id], l["role"]) || l["epoch"] == nil {
					t.Errorf("%s: a line without node, role or epoch: %v", id, l)
					break
				}
			}
		}
		// The line of the promotion itself says "active" (the role is read
		// from the node when the line is written).
		harness.Eventually(t, 10*time.Second, "the promotion logged with role active", func() bool {
			for _, l := range jsonLines(p.nodes[standby].Stderr.String()) {
				if l["msg"] == "role change: ACTIVE" && l["role"] == "active" && l["epoch"] == float64(epoch+1) {
					return true
				}
			}
			return false
		})
	})
}

// jsonLines parses the JSON log lines of a process's stderr.
func jsonLines(s string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
