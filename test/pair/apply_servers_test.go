package pair

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/invariant"
	"github.com/uamirror/uamirror/test/pairbed"
)

// writeServersConfig writes the pair's mirror config (plc v_i → scada
// v_i for i < mapped, as writeConfig) with, when hmi is not "", a third
// server hmi and mappings plc v_i → hmi v_i for i in [from, to); it
// returns the config's hash.
func writeServersConfig(t *testing.T, path, plc, scada, hmi string, mapped, from, to int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("servers:\n")
	servers := [][2]string{{"plc", plc}, {"scada", scada}}
	if hmi != "" {
		servers = append(servers, [2]string{"hmi", hmi})
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "  - name: %s\n    endpoints: [%q]\n    timeouts: {keepalive: 200ms, request: 1s, data_age: 3s}\n", s[0], s[1])
	}
	b.WriteString("mappings:\n")
	add := func(target string, i int) {
		fmt.Fprintf(&b, "  - source: {server: plc, node: %q}\n    target: {server: %s, node: %q}\n", invariant.NodeID(i), target, invariant.NodeID(i))
	}
	for i := range mapped {
		add("scada", i)
	}
	if hmi != "" {
		for i := from; i < to; i++ {
			add("hmi", i)
		}
	}
	b.WriteString("engine:\n  publishing_interval: 50ms\n  retry_min: 50ms\n  retry_max: 500ms\n")
	return pairbed.WriteYAML(t, path, b.String())
}

// targetSession sets plc v_i to setValue(i, k), waits until scada holds
// it and returns the session that wrote it (the active's target session).
func (p *pair) targetSession(t *testing.T, i, k int) string {
	t.Helper()
	v := setValue(i, k)
	p.plc.Set(t, i, v)
	harness.Eventually(t, 30*time.Second, fmt.Sprintf("v%d mirrored", i), func() bool {
		vals, _, err := p.scada.Read([]int{i})
		return err == nil && vals[0] == v
	})
	var session string
	for _, w := range p.journal() {
		if w.Node == nodeID(i) && w.Value == v {
			session = w.Session
		}
	}
	if session == "" {
		t.Fatalf("no write of v%d in the target's journal", i)
	}
	return session
}

// appliedLive reports whether m's log says it applied the config with
// hash live, and fails the test if it says it could not (the warm swap).
func (p *pair) appliedLive(t *testing.T, m *member, hash string) bool {
	t.Helper()
	live := false
	for _, l := range strings.Split(m.Proc.Stderr.String(), "\n") {
		if strings.Contains(l, "cannot be applied live") {
			t.Fatalf("node %s fell back to the warm swap: %s", m.ID, l)
		}
		live = live || strings.Contains(l, "config applied live") && strings.Contains(l, hash[:12])
	}
	return live
}

// TestApplyServerAddedLive: real processes. `mappings apply` of a config
// that adds a server (hmi, a third simulation server) with mappings
// plc → hmi applies live on both nodes (each says so; neither warms a
// new mirror up), the new targets follow their sources, and the target
// server of before is neither written on its untouched targets nor
// written through another session than the active's of before. Removing
// the server again is live too, and hmi is not written any more.
func TestApplyServerAddedLive(t *testing.T) {
	p := startPair(t, pairOpts{vars: 30, mapped: 20})
	act, sby, _ := p.waitStable(30 * time.Second)
	hmiJournal := filepath.Join(t.TempDir(), "hmi.journal")
	hmi := startSim(t, 30, hmiJournal)
	// One write before the apply names the active's target session.
	session := p.targetSession(t, 0, 5)
	want := map[int]float64{}
	for i := 20; i < 25; i++ {
		want[i] = setValue(i, 7)
		p.plc.Set(t, i, want[i])
	}
	hmiHolds := func() bool {
		idx := []int{20, 21, 22, 23, 24}
		vals, _, err := hmi.Read(idx)
		if err != nil {
			return false
		}
		for k, i := range idx {
			if vals[k] != want[i] {
				return false
			}
		}
		return true
	}

	t0 := time.Now()
	added := filepath.Join(t.TempDir(), "added.yml")
	hash := writeServersConfig(t, added, p.plc.Endpoint, p.scada.Endpoint, hmi.Endpoint, 20, 20, 25)
	if out, code := cli(t, "mappings", "apply", "--node", "http://"+act.Admin, added); code != 0 {
		t.Fatalf("apply: exit %d: %s", code, out)
	}
	harness.Eventually(t, 30*time.Second, "both nodes applied it live and hmi mirrors plc", func() bool {
		return hmiHolds() && p.appliedLive(t, act, hash) && p.appliedLive(t, sby, hash)
	})
	p.CfgHash = hash
	act, _, _ = p.waitStable(30 * time.Second)
	v1 := setValue(1, 9)
	p.plc.Set(t, 1, v1)
	want[22] = setValue(22, 8)
	p.plc.Set(t, 22, want[22])
	harness.Eventually(t, 30*time.Second, "changes mirrored to scada and hmi", func() bool {
		vals, _, err := p.scada.Read([]int{1})
		return err == nil && vals[0] == v1 && hmiHolds()
	})
	for _, w := range p.journal() {
		switch {
		case !w.Time.After(t0):
		case w.Node != nodeID(1):
			t.Errorf("untouched target written after the apply: %s", w)
		case w.Session != session:
			t.Errorf("scada written by session %s after the apply, before by %s: the apply rebuilt its session", w.Session, session)
		}
	}

	// hmi removed again.
	t1 := time.Now()
	removed := filepath.Join(t.TempDir(), "removed.yml")
	hash = writeServersConfig(t, removed, p.plc.Endpoint, p.scada.Endpoint, "", 20, 0, 0)
	if out, code := cli(t, "mappings", "apply", "--node", "http://"+act.Admin, removed); code != 0 {
		t.Fatalf("apply: exit %d: %s", code, out)
	}
	harness.Eventually(t, 30*time.Second, "both nodes removed hmi live", func() bool {
		return p.appliedLive(t, act, hash) && p.appliedLive(t, sby, hash) && p.flowsOf(act) == 20 && p.flowsOf(sby) == 20
	})
	p.CfgHash = hash
	p.waitStable(30 * time.Second)
	p.plc.Set(t, 23, setValue(23, 9))
	v2 := setValue(2, 9)
	p.plc.Set(t, 2, v2)
	harness.Eventually(t, 30*time.Second, "a change mirrored to scada", func() bool {
		vals, _, err := p.scada.Read([]int{2})
		return err == nil && vals[0] == v2
	})
	for _, w := range invariant.ReadJournal(t, hmiJournal) {
		if w.Time.After(t1) {
			t.Errorf("hmi written after its removal: %s", w)
		}
	}
	p.checkInvariants()
}
