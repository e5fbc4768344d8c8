package redundancytest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/redundancy"
)

// configWith returns a valid mirror config with the mappings v0..v(n-1)
// and, when extra is set, a mapping whose target is that node.
func configWith(n int, extra string) []byte {
	var b strings.Builder
	b.WriteString(`servers:
  - name: plc
    endpoints: ["opc.tcp://127.0.0.1:1"]
  - name: scada
    endpoints: ["opc.tcp://127.0.0.1:2"]
mappings:
`)
	if n == 0 && extra == "" {
		b.WriteString("  []\n")
	}
	for i := range n {
		fmt.Fprintf(&b, "  - source: {server: plc, node: \"ns=1;s=v%d\"}\n    target: {server: scada, node: \"ns=1;s=v%d\"}\n", i, i)
	}
	if extra != "" {
		fmt.Fprintf(&b, "  - source: {server: plc, node: \"ns=1;s=%s\"}\n    target: {server: scada, node: \"ns=1;s=%s\"}\n", extra, extra)
	}
	return []byte(b.String())
}

// hasTarget reports whether cfg maps to target node ns=1;s=<node>.
func hasTarget(cfg *mapping.Config, node string) bool {
	for _, m := range cfg.Mappings {
		if m.Target.Node == "ns=1;s="+node {
			return true
		}
	}
	return false
}

func hashOf(t *testing.T, yaml []byte) string {
	t.Helper()
	c, err := mapping.ParseAndValidate(yaml, "test")
	if err != nil {
		t.Fatal(err)
	}
	return c.Hash()
}

// TestApplyStandbyFirst: a new config runs on the standby first; the
// active keeps the old one until the standby reports the new one READY,
// so the pair always has a READY node.
func TestApplyStandbyFirst(t *testing.T) {
	const warmUp = 600 * time.Millisecond // the standby's new mirror needs this to be READY
	c, active, standby := activePair(t, Options{Mirror: MirrorOptions{ReadyAfter: warmUp}})
	act, sby := c.Member(active), c.Member(standby)
	oldAct := act.Mirror()
	newCfg := configWith(1, "added")
	if _, err := act.Node().ApplyConfig(context.Background(), newCfg, "new.yaml"); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(10*time.Second, "both nodes on the new config", func() bool {
		a, s := act.Mirror(), sby.Mirror()
		return a != oldAct && hasTarget(a.Config, "added") && s != nil && hasTarget(s.Config, "added")
	})
	a, s := act.Mirror(), sby.Mirror()
	if !a.Built.After(s.Built.Add(warmUp)) {
		t.Fatalf("the active built its new mirror at %s, the standby at %s: it must wait until the standby is READY (%s later)",
			a.Built.Format("15:04:05.000"), s.Built.Format("15:04:05.000"), warmUp)
	}
	if st := act.Node().Status(); st.ConfigNote != "" {
		t.Fatalf("config note on the active: %s", st.ConfigNote)
	}
	noViolations(t, c)
}

// TestApplyStandbyTimeoutReported: a standby that never reports the new
// config READY holds the active back only for the apply wait, and the
// active says so.
func TestApplyStandbyTimeoutReported(t *testing.T) {
	c, active, standby := activePair(t, Options{StandbyApplyWait: 500 * time.Millisecond})
	act := c.Member(active)
	// The standby's next mirror never gets READY.
	c.o.MirrorFor = map[string]MirrorOptions{standby: {ReadyAfter: time.Hour}}
	restart(c, standby)
	oldAct := act.Mirror()
	start := time.Now()
	if _, err := act.Node().ApplyConfig(context.Background(), configWith(1, "added"), "new.yaml"); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(10*time.Second, "the active on the new config", func() bool {
		a := act.Mirror()
		return a != oldAct && hasTarget(a.Config, "added")
	})
	took := time.Since(start)
	t.Logf("active applied after %s", took)
	if note := act.Node().Status().ConfigNote; !strings.Contains(note, "did not report") {
		t.Fatalf("config note %q: want the timeout reported", note)
	}
}

// restart kills and starts member id and waits until it runs a new
// mirror.
func restart(c *Cluster, id string) {
	m := c.Member(id)
	old := m.Mirror()
	c.Kill(id)
	c.Start(id)
	c.WaitFor(10*time.Second, id+" running a new mirror", func() bool {
		mm := m.Mirror()
		return mm != old && mm != nil && mm.started.Load() != 0
	})
}

