package pairbed

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/invariant"
)

// Static returns the indices of the mapped variables the generator does
// not change.
func (p *Pair) Static() []int {
	var out []int
	for i := range p.O.Mapped {
		if p.O.Rate == 0 || i >= p.O.Changing {
			out = append(out, i)
		}
	}
	return out
}

// Changing returns the indices of the mapped changing variables.
func (p *Pair) Changing() []int {
	if p.O.Rate == 0 {
		return nil
	}
	var out []int
	for i := range min(p.O.Changing, p.O.Mapped) {
		out = append(out, i)
	}
	return out
}

// SetStatic gives every static variable of the source (mapped or not) a
// new value. Safe for concurrent use; an error fails the test with
// Errorf, so it may be called from any goroutine.
func (p *Pair) SetStatic() {
	p.setMu.Lock()
	defer p.setMu.Unlock()
	for i := range p.O.Vars {
		if p.O.Rate == 0 || i >= p.O.Changing {
			if err := p.PLC.SetValue(i, invariant.SetValue(i, p.sets)); err != nil {
				p.T.Errorf("plc control: %v", err)
			}
		}
	}
	p.sets++
}

// WaitMirrored waits until the target holds the source's values of idx.
func (p *Pair) WaitMirrored(idx []int, timeout time.Duration) {
	p.T.Helper()
	harness.WaitState(p.T, timeout, fmt.Sprintf("target values of %v equal to the source's", idx), func() (bool, string) {
		src, _, err := p.PLC.Read(idx)
		if err != nil {
			return false, "plc: " + err.Error()
		}
		dst, _, err := p.SCADA.Read(idx)
		if err != nil {
			return false, "scada: " + err.Error()
		}
		for k := range idx {
			if src[k] != dst[k] {
				return false, fmt.Sprintf("v%d: plc %v, scada %v", idx[k], src[k], dst[k])
			}
		}
		return true, ""
	})
}

// WaitLive waits until every changing variable on the target carries a
// source timestamp after t0: new source values arrive again.
func (p *Pair) WaitLive(t0 time.Time, timeout time.Duration) {
	p.T.Helper()
	idx := p.Changing()
	if len(idx) == 0 {
		return
	}
	harness.WaitState(p.T, timeout, "new source values of every changing variable at the target", func() (bool, string) {
		_, ts, err := p.SCADA.Read(idx)
		if err != nil {
			return false, err.Error()
		}
		for k, tt := range ts {
			if !tt.After(t0) {
				return false, fmt.Sprintf("v%d: source timestamp %s, want after %s", idx[k], tt.Format("15:04:05.000"), t0.Format("15:04:05.000"))
			}
		}
		return true, ""
	})
}

// WriteConfig writes the mirror config plc v_i → scada v_i (i < mapped;
// fast timeouts; o's Both, Engine and Connect) with the servers at
// endpoints plc and scada, and returns its hash. A config that does not
// validate fails the test.
func WriteConfig(t testing.TB, path, plc, scada string, mapped int, o Options) string {
	t.Helper()
	var b strings.Builder
	timeouts := "keepalive: 200ms, request: 1s, data_age: 3s"
	if o.Connect > 0 {
		timeouts = "connect: " + o.Connect.String() + ", " + timeouts
	}
	b.WriteString("servers:\n")
	for _, s := range [][2]string{{"plc", plc}, {"scada", scada}} {
		fmt.Fprintf(&b, "  - name: %s\n    endpoints: [%q]\n    timeouts: {%s}\n", s[0], s[1], timeouts)
	}
	b.WriteString("mappings:\n")
	for i := range mapped {
		fmt.Fprintf(&b, "  - source: {server: plc, node: %q}\n    target: {server: scada, node: %q}\n", invariant.NodeID(i), invariant.NodeID(i))
		if o.Both {
			b.WriteString("    direction: both\n")
		}
	}
	b.WriteString("engine:\n  publishing_interval: 50ms\n  retry_min: 50ms\n  retry_max: 500ms\n" + o.Engine)
	return WriteYAML(t, path, b.String())
}

// WriteYAML writes the mirror config text to path, after checking that
// it parses and validates (the test fails if not), and returns its hash.
func WriteYAML(t testing.TB, path, text string) string {
	t.Helper()
	cfg, err := mapping.ParseYAML([]byte(text), path)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("test config does not validate: %v\n%s", err, text)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg.Hash()
}

// WriteConfig writes a mirror config between the bed's servers (see the
// function WriteConfig) and returns its hash; the test applies it.
func (p *Pair) WriteConfig(path string, mapped int) string {
	p.T.Helper()
	return WriteConfig(p.T, path, p.PLC.Endpoint, p.SCADA.Endpoint, mapped, p.O)
}

// Journal reads the target's write journal.
func (p *Pair) Journal() []invariant.Write { return invariant.ReadJournal(p.T, p.SCADA.Journal) }

// CheckInvariants checks the target journal against the pair's events
// (test/invariant), reports every violation with Error, logs the totals
// and the role changes, and returns the journal, the result and the
// events it was checked against.
func (p *Pair) CheckInvariants() ([]invariant.Write, invariant.Result, []redundancy.Event) {
	p.T.Helper()
	evs, err := p.Events()
	if err != nil {
		p.T.Errorf("events (checking without them): %v", err)
	}
	ws := p.Journal()
	res := invariant.Check(ws, evs, invariant.ValidValue)
	for _, v := range res.Violations {
		p.T.Error(v)
	}
	var changes []string
	for _, ev := range evs {
		changes = append(changes, fmt.Sprintf("%d:%s→%s(%s)", ev.Epoch, ev.From, ev.To, ev.Reason))
	}
	p.T.Logf("target journal: %d writes by %d sessions, %d violations; %d role changes: %s",
		res.Writes, res.Sessions, res.Total, len(evs), strings.Join(changes, " "))
	return ws, res, evs
}
