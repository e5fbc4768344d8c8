package pair

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/test/harness"
)

// flowsOf returns how many mapping flows m's running engine has (which
// config it runs), or -1 when its admin API does not answer.
func (p *pair) flowsOf(m *member) int {
	var pg diagnostics.MappingPage
	if err := p.get(m, "/api/v1/mappings?per_page=1", &pg); err != nil {
		return -1
	}
	return pg.Total
}

// TestApplyStandbyFirstNoRewrites: real processes. `mappings apply` of a
// config with one mapping more runs on the standby first and on the
// active only once the standby is READY on it; the pair always has a
// READY node; the untouched targets (static sources) are not written
// again; the change is applied live: the new mapping is written through
// the active's session that wrote before the apply (not rebuilt); an
// apply that would empty the mirror is refused without --confirm and
// changes nothing.
func TestApplyStandbyFirstNoRewrites(t *testing.T) {
	p := startPair(t, pairOpts{vars: 30, mapped: 20})
	act, sby, _ := p.waitStable(30 * time.Second)
	// One write before the apply names the active's target session.
	session := p.targetSession(t, 0, 5)
	v20 := setValue(20, 7)
	p.plc.Set(t, 20, v20) // the added mapping's source

	// Sample both nodes while the apply runs.
	// The standby is read first, each read stamped with when it returned:
	// a standby that went first shows the new config at an earlier stamp
	// than the active, also within one sample.
	type sample struct {
		sbyAt, actAt       time.Time
		actFlows, sbyFlows int
		actReady, sbyReady bool
	}
	var (
		mu      sync.Mutex
		samples []sample
		done    = make(chan struct{})
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			var s sample
			s.sbyFlows, s.sbyAt = p.flowsOf(sby), time.Now()
			s.actFlows, s.actAt = p.flowsOf(act), time.Now()
			if st, err := p.status(act); err == nil {
				s.actReady = st.Ready
			}
			if st, err := p.status(sby); err == nil {
				s.sbyReady = st.Ready
			}
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	stopSampling := func() {
		select {
		case <-done:
		default:
			close(done)
		}
		wg.Wait()
	}
	defer stopSampling()

	t0 := time.Now()
	newCfg := filepath.Join(t.TempDir(), "mirror-21.yml")
	newHash := writeConfig(t, newCfg, p.plc.Endpoint, p.scada.Endpoint, 21)
	if out, code := cli(t, "mappings", "apply", "--node", "http://"+act.Admin, newCfg); code != 0 || !strings.Contains(out, "1 added") {
		t.Fatalf("apply: exit %d: %s", code, out)
	}
	harness.Eventually(t, 30*time.Second, "both nodes run the new config and v20 is mirrored", func() bool {
		vals, _, err := p.scada.Read([]int{20})
		return err == nil && vals[0] == v20 && p.flowsOf(act) == 21 && p.flowsOf(sby) == 21
	})
	p.CfgHash = newHash
	p.waitStable(30 * time.Second)
	// The sampler must have seen the active on it too (a live apply is
	// quick: its last sample may predate it).
	harness.Eventually(t, 30*time.Second, "a sample of the active on the new config", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range samples {
			if s.actFlows == 21 {
				return true
			}
		}
		return false
	})
	stopSampling()

	var sbyAt, actAt time.Time
	noneReady := 0
	for _, s := range samples {
		if sbyAt.IsZero() && s.sbyFlows == 21 {
			sbyAt = s.sbyAt
		}
		if actAt.IsZero() && s.actFlows == 21 {
			actAt = s.actAt
		}
		if !s.actReady && !s.sbyReady {
			noneReady++
		}
	}
	t.Logf("%d samples; standby on the new config %s after the apply, active %s after", len(samples),
		sbyAt.Sub(t0).Round(time.Millisecond), actAt.Sub(t0).Round(time.Millisecond))
	if !actAt.After(sbyAt) {
		t.Errorf("the active ran the new config at %s, the standby at %s: the standby must go first",
			actAt.Format("15:04:05.000"), sbyAt.Format("15:04:05.000"))
	}
	if noneReady > 0 {
		t.Errorf("%d samples with no READY node during the apply", noneReady)
	}

	// The untouched targets held their values: not written again. The
	// new mapping's target was written through the session of before.
	rewrites := 0
	var first []string
	for _, w := range p.journal() {
		if w.Time.After(t0) && w.Node == nodeID(20) && w.Session != session {
			t.Errorf("the added mapping was written by session %s, not by the active's session of before the apply %s: "+
				"the apply rebuilt the target's session", w.Session, session)
		}
		if w.Time.After(t0) && w.Node != nodeID(20) {
			rewrites++
			if len(first) < 5 {
				first = append(first, fmt.Sprintf("%s=%v", w.Node, w.Value))
			}
		}
	}
	if rewrites > 0 {
		t.Errorf("%d writes to untouched targets after the apply (first: %v)", rewrites, first)
	}

	// An empty mirror needs --confirm.
	empty := filepath.Join(t.TempDir(), "empty.yml")
	emptyHash := writeConfig(t, empty, p.plc.Endpoint, p.scada.Endpoint, 0)
	act, _, _ = p.waitStable(30 * time.Second)
	out, code := cli(t, "mappings", "apply", "--node", "http://"+act.Admin, empty)
	if code == 0 || !strings.Contains(out, "--confirm") {
		t.Fatalf("apply of an empty mirror without --confirm: exit %d: %s", code, out)
	}
	if st, err := p.status(act); err != nil || st.ConfigHash != newHash {
		t.Fatalf("after a refused apply: %v, config %.12s, want %.12s", err, st.ConfigHash, newHash)
	}
	if out, code := cli(t, "mappings", "apply", "--node", "http://"+act.Admin, empty, "--confirm"); code != 0 {
		t.Fatalf("confirmed: exit %d: %s", code, out)
	}
	harness.Eventually(t, 30*time.Second, "the empty config replicated", func() bool {
		st, err := p.status(act)
		return err == nil && st.ConfigHash == emptyHash
	})
	p.checkInvariants()
}