// TestApplyUnbuildableRefused: a config the mirror cannot be built from
// is refused before it is replicated; both nodes keep running the old
// mirror.
func TestApplyUnbuildableRefused(t *testing.T) {
	refuse := func(cfg *mapping.Config) error {
		if hasTarget(cfg, "broken") {
			return errors.New("target node ns=1;s=broken: no such type")
		}
		return nil
	}
	c, active, standby := activePair(t, Options{Mirror: MirrorOptions{Refuse: refuse}})
	act, sby := c.Member(active), c.Member(standby)
	oldA, oldS := act.Mirror(), sby.Mirror()
	hash := act.Node().Status().ConfigHash
	_, err := act.Node().ApplyConfig(context.Background(), configWith(1, "broken"), "bad.yaml")
	if !errors.Is(err, redundancy.ErrConfigRefused) || !strings.Contains(err.Error(), "no such type") {
		t.Fatalf("apply: %v; want ErrConfigRefused with the reason", err)
	}
	for _, m := range []*Member{act, sby} {
		if st := m.Node().Status(); st.ConfigHash != hash {
			t.Fatalf("%s: config hash %.12s after a refused apply, want %.12s", m.ID, st.ConfigHash, hash)
		}
	}
	if act.Mirror() != oldA || sby.Mirror() != oldS {
		t.Fatal("a mirror was rebuilt for a refused config")
	}
	c.WaitWriting(active, 5*time.Second)
}

// TestApplyUnbuildableOnStandbyKeepsOld: a replicated config one node
// cannot build (its check passed on the active) leaves that node on the
// old mirror, running and reporting why, instead of with no mirror.
func TestApplyUnbuildableOnStandbyKeepsOld(t *testing.T) {
	c, active, standby := activePair(t, Options{StandbyApplyWait: 300 * time.Millisecond})
	_ = active
	sby := c.Member(standby)
	// Only the standby's factory refuses (its PKI, say, lacks a file).
	c.o.MirrorFor = map[string]MirrorOptions{standby: {Refuse: func(cfg *mapping.Config) error {
		if hasTarget(cfg, "other") {
			return errors.New("no certificate for server scada")
		}
		return nil
	}}}
	restart(c, standby)
	c.WaitFor(10*time.Second, "the standby READY again", func() bool {
		return sby.Node().Status().Ready
	})
	oldS := sby.Mirror()
	if _, err := c.Member(active).Node().ApplyConfig(context.Background(), configWith(1, "other"), "new.yaml"); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(10*time.Second, "the standby reports the config it cannot build", func() bool {
		return strings.Contains(sby.Node().Status().ConfigNote, "no certificate for server scada")
	})
	if sby.Mirror() != oldS || sby.Mirror().started.Load() == 0 {
		t.Fatal("the standby's old mirror was replaced or stopped")
	}
	c.WaitFor(10*time.Second, "the active on the new config", func() bool {
		return hasTarget(c.Member(active).Mirror().Config, "other")
	})
	c.WaitWriting(active, 5*time.Second)
}

// TestApplyLargeRemovalNeedsConfirm: an apply removing every mapping, or
// more than half of them, is refused without Confirm.
func TestApplyLargeRemovalNeedsConfirm(t *testing.T) {
	c, active, _ := activePair(t, Options{})
	n := c.Member(active).Node()
	ctx := context.Background()
	if _, err := n.ApplyConfig(ctx, configWith(4, ""), "four.yaml"); err != nil {
		t.Fatal(err)
	}
	hash := hashOf(t, configWith(4, ""))
	for name, cfg := range map[string][]byte{"empty": configWith(0, ""), "3 of 4 removed": configWith(1, "")} {
		if _, err := n.ApplyConfig(ctx, cfg, name); !errors.Is(err, mapping.ErrLargeRemoval) {
			t.Fatalf("%s: %v; want ErrLargeRemoval", name, err)
		}
		if got := n.Status().ConfigHash; got != hash {
			t.Fatalf("%s: the config changed to %.12s", name, got)
		}
	}
	if _, err := n.ApplyConfig(ctx, configWith(2, ""), "half.yaml"); err != nil {
		t.Fatalf("removing half: %v", err)
	}
	if _, err := n.ApplyConfigWith(ctx, configWith(0, ""), "empty.yaml", redundancy.ApplyOptions{Confirm: true}); err != nil {
		t.Fatalf("confirmed: %v", err)
	}
	if got, want := n.Status().ConfigHash, hashOf(t, configWith(0, "")); got != want {
		t.Fatalf("confirmed empty config not applied: %.12s, want %.12s", got, want)
	}
}

