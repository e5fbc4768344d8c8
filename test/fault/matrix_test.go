package fault

import (
	"fmt"
	"github.com/uamirror/uamirror/test/harness"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/test/invariant"
)

// The CI subset: TestCutPeerLink, TestIsolateActive,
// TestCutFromServer/any, TestBothRestart. Everything else needs
// -fault.full (see needFull). The tests do not run in parallel: each has
// a lab of five hosts and five race-instrumented processes.

// TestCutPeerLink cuts A↔B (both the raft and the peer link) while the
// arbiter is up.
func TestCutPeerLink(t *testing.T) {
	e := start(t, opts{})
	r := e.scenario("cut-ab", "the active keeps writing, no switchover, no second writer; after the heal the standby is READY again")
	act, sby, epoch := e.waitStable(settle)
	cutAt := time.Now()
	e.lab.Cut(hA, hB)
	// An election would be over within a few heartbeats: watch 10.
	polls := harness.Holds(t, 10*e.O.Heartbeat, "the active keeps its role with A↔B cut", func() (bool, string) {
		st, err := e.status(act)
		if err != nil {
			return false, err.Error()
		}
		return st.Role == "active" && st.Epoch == epoch, harness.Brief(st)
	})
	e.waitLive(time.Now(), settle) // and it still writes new values
	e.lab.Heal(hA, hB)
	act2, _, epoch2 := e.waitStable(rejoin)
	if act2 != act || epoch2 != epoch {
		t.Errorf("after the heal %s is active under epoch %d, want %s under %d (a switchover)", act2.ID, epoch2, act.ID, epoch)
	}
	e.finish(r)
	if r.Switchovers != 0 {
		t.Errorf("%d switchovers, want none", r.Switchovers)
	}
	r.Observed = fmt.Sprintf("%s stayed active (%d polls over %s, epoch %d), %s READY again after the heal; %d switchovers",
		act.ID, polls, time.Since(cutAt).Round(time.Second), epoch, sby.ID, r.Switchovers)
}

// TestIsolateActive takes the active's host off the network.
func TestIsolateActive(t *testing.T) {
	e := start(t, opts{})
	r := e.scenario("isolate-active", "the standby takes over; the old active stops writing before the new one starts, steps down by itself and rejoins as standby")
	act, sby, epoch := e.waitStable(settle)
	e.waitLive(time.Now(), settle)
	isoAt := time.Now()
	e.lab.Isolate(act.Host)
	var downAfter time.Duration
	harness.WaitState(t, settle, "the isolated active to step down (its own view)", func() (bool, string) {
		st, err := e.status(act)
		if err != nil {
			return false, err.Error()
		}
		downAfter = time.Since(isoAt)
		return st.Role != "active", harness.Brief(st)
	})
	newEpoch := e.waitActive(sby, epoch, settle)
	ev := e.waitEvent(newEpoch, settle)
	lastOld, firstNew := e.takeover(isoAt)
	r.gap(firstNew.Time.Sub(lastOld.Time))
	e.lab.Rejoin(act.Host)
	act2, _, _ := e.waitStable(rejoin)
	if act2 != sby {
		t.Errorf("after the rejoin %s is active, want %s", act2.ID, sby.ID)
	}
	e.noLateWrites(isoAt, firstNew)
	e.finish(r)
	r.Observed = fmt.Sprintf("%s took over (%s, epoch %d); %s saw itself not active %.0f ms after the isolation and rejoined as standby",
		sby.ID, ev.Reason, newEpoch, act.ID, ms(downAfter))
}

