package pair

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/test/harness"
)

// TestTakeoverKeepsBadSourceBad (issue 14 item 3): real processes, the
// mappings on_bad write_status. Source v0 goes Bad while node a is down:
// the active b writes v0's last good value with the Bad status. a
// restarts without a link to the source (its proxy is cut), so all it
// knows of v0 is what b streamed on the peer link. b is killed: a takes
// over and must not write v0 Good (its reconcile sees the target hold the
// same value; only the status tells it apart) — the target keeps the Bad
// status while the source stays Bad, also once a's own session of the
// source is up again. Then the source turns Good with the same value,
// and the target becomes Good.
func TestTakeoverKeepsBadSourceBad(t *testing.T) {
	t.Parallel()
	p := startPair(t, pairOpts{vars: 3, proxyA: true})
	act, _, _ := p.waitStable(settle)
	p.applyWriteStatus(act)
	if act, _, epoch := p.waitStable(settle); act == p.a {
		if err := p.switchover(p.a); err != nil {
			t.Fatal(err)
		}
		p.WaitActiveAfter(p.b, epoch, settle)
	}
	want, _, err := p.plc.Read([]int{0})
	if err != nil {
		t.Fatal(err)
	}

	p.kill(p.a)
	p.Proxies["plc"].Cut()
	bad := time.Now()
	p.plcControl(t, "bad 0")
	p.waitTarget0(settle, "v0 written Bad by b", func(dv *ua.DataValue) bool { return !isGood(dv.Status) })

	// a comes back without the source: it learns v0's state from b alone.
	// A state streamed before a's mirror could take it is lost, so the
	// status changes (another Bad code each second) until a holds the
	// state of the target's last write.
	p.restart(p.a)
	codes := []string{"0x80310000", "0x808C0000"}
	sent, k := time.Now(), 0
	harness.WaitState(t, rejoin, "a, restarted, to hold b's last write of v0", func() (bool, string) {
		dv, err := p.target0()
		if err != nil {
			return false, err.Error()
		}
		item, err := p.flow0(p.a)
		if err != nil {
			return false, err.Error()
		}
		if item.WrittenSourceTimestamp != nil && item.WrittenSourceTimestamp.Equal(dv.SourceTimestamp) {
			return true, ""
		}
		if time.Since(sent) > time.Second {
			p.plcControl(t, "bad 0 "+codes[k%2])
			sent, k = time.Now(), k+1
		}
		return false, fmt.Sprintf("target v0 %v at %s; a's last write seen: %v", dv.Status, dv.SourceTimestamp.Format("15:04:05.000"), item.WrittenSourceTimestamp)
	})
	sbyBad, err := p.target0()
	if err != nil {
		t.Fatal(err)
	}

	st, err := p.status(p.b)
	if err != nil {
		t.Fatal(err)
	}
	p.kill(p.b)
	p.WaitActiveAfter(p.a, st.Epoch, settle)
	stillBad := func() (bool, string) {
		dv, err := p.target0()
		if err != nil {
			return true, err.Error() // not seen; the journal is checked below
		}
		return dv.Status == sbyBad.Status && dv.Value.Value() == want[0], fmt.Sprintf("target v0 %v %v", dv.Value.Value(), dv.Status)
	}
	harness.Holds(t, 2*time.Second, "target v0 Bad after a took over", stillBad)
	p.Proxies["plc"].Restore()
	harness.WaitState(t, settle, "a's own session reading v0 Bad (held)", func() (bool, string) {
		item, err := p.flow0(p.a)
		if err != nil {
			return false, err.Error()
		}
		return item.State == "held", "a's v0: " + item.State + " " + item.Reason
	})
	harness.Holds(t, time.Second, "target v0 Bad with a's own session of the source up", stillBad)
	good := time.Now()
	p.plcControl(t, "good 0")
	p.waitTarget0(settle, "v0 Good again, same value", func(dv *ua.DataValue) bool {
		return isGood(dv.Status) && dv.Value.Value() == want[0]
	})

	// The journal: no Good v0 from the moment the source went Bad until
	// it was Good again.
	var bads int
	for _, w := range p.journal() {
		if w.Node != nodeID(0) || w.Time.Before(bad) || w.Time.After(good) {
			continue
		}
		if isGood(ua.StatusCode(w.Status)) {
			t.Errorf("a Good value written over the Bad source: %s", w)
		}
		bads++
	}
	t.Logf("%d Bad writes of v0 while its source was Bad, none Good", bads)
}

func isGood(c ua.StatusCode) bool { return uint32(c)>>30 == 0 }

// applyWriteStatus makes every mapping on_bad write_status (mappings
// apply through act) and waits until both nodes run it.
func (p *pair) applyWriteStatus(act *member) {
	p.t.Helper()
	b, err := os.ReadFile(p.CfgPath)
	if err != nil {
		p.t.Fatal(err)
	}
	var out strings.Builder
	for _, l := range strings.SplitAfter(string(b), "\n") {
		out.WriteString(l)
		if strings.HasPrefix(l, "    target: ") {
			out.WriteString("    on_bad: write_status\n")
		}
	}
	cfg, err := mapping.ParseYAML([]byte(out.String()), p.CfgPath)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		p.t.Fatalf("write_status config: %v\n%s", err, out.String())
	}
	if err := os.WriteFile(p.CfgPath, []byte(out.String()), 0o644); err != nil {
		p.t.Fatal(err)
	}
	if res, code := cli(p.t, "mappings", "apply", "--node", "http://"+act.Admin, p.CfgPath); code != 0 {
		p.t.Fatalf("apply: exit %d: %s", code, res)
	}
	p.CfgHash = cfg.Hash()
}

// plcControl sends a control line to the source simserver.
func (p *pair) plcControl(t *testing.T, line string) {
	t.Helper()
	if err := p.plc.Proc.Send(line); err != nil {
		t.Fatalf("simserver control %q: %v", line, err)
	}
}

// target0 reads the target's v0 (value, status, timestamps).
func (p *pair) target0() (*ua.DataValue, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dvs, err := harness.ReadValues(ctx, p.scada.Endpoint, []string{nodeID(0)})
	if err != nil {
		return nil, err
	}
	if dvs[0] == nil || dvs[0].Value == nil {
		return nil, fmt.Errorf("target v0: no value")
	}
	return dvs[0], nil
}

// waitTarget0 waits until the target's v0 satisfies ok.
func (p *pair) waitTarget0(timeout time.Duration, msg string, ok func(*ua.DataValue) bool) {
	p.t.Helper()
	harness.WaitState(p.t, timeout, msg, func() (bool, string) {
		dv, err := p.target0()
		if err != nil {
			return false, err.Error()
		}
		return ok(dv), fmt.Sprintf("target v0 %v %v", dv.Value.Value(), dv.Status)
	})
}

// flow0 returns m's forward flow of the mapping of v0 (its admin API).
func (p *pair) flow0(m *member) (diagnostics.MappingItem, error) {
	var pg diagnostics.MappingPage
	if err := p.get(m, "/api/v1/mappings?per_page=100", &pg); err != nil {
		return diagnostics.MappingItem{}, err
	}
	for _, it := range pg.Items {
		if it.Index == 0 && !it.Reverse {
			return it, nil
		}
	}
	return diagnostics.MappingItem{}, fmt.Errorf("%s: no flow of mapping 0", m.ID)
}