// TestApplyWarmSwap: the new mirror warms up behind a held gate while the
// old one keeps writing; the active's writes pause only for the swap,
// not for the new mirror's warm-up.
func TestApplyWarmSwap(t *testing.T) {
	const warmUp = 500 * time.Millisecond
	c, active, _ := activePair(t, Options{Mirror: MirrorOptions{ReadyAfter: warmUp}})
	act := c.Member(active)
	oldAct := act.Mirror()
	t0 := time.Now()
	if _, err := act.Node().ApplyConfig(context.Background(), configWith(1, "added"), "new.yaml"); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(15*time.Second, "the active on the new config", func() bool {
		a := act.Mirror()
		return a != oldAct && hasTarget(a.Config, "added") && time.Since(a.Built) > warmUp+200*time.Millisecond
	})
	var gap time.Duration
	var prev time.Time
	for _, l := range c.Target().Landings() {
		if l.Node != active || l.At.Before(t0) {
			continue
		}
		if !prev.IsZero() {
			gap = max(gap, l.At.Sub(prev))
		}
		prev = l.At
	}
	t.Logf("largest gap in the active's writes across the apply: %s (warm-up %s)", gap, warmUp)
	if gap >= warmUp {
		t.Fatalf("the active stopped writing for %s across the apply: the new mirror's warm-up (%s) must not pause it", gap, warmUp)
	}
	noViolations(t, c)
}

// TestApplyLiveStandbyFirst: a mirror that takes changes live is not
// rebuilt: the standby takes the new config first, the active only once
// the standby reports it READY, and both keep their running mirror.
func TestApplyLiveStandbyFirst(t *testing.T) {
	c, active, standby := activePair(t, Options{Mirror: MirrorOptions{Live: true}})
	act, sby := c.Member(active), c.Member(standby)
	oldAct, oldSby := act.Mirror(), sby.Mirror()
	newCfg := configWith(1, "added")
	if _, err := act.Node().ApplyConfig(context.Background(), newCfg, "new.yaml"); err != nil {
		t.Fatal(err)
	}
	h := hashOf(t, newCfg)
	c.WaitFor(10*time.Second, "both nodes on the new config", func() bool {
		return act.Node().Status().ConfigHash == h && act.Mirror().LiveApplied() != nil && sby.Mirror().LiveApplied() != nil
	})
	if act.Mirror() != oldAct || sby.Mirror() != oldSby {
		t.Fatalf("a mirror was rebuilt for a change it takes live")
	}
	a, s := act.Mirror().LiveApplied(), sby.Mirror().LiveApplied()
	if !hasTarget(a.Config, "added") || !hasTarget(s.Config, "added") {
		t.Fatalf("the live change did not carry the new config")
	}
	if r, _ := act.RoleNow(); r != "active" {
		t.Skipf("%s is %s now: the roles moved during the apply (a loaded host), the order cannot be judged", active, r)
	}
	if !a.At.After(s.At) {
		t.Fatalf("the active took the change at %s, the standby at %s: the standby goes first",
			a.At.Format("15:04:05.000"), s.At.Format("15:04:05.000"))
	}
	noViolations(t, c)
}

// TestApplyLiveRefusedRebuilds: a change the mirror cannot take live is
// carried out by the warm swap (a new mirror), standby first.
func TestApplyLiveRefusedRebuilds(t *testing.T) {
	c, active, standby := activePair(t, Options{Mirror: MirrorOptions{LiveRefused: true}})
	act, sby := c.Member(active), c.Member(standby)
	oldAct, oldSby := act.Mirror(), sby.Mirror()
	if _, err := act.Node().ApplyConfig(context.Background(), configWith(1, "added"), "new.yaml"); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(10*time.Second, "both nodes on a new mirror of the new config", func() bool {
		a, s := act.Mirror(), sby.Mirror()
		return a != oldAct && s != oldSby && hasTarget(a.Config, "added") && hasTarget(s.Config, "added")
	})
	if a, s := act.Mirror(), sby.Mirror(); !a.Built.After(s.Built) {
		t.Fatalf("the active built its new mirror at %s, the standby at %s: the standby goes first",
			a.Built.Format("15:04:05.000"), s.Built.Format("15:04:05.000"))
	}
	noViolations(t, c)
}
