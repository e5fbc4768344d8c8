package fault

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/uamirror/uamirror/redundancy"
)

// result is one row of the fault matrix (docs/RELIABILITY.md). It is
// logged as one machine-readable line starting "FAULT " and appended as
// JSON to -fault.results.
type result struct {
	Scenario    string    `json:"scenario"`
	Expected    string    `json:"expected"`
	Observed    string    `json:"observed"`
	GapMS       *float64  `json:"gap_ms,omitempty"` // target: last write of the old writer → first of the new
	Switchovers int       `json:"switchovers"`
	Writes      int       `json:"writes"`
	Violations  int       `json:"violations"`
	TwoWriters  int       `json:"two_writer_intervals"`
	Pass        bool      `json:"pass"`
	Seconds     float64   `json:"seconds"`
	At          time.Time `json:"at"`
}

// scenario starts the row of a scenario: its expected outcome is written
// down before anything is broken; the row is logged and saved when the
// test ends, whether it passed or not.
func (e *bed) scenario(name, expected string) *result {
	r := &result{Scenario: name, Expected: expected, At: time.Now().UTC()}
	e.t.Logf("scenario %s: expected: %s", name, expected)
	e.t.Cleanup(func() {
		r.Pass = !e.t.Failed()
		r.Seconds = time.Since(r.At).Seconds()
		if r.Observed == "" {
			r.Observed = "did not complete (see the test log)"
		}
		gap := "-"
		if r.GapMS != nil {
			gap = fmt.Sprintf("%.0f", *r.GapMS)
		}
		e.t.Logf("FAULT scenario=%s pass=%v gap_ms=%s switchovers=%d writes=%d violations=%d two_writers=%d seconds=%.0f observed=%q",
			r.Scenario, r.Pass, gap, r.Switchovers, r.Writes, r.Violations, r.TwoWriters, r.Seconds, r.Observed)
		if *resultsFile == "" {
			return
		}
		b, _ := json.Marshal(r)
		f, err := os.OpenFile(*resultsFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			e.t.Errorf("results: %v", err)
			return
		}
		defer f.Close()
		_, _ = f.Write(append(b, '\n'))
	})
	return r
}

func (r *result) gap(d time.Duration) {
	v := ms(d)
	if r.GapMS == nil || v > *r.GapMS {
		r.GapMS = &v
	}
}

// finish heals everything, waits for a stable pair, gives the static
// sources new values and waits until the target equals the sources and
// carries live values again, then checks the invariants over the whole
// target journal and fills the row's totals.
func (e *bed) finish(r *result) {
	e.t.Helper()
	e.lab.HealAll()
	for _, h := range []string{hA, hB, hArb, hPLC, hSCADA} {
		e.lab.Rejoin(h)
	}
	e.waitStable(rejoin)
	e.setStatic()
	e.waitMirrored(e.static(), settle)
	e.waitLive(time.Now(), settle)
	e.check(r)
}

// check runs the invariants over the target journal (the shared bed's
// CheckInvariants) and fills the row's totals.
func (e *bed) check(r *result) {
	e.t.Helper()
	_, res, evs := e.CheckInvariants()
	r.Writes, r.Violations, r.TwoWriters = res.Writes, res.Total, len(res.TwoWriters)
	r.Switchovers = 0
	for _, ev := range evs {
		if ev.Reason != "bootstrap" && ev.Kind != redundancy.RefusalKind && !ev.Time.Before(r.At) {
			r.Switchovers++
		}
	}
}
