package pair

import (
	"fmt"
	"github.com/uamirror/uamirror/test/harness"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Deadlines are generous (the machine is shared and the members are
// race-instrumented); the conditions are strict.
const (
	settle  = 20 * time.Second // a role change, a config change, values arriving
	rejoin  = 40 * time.Second // a restarted member catching up with raft's retry backoff
	streamR = 1000             // source changes/s for the tests under load
)

// churn sets the source's static variables round-robin every 5 ms until
// the returned stop is called (or the test ends): values that change
// during a switchover.
func (p *pair) churn(t *testing.T) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	var once sync.Once
	halt := func() { once.Do(func() { close(done) }); <-finished }
	t.Cleanup(halt)
	var err error
	go func() {
		defer close(finished)
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		st := p.static()
		for k := 0; ; k++ {
			select {
			case <-done:
				return
			case <-tk.C:
			}
			i := st[k%len(st)]
			v := strconv.FormatFloat(setValue(i, 100+k/len(st)), 'f', -1, 64)
			if err = p.plc.Proc.Send("set " + strconv.Itoa(i) + " " + v); err != nil {
				return
			}
		}
	}()
	return func() {
		halt()
		if err != nil {
			t.Errorf("churn: %v", err)
		}
	}
}

// TestPlannedSwitchoverUnderLoad switches over twice (through the
// standby's CLI, which forwards to the active, then through the active's
// API) while the source changes 1,000 times a second and the static
// variables are being set: one writer at a time, no value older than the
// last, and after the changes stop, the target equals the source.
func TestPlannedSwitchoverUnderLoad(t *testing.T) {
	t.Parallel()
	p := startPair(t, pairOpts{rate: streamR})
	act, sby, epoch := p.waitStable(settle)
	stop := p.churn(t)

	trigger := time.Now()
	out, code := cli(t, "switchover", "--node", "http://"+sby.Admin)
	if code != 0 {
		t.Fatalf("switchover through the standby: exit %d: %s", code, out)
	}
	p.waitActive(sby, epoch+1, settle)
	ev := p.waitEvent(epoch+1, true, settle)
	if ev.Reason != "manual" || ev.From != act.ID || ev.To != sby.ID {
		t.Errorf("event of epoch %d = %+v, want manual %s → %s", epoch+1, ev, act.ID, sby.ID)
	}
	var lastOld, firstNew write
	harness.WaitState(t, settle, "the new active's first write", func() (ok bool, _ string) {
		lastOld, firstNew, ok = takeover(p.journal(), time.Time{}, trigger)
		return ok, ""
	})
	t.Logf("planned switchover %s → %s: gap %.1f ms (node's measure: %.1f ms)", act.ID, sby.ID,
		ms(firstNew.Time.Sub(lastOld.Time)), *ev.GapMS)

	// And back, through the API of the new active.
	act2, sby2, epoch2 := p.waitStable(settle)
	if act2 != sby || epoch2 != epoch+1 {
		t.Fatalf("after the switchover %s is active under epoch %d, want %s under %d", act2.ID, epoch2, sby.ID, epoch+1)
	}
	trigger2 := time.Now()
	if err := p.switchover(act2); err != nil {
		t.Fatal(err)
	}
	p.waitActive(sby2, epoch+2, settle)
	ev = p.waitEvent(epoch+2, true, settle)
	harness.WaitState(t, settle, "the second new active's first write", func() (ok bool, _ string) {
		lastOld, firstNew, ok = takeover(p.journal(), firstNew.Time, trigger2)
		return ok, ""
	})
	t.Logf("planned switchover %s → %s: gap %.1f ms (node's measure: %.1f ms)", act2.ID, sby2.ID,
		ms(firstNew.Time.Sub(lastOld.Time)), *ev.GapMS)

	stop()
	p.waitMirrored(p.static(), settle)
	p.waitLive(trigger2, settle)
	p.checkInvariants()
}

// TestKillActive kills the active with SIGKILL: the standby takes over
// under the next epoch, for the reason the quorum saw (peer-lost when it
// won the election itself, arbiter when the arbiter won and handed over),
// and mirrors on.
func TestKillActive(t *testing.T) {
	t.Parallel()
	p := startPair(t, pairOpts{rate: streamR})
	act, sby, epoch := p.waitStable(settle)
	p.waitLive(time.Now(), settle) // the active is writing right now

	killAt := p.kill(act)
	p.waitActive(sby, epoch+1, settle)
	ev := p.waitEvent(epoch+1, true, settle)
	if ev.From != act.ID || ev.To != sby.ID || (ev.Reason != "peer-lost" && ev.Reason != "arbiter") {
		t.Errorf("event of epoch %d = %+v, want %s → %s for peer-lost or arbiter", epoch+1, ev, act.ID, sby.ID)
	}
	p.waitLive(killAt, settle)
	p.setStatic(t)
	p.waitMirrored(p.static(), settle)
	ws := p.checkInvariants()
	if lastOld, firstNew, ok := takeover(ws, time.Time{}, killAt); ok {
		t.Logf("kill -9 of %s: %s took over (%s): gap %.1f ms (node's measure: %.1f ms)",
			act.ID, sby.ID, ev.Reason, ms(firstNew.Time.Sub(lastOld.Time)), *ev.GapMS)
	} else {
		t.Errorf("no takeover in the target journal after the kill")
	}
}

// TestFrozenActive freezes the active (SIGSTOP) until the standby has
// taken over and written, then wakes it: its lease has lapsed while it
// slept, so it must not write a single value, and it must step down to a
// READY standby by itself.
func TestFrozenActive(t *testing.T) {
	t.Parallel()
	p := startPair(t, pairOpts{rate: streamR})
	act, sby, epoch := p.waitStable(settle)
	p.waitLive(time.Now(), settle)

	stopAt := time.Now()
	p.Freeze(act)
	p.waitActive(sby, epoch+1, settle)
	var firstNew write
	harness.WaitState(t, settle, "the new active's first write", func() (ok bool, _ string) {
		_, firstNew, ok = takeover(p.journal(), time.Time{}, stopAt)
		return ok, ""
	})
	contAt := time.Now()
	p.Thaw(act)
	// The journal is checked even when a wait below fails: a write of the
	// woken node is the first thing to know about.
	defer func() {
		ws := p.checkInvariants()
		old := map[string]bool{}
		for _, w := range ws {
			if w.Time.Before(stopAt) {
				old[w.Session] = true
			}
		}
		late := 0
		for _, w := range ws {
			if old[w.Session] && w.Time.After(firstNew.Time) {
				if late++; late <= 5 {
					t.Errorf("the frozen active wrote after the new active's first write (%s): %s", firstNew, w)
				}
			}
		}
		t.Logf("%s frozen %.1f s; %s's first write %.0f ms after the freeze; %d late writes by the old active",
			act.ID, contAt.Sub(stopAt).Seconds(), sby.ID, ms(firstNew.Time.Sub(stopAt)), late)
	}()
	p.waitStandby(act, epoch+1, settle)
	// Let the new active write every changing variable again after the
	// old one declared itself standby: anything the old one wrote on
	// waking now lies between the new one's writes.
	p.waitLive(time.Now(), settle)
}

// TestMappingEditOnlyOnActive: `mappings apply` on the standby is refused
// and names the active, and changes nothing; on the active it is applied
// and replicated: the standby runs the new config (its config hash) and
// the new mapping mirrors.
func TestMappingEditOnlyOnActive(t *testing.T) {
	t.Parallel()
	p := startPair(t, pairOpts{vars: 20, mapped: 19})
	act, sby, epoch := p.waitStable(settle)

	path := filepath.Join(t.TempDir(), "mirror-v2.yml")
	hash := writeConfig(t, path, p.plc.Endpoint, p.scada.Endpoint, 20) // adds v19
	out, code := cli(t, "mappings", "apply", path, "--node", "http://"+sby.Admin)
	if code == 0 {
		t.Fatalf("apply on the standby succeeded: %s", out)
	}
	if want := "active node is " + act.ID; !strings.Contains(out, want) || !strings.Contains(out, act.Admin) {
		t.Errorf("refusal does not name the active (%q, %s): %s", want, act.Admin, out)
	}
	for _, m := range []*member{act, sby} {
		if st, err := p.status(m); err != nil || st.ConfigHash != p.CfgHash {
			t.Fatalf("after the refused apply %s runs config %.12s (err %v), want the old %.12s", m.ID, st.ConfigHash, err, p.CfgHash)
		}
	}

	out, code = cli(t, "mappings", "apply", path, "--node", "http://"+act.Admin)
	if code != 0 || !strings.Contains(out, "applied") {
		t.Fatalf("apply on the active: exit %d: %s", code, out)
	}
	harness.WaitState(t, settle, "the standby to run the new config", func() (bool, string) {
		st, err := p.status(sby)
		if err != nil {
			return false, err.Error()
		}
		return st.ConfigHash == hash, fmt.Sprintf("standby config %.12s, want %.12s", st.ConfigHash, hash)
	})
	// The nodes' local files (the old config) now differ from the pair's:
	// reported with both hashes and the diff, never applied.
	harness.WaitState(t, settle, "the local config difference reported", func() (bool, string) {
		for _, m := range []*member{act, sby} {
			st, err := p.status(m)
			if err != nil {
				return false, err.Error()
			}
			if !strings.Contains(st.LocalDiff, "differs") || !strings.Contains(st.LocalDiff, hash[:12]) || !strings.Contains(st.LocalDiff, "removed") {
				return false, fmt.Sprintf("%s local_config_diff %q", m.ID, st.LocalDiff)
			}
		}
		return true, ""
	})
	p.CfgHash, p.O.Mapped = hash, 20
	if act2, _, epoch2 := p.waitStable(settle); act2 != act || epoch2 != epoch {
		t.Errorf("the config change moved the active role: %s under epoch %d", act2.ID, epoch2)
	}
	p.setStatic(t)
	p.waitMirrored(p.static(), settle) // v19 included
	p.checkInvariants()
}

// TestRestartedActiveRejoins kills the active, lets the standby take
// over, and restarts the old active on its data: it must come back as a
// READY standby by itself, without taking the role back.
func TestRestartedActiveRejoins(t *testing.T) {
	t.Parallel()
	p := startPair(t, pairOpts{rate: streamR})
	act, sby, epoch := p.waitStable(settle)
	p.kill(act)
	p.waitActive(sby, epoch+1, settle)

	p.restart(act)
	p.waitStandby(act, epoch+1, rejoin)
	if act2, _, epoch2 := p.waitStable(settle); act2 != sby || epoch2 != epoch+1 {
		t.Errorf("after the rejoin %s is active under epoch %d, want %s under %d", act2.ID, epoch2, sby.ID, epoch+1)
	}
	p.setStatic(t)
	p.waitMirrored(p.static(), settle)
	p.waitLive(time.Now(), settle)
	p.checkInvariants()
}

// TestArbiterLoss kills the arbiter: the two nodes still form a quorum,
// so nothing switches and the active keeps writing.
func TestArbiterLoss(t *testing.T) {
	t.Parallel()
	p := startPair(t, pairOpts{rate: streamR})
	act, sby, epoch := p.waitStable(settle)
	killAt := p.kill(p.arb)
	// The active still writes new source values six heartbeats after
	// the loss (an election would have happened by then).
	p.waitLive(killAt.Add(6*p.O.Heartbeat), settle)
	p.setStatic(t)
	p.waitMirrored(p.static(), settle)
	for _, m := range []*member{act, sby} {
		st, err := p.status(m)
		if err != nil {
			t.Fatal(err)
		}
		if st.Epoch != epoch || st.Active != act.ID {
			t.Errorf("%s: epoch %d active %s after the arbiter's loss, want epoch %d active %s", m.ID, st.Epoch, st.Active, epoch, act.ID)
		}
	}
	evs, err := p.events()
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; last.Epoch != epoch {
		t.Errorf("role change after the arbiter's loss: %+v", last)
	}
	p.checkInvariants()
}

// TestServerMonitor runs the server monitor on fresh pairs in which node
// a reaches both servers through proxies and node b directly. With a
// active, cutting a's link to plc hands over under policy any, and not
// under policy all until its link to scada is cut too.
func TestServerMonitor(t *testing.T) {
	t.Parallel()
	// monitored starts a pair with the policy and makes a active.
	monitored := func(t *testing.T, policy string) (*pair, uint64) {
		p := startPair(t, pairOpts{rate: 200, policy: policy, proxyA: true, faultDelay: time.Second, cooldown: 2 * time.Second})
		act, _, epoch := p.waitStable(settle)
		if act != p.a {
			if err := p.switchover(act); err != nil {
				t.Fatal(err)
			}
			epoch++
			p.waitActive(p.a, epoch, settle)
			p.waitStable(settle)
		}
		return p, epoch
	}
	handedOver := func(t *testing.T, p *pair, epoch uint64, cutAt time.Time, failed string) {
		p.waitActive(p.b, epoch+1, settle)
		ev := p.waitEvent(epoch+1, false, settle)
		if ev.Reason != "server-monitor" || ev.From != "a" || ev.To != "b" || !strings.Contains(ev.Detail, failed) {
			t.Errorf("event of epoch %d = %+v, want server-monitor a → b, failed %s", epoch+1, ev, failed)
		}
		p.setStatic(t)
		p.waitMirrored(p.static(), settle)
		p.waitLive(cutAt, settle)
		p.checkInvariants()
	}
	plcDown := func(t *testing.T, p *pair) (bool, string) {
		st, err := p.status(p.a)
		if err != nil {
			return false, err.Error()
		}
		if st.Health == nil {
			return false, "no health"
		}
		for _, s := range st.Health.Servers {
			if s.Name == "plc" {
				return !s.Up, fmt.Sprintf("a: %s epoch %d, plc up=%v", st.Role, st.Epoch, s.Up)
			}
		}
		return false, "no plc in a's health"
	}

	t.Run("any", func(t *testing.T) {
		t.Parallel()
		p, epoch := monitored(t, "any")
		cutAt := time.Now()
		p.Proxies["plc"].Cut()
		handedOver(t, p, epoch, cutAt, "plc")
	})
	t.Run("all", func(t *testing.T) {
		t.Parallel()
		p, epoch := monitored(t, "all")
		p.Proxies["plc"].Cut()
		harness.WaitState(t, settle, "a to see plc down", func() (bool, string) { return plcDown(t, p) })
		// Under policy any the handover would start fault-delay after this;
		// watch a stay active for fault-delay + 2 s of polls.
		polls := harness.Holds(t, p.O.FaultDelay+2*time.Second, "a active with plc down (policy all)", func() (bool, string) {
			down, state := plcDown(t, p)
			st, err := p.status(p.a)
			if err != nil {
				return false, err.Error()
			}
			return down && st.Role == "active" && st.Epoch == epoch, state
		})
		t.Logf("a stayed active with plc down for %d polls", polls)
		cutAt := time.Now()
		p.Proxies["scada"].Cut()
		handedOver(t, p, epoch, cutAt, "plc,scada")
	})
}

// TestTwoMembers runs a pair without an arbiter. A manual switchover
// works while both live; once the active is killed the survivor has no
// quorum and stays standby, writing nothing, until the operator forces it
// (`switchover --force`), which warns and makes it write.
func TestTwoMembers(t *testing.T) {
	t.Parallel()
	p := startPair(t, pairOpts{rate: streamR, noArbiter: true})
	act, sby, epoch := p.waitStable(settle)
	trigger := time.Now()
	if err := p.switchover(act); err != nil {
		t.Fatal(err)
	}
	p.waitActive(sby, epoch+1, settle)
	x, y, epoch := p.waitStable(settle)
	if x != sby {
		t.Fatalf("after the switchover %s is active, want %s", x.ID, sby.ID)
	}

	killAt := p.kill(x)
	polls := harness.Holds(t, 6*p.O.Heartbeat, "the survivor standby without a quorum", func() (bool, string) {
		st, err := p.status(y)
		if err != nil {
			return false, err.Error()
		}
		return st.Role == "standby" && st.Epoch == epoch, fmt.Sprintf("%s: %s epoch %d raft %s", y.ID, st.Role, st.Epoch, st.RaftState)
	})
	ySessions := map[string]bool{}
	for _, w := range p.journal() {
		if w.Time.Before(trigger) {
			ySessions[w.Session] = true
		}
		if w.Time.After(killAt) && ySessions[w.Session] {
			t.Errorf("the survivor wrote without a quorum: %s", w)
		}
	}
	t.Logf("%s stayed standby for %d polls after %s died", y.ID, polls, x.ID)

	out, code := cli(t, "switchover", "--force", "--node", "http://"+y.Admin)
	if code != 0 || !strings.Contains(out, "WARNING") {
		t.Fatalf("switchover --force on the survivor: exit %d, want 0 and a WARNING: %s", code, out)
	}
	forcedAt := time.Now()
	p.waitActive(y, epoch+1, settle)
	if ev := p.waitEvent(epoch+1, false, settle); ev.Reason != "force" || ev.From != x.ID || ev.To != y.ID {
		t.Errorf("event of epoch %d = %+v, want force %s → %s", epoch+1, ev, x.ID, y.ID)
	}
	p.setStatic(t)
	p.waitMirrored(p.static(), settle)
	p.waitLive(forcedAt, settle)
	p.checkInvariants()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
