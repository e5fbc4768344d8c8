package fault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/invariant"
)

// Scenarios of the full set (-fault.full).

// TestDelayLoss adds 50 ms delay and 5 % loss to everything arriving at
// both nodes' hosts (the peer link both ways, and their raft and OPC UA
// traffic too) for -fault.delayloss (5 minutes).
func TestDelayLoss(t *testing.T) {
	needFull(t)
	e := start(t, opts{})
	r := e.scenario("delay-loss", fmt.Sprintf("50 ms delay + 5 %% loss arriving at both nodes for %s: no spurious switchover, values keep flowing", *delayLossFor))
	act, _, epoch := e.waitStable(settle)
	for _, h := range []string{hA, hB} {
		e.lab.Delay(h, 50)
		e.lab.Loss(h, 5)
	}
	t.Cleanup(func() {
		for _, h := range []string{hA, hB} {
			e.lab.Delay(h, 0)
			e.lab.Loss(h, 0)
		}
	})
	from := time.Now()
	polls := harness.Holds(t, *delayLossFor, "no switchover under delay and loss", func() (bool, string) {
		st, err := e.status(act)
		if err != nil {
			return false, err.Error()
		}
		return st.Role == "active" && st.Epoch == epoch, harness.Brief(st)
	})
	e.waitLive(time.Now(), settle)
	// The largest silence at the target while the link was degraded.
	ws := e.journal()
	var prev time.Time
	for _, w := range ws {
		if w.Time.After(from) && !prev.IsZero() {
			r.gap(w.Time.Sub(prev))
		}
		prev = w.Time
	}
	for _, h := range []string{hA, hB} {
		e.lab.Delay(h, 0)
		e.lab.Loss(h, 0)
	}
	e.finish(r)
	if r.Switchovers != 0 {
		t.Errorf("%d switchovers under delay and loss, want none", r.Switchovers)
	}
	r.Observed = fmt.Sprintf("%s active throughout (%d polls over %s), %d switchovers; longest pause between two target writes %.0f ms",
		act.ID, polls, *delayLossFor, r.Switchovers, *r.GapMS)
	r.GapMS = nil // not a switchover gap
}

// TestFlappingServer cuts and heals the link between the current active
// and plc every 3 s for 45 s, with a 10 s cooldown.
func TestFlappingServer(t *testing.T) {
	needFull(t)
	const cooldown, flap, period = 10 * time.Second, 45 * time.Second, 3 * time.Second
	e := start(t, opts{cooldown: cooldown})
	r := e.scenario("flapping-server", "the active's link to plc goes down/up every 3 s for 45 s (cooldown 10 s): at most one switchover per cooldown, no second writer")
	e.waitStable(settle)
	from := time.Now()
	tick := time.NewTicker(period)
	cut := ""
	for i := 0; time.Since(from) < flap; i++ {
		if cut != "" {
			e.lab.Heal(cut, hPLC)
			cut = ""
		} else {
			cut = e.currentActive().Host
			e.lab.Cut(cut, hPLC)
		}
		<-tick.C
	}
	tick.Stop()
	// Heal and settle first: a handover the last cut started is counted too.
	e.finish(r)
	evs, err := e.events()
	if err != nil {
		t.Fatal(err)
	}
	var mon []time.Time
	for _, ev := range evs {
		if ev.Reason == "server-monitor" && ev.Time.After(from) {
			mon = append(mon, ev.Time)
		}
	}
	minSpacing := time.Duration(0)
	for i := 1; i < len(mon); i++ {
		d := mon[i].Sub(mon[i-1])
		if minSpacing == 0 || d < minSpacing {
			minSpacing = d
		}
		if d < cooldown {
			t.Errorf("server-monitor switchovers %s apart, within the cooldown of %s", d, cooldown)
		}
	}
	if max := int(flap/cooldown) + 1; len(mon) > max {
		t.Errorf("%d server-monitor switchovers in %s, want at most %d", len(mon), flap, max)
	}
	e.switchGaps(r, from)
	r.Observed = fmt.Sprintf("%d server-monitor switchovers in %s of flapping (and its healing), closest two %s apart", len(mon), flap, minSpacing.Round(100*time.Millisecond))
}

// currentActive is the node that reports itself active (a when neither).
func (e *bed) currentActive() *member {
	if st, err := e.status(e.b); err == nil && st.Role == "active" {
		return e.b
	}
	return e.a
}

// switchGaps records, for every writer change in the journal after from,
// the silence at the target between the old writer's last write and the
// new writer's first.
func (e *bed) switchGaps(r *result, from time.Time) {
	ws := e.journal()
	for i := 1; i < len(ws); i++ {
		if ws[i].Time.After(from) && ws[i].Session != ws[i-1].Session {
			r.gap(ws[i].Time.Sub(ws[i-1].Time))
		}
	}
}

