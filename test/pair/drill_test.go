package pair

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/drill"
	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/harness"
)

// TestDrillMeasuresItsGap runs `uamirror drill` on a pair under 1,000
// source changes/s: the gap the drill saw at the target (its own
// subscription, by the target's clock) is the gap the target's write
// journal shows (last write of the old active → first of the new) within
// 20 ms, with no anomaly, and the pair did switch over.
func TestDrillMeasuresItsGap(t *testing.T) {
	t.Parallel()
	p := startPair(t, pairOpts{rate: streamR})
	act, sby, epoch := p.waitStable(settle)

	out, code := cli(t, "drill", "--node", "http://"+act.Admin, "-o", "json", "--settle", "3s")
	if code != 0 {
		t.Fatalf("drill: exit %d: %s", code, out)
	}
	var res drill.Result
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
		t.Fatalf("drill output: %v\n%s", err, out)
	}
	p.waitActive(sby, epoch+1, settle)
	if len(res.Targets) != 1 || res.Targets[0].Server != "scada" {
		t.Fatalf("drill targets: %+v", res.Targets)
	}
	tg := res.Targets[0]
	if !res.Pass || tg.Anomalies() != 0 || tg.NoChange || tg.Err != "" || tg.Sampled != p.O.Mapped {
		t.Errorf("drill verdict: %+v", tg)
	}
	lastOld, firstNew, ok := takeover(p.journal(), time.Time{}, res.Switch)
	if !ok {
		t.Fatalf("no handover in the target journal after %s", res.Switch.Format("15:04:05.000"))
	}
	journalGap := firstNew.Time.Sub(lastOld.Time)
	t.Logf("switch asked %s, answered %s; usual cadence %.1f ms, longest after the switchover %.1f ms",
		res.Switch.Format("15:04:05.000"), res.Switched.Format("15:04:05.000"), ms(tg.Usual), ms(tg.Longest))
	diff := tg.Gap - journalGap
	t.Logf("drill %s → %s: drill gap %.1f ms (%s → %s), journal gap %.1f ms (%s → %s), %d values sampled, switchover answered in %.0f ms",
		act.ID, sby.ID, ms(tg.Gap), tg.GapFrom.Format("15:04:05.000"), tg.GapTo.Format("15:04:05.000"),
		ms(journalGap), lastOld.Time.Format("15:04:05.000"), firstNew.Time.Format("15:04:05.000"),
		tg.Values, ms(res.Switched.Sub(res.Switch)))
	if math.Abs(ms(diff)) > 20 {
		t.Errorf("drill gap %.1f ms differs from the journal's %.1f ms by %.1f ms (> 20)", ms(tg.Gap), ms(journalGap), ms(diff))
	}
	// Journaled (kind drill) on both nodes with its figures, and exported
	// as metrics.
	for _, m := range []*member{act, sby} {
		evs, err := p.admin(m).Events()
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, e := range evs {
			if e.Kind == "drill" {
				found = true
				if e.Reason != "drill PASS" || e.From != act.ID || e.To != sby.ID || e.Epoch != epoch+1 ||
					e.GapMS == nil || math.Abs(*e.GapMS-ms(tg.Gap)) > 0.001 || !strings.Contains(e.Detail, "scada: gap") {
					t.Errorf("%s: drill event %+v (gap %v), want PASS %s → %s epoch %d gap %.3f ms", m.ID, e, e.GapMS, act.ID, sby.ID, epoch+1, ms(tg.Gap))
				}
			}
		}
		if !found {
			t.Errorf("%s: no drill event in %+v", m.ID, evs)
		}
		var d redundancy.DrillRecord
		if err := p.get(m, "/api/v1/drill", &d); err != nil || !d.Pass || len(d.Targets) != 1 {
			t.Errorf("%s: GET /api/v1/drill: %+v %v", m.ID, d, err)
		}
		metrics, err := p.admin(m).GetRaw(context.Background(), "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		const gapMetric = `uamirror_drill_last_gap_seconds{server="scada"} `
		var gotGap float64
		for _, l := range strings.Split(string(metrics), "\n") {
			if v, ok := strings.CutPrefix(l, gapMetric); ok {
				gotGap, _ = strconv.ParseFloat(v, 64)
			}
		}
		if math.Abs(gotGap-tg.Gap.Seconds()) > 1e-6 || !strings.Contains(string(metrics), "uamirror_drill_last_pass 1") {
			t.Errorf("%s: metrics: gap %v s, want %v, and uamirror_drill_last_pass 1", m.ID, gotGap, tg.Gap.Seconds())
		}
	}
	p.checkInvariants()
}

// TestDrillRefusedOnNotReadyStandby: node a loses its link to the source
// (so it is, or becomes, a standby that is not READY); a drill asked of
// the active is refused with exit 4 and switches nothing.
func TestDrillRefusedOnNotReadyStandby(t *testing.T) {
	t.Parallel()
	p := startPair(t, pairOpts{proxyA: true})
	p.waitStable(settle)
	p.Proxies["plc"].Cut()
	var epoch uint64
	harness.WaitState(t, settle, "b active, a a standby that is not READY", func() (bool, string) {
		st, err := p.status(p.b)
		if err != nil {
			return false, err.Error()
		}
		epoch = st.Epoch
		return st.Role == "active" && !st.StandbyReady, "b: " + harness.Brief(st)
	})
	evs, err := p.events()
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range []*member{p.b, p.a} {
		out, code := cli(t, "drill", "--node", "http://"+node.Admin, "--lead", "100ms", "--settle", "100ms")
		if code != 4 || !strings.Contains(out, "not READY") {
			t.Errorf("drill through %s: exit %d, want 4 (not READY): %s", node.ID, code, out)
		}
	}
	st, err := p.status(p.b)
	if err != nil {
		t.Fatal(err)
	}
	after, err := p.events()
	if err != nil {
		t.Fatal(err)
	}
	if st.Role != "active" || st.Epoch != epoch || len(after) != len(evs) {
		t.Errorf("a refused drill changed the pair: b %s epoch %d (was %d), %d events (were %d)", st.Role, st.Epoch, epoch, len(after), len(evs))
	}
}