// TestApplyGapOnUntouched: real processes, changing sources. Across an
// apply that adds one mapping, the writes to the untouched targets pause
// no longer than a bound well under an engine restart under load; the
// measured gap is logged beside the normal one.
func TestApplyGapOnUntouched(t *testing.T) {
	p := startPair(t, pairOpts{vars: 30, mapped: 20, changing: 10, rate: 200})
	act, sby, _ := p.waitStable(30 * time.Second)
	p.waitLive(time.Now(), 30*time.Second)
	time.Sleep(2 * time.Second) // a steady stretch of writes before the apply, for the normal gap
	t0 := time.Now()
	newCfg := filepath.Join(t.TempDir(), "mirror-21.yml")
	p.CfgHash = writeConfig(t, newCfg, p.plc.Endpoint, p.scada.Endpoint, 21)
	if out, code := cli(t, "mappings", "apply", "--node", "http://"+act.Admin, newCfg); code != 0 {
		t.Fatalf("apply: exit %d: %s", code, out)
	}
	harness.Eventually(t, 30*time.Second, "both nodes run the new config", func() bool {
		return p.flowsOf(act) == 21 && p.flowsOf(sby) == 21
	})
	p.O.Mapped = 21
	p.waitStable(30 * time.Second)
	p.waitLive(time.Now(), 30*time.Second)
	t1 := time.Now()

	var prev time.Time
	var normal, gap time.Duration
	for _, w := range p.journal() {
		if w.Node == nodeID(20) || w.Time.Before(t0.Add(-2*time.Second)) || w.Time.After(t1) {
			continue
		}
		if !prev.IsZero() {
			d := w.Time.Sub(prev)
			if w.Time.Before(t0) {
				normal = max(normal, d)
			} else {
				gap = max(gap, d)
			}
		}
		prev = w.Time
	}
	t.Logf("largest gap in the writes to untouched targets across the apply: %s (normal %s)", gap, normal)
	if gap > 2*time.Second {
		t.Errorf("the untouched targets were not written for %s across the apply", gap)
	}
	p.checkInvariants()
}