// TestKillDuringMappingsUpdate kills the active with SIGKILL while a
// mappings update (adding v19) is being applied on it.
func TestKillDuringMappingsUpdate(t *testing.T) {
	needFull(t)
	e := start(t, opts{vars: 20, mapped: 19})
	r := e.scenario("kill-during-update", "kill -9 of the active while it applies a mappings update: the new active runs either the whole new config (v19 mirrored) or the old one (v19 never written)")
	act, sby, epoch := e.waitStable(settle)
	oldHash := e.CfgHash
	newPath := filepath.Join(e.dir, "mirror-v2.yml")
	newHash := e.writeConfig(newPath, 20)
	body, err := os.ReadFile(newPath)
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPut,
			e.adminURL(act)+"/api/v1/mappings?file=mirror-v2.yml", &signalReader{r: strings.NewReader(string(body)), sent: sent})
		res, err := act.Client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			err = fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(b)))
		}
		done <- err
	}()
	<-sent // the whole body is on its way: the active is applying it
	killAt := time.Now()
	act.Proc.Kill()
	reply := <-done
	t.Logf("the update's reply: %v", reply)
	newEpoch := e.waitActive(sby, epoch, settle)
	st, err := e.status(sby)
	if err != nil {
		t.Fatal(err)
	}
	applied := false
	switch st.ConfigHash {
	case newHash:
		applied = true
	case oldHash:
	default:
		t.Fatalf("the new active runs config %.12s, neither the old %.12s nor the new %.12s", st.ConfigHash, oldHash, newHash)
	}
	e.CfgHash = st.ConfigHash
	if applied {
		e.O.Mapped = 20
	}
	e.restart(act)
	lastOld, firstNew := e.takeover(killAt)
	r.gap(firstNew.Time.Sub(lastOld.Time))
	e.finish(r)
	v19 := 0
	for _, w := range e.journal() {
		if w.Node == invariant.NodeID(19) {
			v19++
		}
	}
	if !applied && v19 > 0 {
		t.Errorf("the old config runs, yet v19 was written %d times", v19)
	}
	what := "not applied (old config on both nodes, v19 never written)"
	if applied {
		what = fmt.Sprintf("applied in full (new config on both nodes, v19 mirrored: %d writes)", v19)
	}
	r.Observed = fmt.Sprintf("%s took over (epoch %d); update %s", sby.ID, newEpoch, what)
}

// signalReader closes sent once its reader is exhausted (the request
// body has been handed to the connection).
type signalReader struct {
	r    io.Reader
	sent chan struct{}
	done bool
}

func (s *signalReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if errors.Is(err, io.EOF) && !s.done {
		s.done = true
		close(s.sent)
	}
	return n, err
}

// TestStandbyDiskFull fills the standby's data directory (a 16 MiB
// tmpfs: as root, file modes do not stop writes) and then changes the
// mappings, which the standby must store.
func TestStandbyDiskFull(t *testing.T) {
	needFull(t)
	e := start(t, opts{vars: 20, mapped: 19, tmpfs: true})
	r := e.scenario("standby-disk-full", "the standby's data dir is full while the pair replicates a change: the standby reports it, the active keeps writing (no switchover), the standby recovers once space is freed")
	act, sby, epoch := e.waitStable(settle)
	fill := filepath.Join(sby.Data, "fill")
	fillDisk(t, fill)
	newPath := filepath.Join(e.dir, "mirror-v2.yml")
	newHash := e.writeConfig(newPath, 20)
	body, err := os.ReadFile(newPath)
	if err != nil {
		t.Fatal(err)
	}
	res, err := act.Client.Do(mustReq(http.MethodPut, e.adminURL(act)+"/api/v1/mappings", string(body)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	t.Logf("apply on the active with the standby's disk full: %s %s", res.Status, strings.TrimSpace(string(b)))
	changedAt := time.Now()
	// The active is unaffected: it keeps its role and writes new values.
	polls := harness.Holds(t, 10*e.O.Heartbeat, "the active unaffected by the standby's full disk", func() (bool, string) {
		st, err := e.status(act)
		if err != nil {
			return false, err.Error()
		}
		return st.Role == "active" && st.Epoch == epoch, harness.Brief(st)
	})
	e.waitLive(changedAt, settle)
	// What the standby reports: not READY, and why, in its status.
	var st redundancy.Status
	reported := harness.WaitFor(settle, func() bool {
		st, _ = e.status(sby)
		return !st.Ready && strings.Contains(st.NotReady, "no space left on device") &&
			strings.Contains(st.DataDir, "no space left on device")
	})
	report := harness.Brief(st)
	logged := strings.Contains(sby.Proc.Stderr.String(), "no space left on device")
	t.Logf("standby with a full disk: status %s (not_ready %q); 'no space left on device' in its log: %v", report, st.NotReady, logged)
	if !reported {
		t.Errorf("the standby's status does not report its full disk: ready=%v not_ready=%q data_dir_problem=%q", st.Ready, st.NotReady, st.DataDir)
	}
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	e.CfgHash, e.O.Mapped = newHash, 20
	e.finish(r)
	if r.Switchovers != 0 {
		t.Errorf("%d switchovers, want none", r.Switchovers)
	}
	r.Observed = fmt.Sprintf("%s active throughout (%d polls), new config applied on the active; standby %s: ready=%v, status says %q, ENOSPC in its log=%v, still on config %.8s; READY on the new config once space was freed",
		act.ID, polls, sby.ID, st.Ready, st.NotReady, logged, st.ConfigHash)
}

func mustReq(method, url, body string) *http.Request {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	return req
}

// fillDisk writes path until the file system is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for range 1 << 12 { // bounded: 4 GiB at most
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
	t.Fatal("the data dir never filled up")
}