// TestCutFromServer cuts the active from OPC UA servers: the server
// monitor hands over per policy.
func TestCutFromServer(t *testing.T) {
	t.Run("any", func(t *testing.T) {
		e := start(t, opts{policy: "any"})
		r := e.scenario("cut-server-any", "policy any: cut from plc alone, the active hands over (server-monitor, plc) after fault-delay; no second writer")
		act, sby, epoch := e.waitStable(settle)
		cutAt := time.Now()
		e.lab.Cut(act.Host, hPLC)
		newEpoch := e.waitActive(sby, epoch, settle)
		ev := e.waitEvent(newEpoch, settle)
		if ev.Reason != "server-monitor" || ev.From != act.ID || !strings.Contains(ev.Detail, "plc") {
			t.Errorf("event %+v, want server-monitor from %s naming plc", ev, act.ID)
		}
		lastOld, firstNew := e.takeover(cutAt)
		r.gap(firstNew.Time.Sub(lastOld.Time))
		e.noLateWrites(cutAt, firstNew)
		e.finish(r)
		r.Observed = fmt.Sprintf("%s → %s %.1f s after the cut (%s: %s)", act.ID, sby.ID, ev.Time.Sub(cutAt).Seconds(), ev.Reason, ev.Detail)
	})
	// The target this time: the old active's Writes sent after the cut
	// sit in its socket; they must never reach the server after the
	// handover (they did before sessions closed abortively, see
	// bridge/dial.go).
	t.Run("any-target", func(t *testing.T) {
		e := start(t, opts{policy: "any"})
		r := e.scenario("cut-target-any", "policy any: cut from scada (the target), the active hands over; healed after the handover, nothing the old active sent reaches scada late")
		act, sby, epoch := e.waitStable(settle)
		cutAt := time.Now()
		e.lab.Cut(act.Host, hSCADA)
		newEpoch := e.waitActive(sby, epoch, settle)
		ev := e.waitEvent(newEpoch, settle)
		if ev.Reason != "server-monitor" || ev.From != act.ID || !strings.Contains(ev.Detail, "scada") {
			t.Errorf("event %+v, want server-monitor from %s naming scada", ev, act.ID)
		}
		lastOld, firstNew := e.takeover(cutAt)
		r.gap(firstNew.Time.Sub(lastOld.Time))
		e.lab.Heal(act.Host, hSCADA)
		healAt := time.Now()
		e.waitLive(healAt, settle)
		e.noLateWrites(cutAt, firstNew)
		e.finish(r)
		r.Observed = fmt.Sprintf("%s → %s %.1f s after the cut (%s: %s); no late write after the heal", act.ID, sby.ID, ev.Time.Sub(cutAt).Seconds(), ev.Reason, ev.Detail)
	})
	t.Run("all", func(t *testing.T) {
		needFull(t)
		e := start(t, opts{policy: "all"})
		r := e.scenario("cut-server-all", "policy all: cut from plc alone, no handover; cut from scada too, the active hands over (server-monitor, plc,scada)")
		act, sby, epoch := e.waitStable(settle)
		e.lab.Cut(act.Host, hPLC)
		harness.WaitState(t, settle, "the active to see plc down", func() (bool, string) { return serverDown(e, act, "plc") })
		polls := harness.Holds(t, e.O.FaultDelay+3*time.Second, "the active keeps its role with plc down (policy all)", func() (bool, string) {
			st, err := e.status(act)
			if err != nil {
				return false, err.Error()
			}
			return st.Role == "active" && st.Epoch == epoch, harness.Brief(st)
		})
		cutAt := time.Now()
		e.lab.Cut(act.Host, hSCADA)
		newEpoch := e.waitActive(sby, epoch, settle)
		ev := e.waitEvent(newEpoch, settle)
		if ev.Reason != "server-monitor" || !strings.Contains(ev.Detail, "plc") || !strings.Contains(ev.Detail, "scada") {
			t.Errorf("event %+v, want server-monitor naming plc and scada", ev)
		}
		lastOld, firstNew := e.takeover(cutAt)
		r.gap(firstNew.Time.Sub(lastOld.Time))
		e.finish(r)
		r.Observed = fmt.Sprintf("plc alone: %s stayed active (%d polls); plc+scada: %s → %s %.1f s after the second cut (%s)",
			act.ID, polls, act.ID, sby.ID, ev.Time.Sub(cutAt).Seconds(), ev.Detail)
	})
}

func serverDown(e *bed, m *member, name string) (bool, string) {
	st, err := e.status(m)
	if err != nil {
		return false, err.Error()
	}
	if st.Health == nil {
		return false, "no health"
	}
	for _, s := range st.Health.Servers {
		if s.Name == name {
			return !s.Up, harness.Brief(st)
		}
	}
	return false, "no " + name + " in the health"
}

// TestBothRestart kills both nodes together and starts them again.
func TestBothRestart(t *testing.T) {
	e := start(t, opts{})
	r := e.scenario("both-restart", "both nodes killed (-9) and restarted together: one active, the replicated config intact (same hash), values resume")
	_, _, epoch := e.waitStable(settle)
	e.waitLive(time.Now(), settle)
	killAt := time.Now()
	e.a.Proc.Kill()
	e.b.Proc.Kill()
	e.restart(e.a)
	e.restart(e.b)
	act, _, epoch2 := e.waitStable(rejoin) // checks the config hash on both
	_, firstNew := e.takeover(killAt)
	lastOld := lastBefore(e.journal(), killAt)
	r.gap(firstNew.Time.Sub(lastOld.Time))
	e.finish(r)
	r.Observed = fmt.Sprintf("%s active under epoch %d (was %d), config %.12s on both; target silent %.0f ms", act.ID, epoch2, epoch, e.CfgHash, *r.GapMS)
}

// takeover waits for the first write of a new writer after trigger and
// returns it with the old writer's last write.
func (e *bed) takeover(trigger time.Time) (lastOld, firstNew invariant.Write) {
	e.t.Helper()
	harness.WaitState(e.t, settle, "the new writer's first write", func() (bool, string) {
		var ok bool
		lastOld, firstNew, ok = invariant.Takeover(e.journal(), time.Time{}, trigger)
		return ok, ""
	})
	return lastOld, firstNew
}

// noLateWrites fails the test when a session that wrote before trigger
// wrote after the new writer's first write.
func (e *bed) noLateWrites(trigger time.Time, firstNew invariant.Write) {
	e.t.Helper()
	ws := e.journal()
	old := map[string]bool{}
	for _, w := range ws {
		if w.Time.Before(trigger) {
			old[w.Session] = true
		}
	}
	late := 0
	for _, w := range ws {
		if old[w.Session] && w.Time.After(firstNew.Time) {
			if late++; late <= 5 {
				e.t.Errorf("the old active wrote after the new active's first write (%s): %s", firstNew, w)
			}
		}
	}
}

func lastBefore(ws []invariant.Write, t0 time.Time) invariant.Write {
	var last invariant.Write
	for _, w := range ws {
		if w.Time.Before(t0) {
			last = w
		}
	}
	return last
}
