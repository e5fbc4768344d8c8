// Package pair holds the end-to-end tests of uamirror's redundant pair.
// Every member (two bridge nodes and an optional arbiter) and both OPC UA
// servers run as separate processes of the real binary, so a test can
// kill -9, freeze (SIGSTOP), restart or cut one of them, and judge the
// result from the outside only: the admin API of the members and the
// target server's write journal, which records every value written, by
// which session, in order.
//
// Run with
//
//	go test -race -count=1 ./test/pair/
//	go test -run '^$' -bench SwitchoverGap -benchtime 1x ./test/pair/
package pair

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/invariant"
	"github.com/uamirror/uamirror/test/tcpproxy"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The simulation servers' value scheme (see test/invariant).
const ns = invariant.NS

func nodeID(i int) string { return invariant.NodeID(i) }

// harness.PollEvery is how often conditions on the admin API are polled. The

// freeAddr returns a 127.0.0.1 address that was free a moment ago (see
// harness.FreePort for why not an ephemeral port).
func freeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
}

// sim is a simulation OPC UA server process (always with --control, so
// that tests can set its values).
type sim struct {
	proc     *harness.Proc
	endpoint string
	journal  string
}

func startSim(t testing.TB, vars int, journal string, extra ...string) *sim {
	t.Helper()
	args := []string{"simserver", "--port", "0", "--vars", strconv.Itoa(vars), "--type", "Double", "--control"}
	if journal != "" {
		args = append(args, "--journal", journal)
	}
	p := harness.Start(t, append(args, extra...)...)
	return &sim{proc: p, endpoint: p.Ready("endpoint"), journal: journal}
}

// set sets variable i (the simserver answers on stdout, which the harness
// drains; tests confirm by reading the value back or at the target).
func (s *sim) set(t testing.TB, i int, v float64) {
	t.Helper()
	if err := s.proc.Send("set " + strconv.Itoa(i) + " " + strconv.FormatFloat(v, 'f', -1, 64)); err != nil {
		t.Fatalf("simserver control: %v", err)
	}
}

// read returns the values and source timestamps of variables idx.
func (s *sim) read(idx []int) ([]float64, []time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nodes := make([]string, len(idx))
	for k, i := range idx {
		nodes[k] = nodeID(i)
	}
	dvs, err := harness.ReadValues(ctx, s.endpoint, nodes)
	if err != nil {
		return nil, nil, err
	}
	vals, tss := make([]float64, len(idx)), make([]time.Time, len(idx))
	for k, dv := range dvs {
		if dv == nil || dv.Value == nil {
			return nil, nil, fmt.Errorf("v%d: no value", idx[k])
		}
		f, ok := dv.Value.Value().(float64)
		if !ok {
			return nil, nil, fmt.Errorf("v%d: %T, want float64", idx[k], dv.Value.Value())
		}
		vals[k], tss[k] = f, dv.SourceTimestamp
	}
	return vals, tss, nil
}

func setValue(i, k int) float64 { return invariant.SetValue(i, k) }

func validValue(node string, v float64) error { return invariant.ValidValue(node, v) }

// pairOpts describes a pair to start.
type pairOpts struct {
	vars     int     // simulated variables per server (default 20)
	mapped   int     // mappings v0…v<mapped-1> (default all vars)
	changing int     // the first changing variables change at rate (default 10)
	rate     float64 // source changes/s in total (0: static sources)

	noArbiter  bool
	policy     string        // server monitor policy (default any)
	faultDelay time.Duration // default 1s
	cooldown   time.Duration // default 2s
	heartbeat  time.Duration // default 500ms (the product default)
	// proxyA: node a reaches both servers through TCP proxies (node b
	// directly), so a test can cut a's links alone.
	proxyA bool
	// both makes every mapping bidirectional; scadaArgs are extra flags of
	// the target server (e.g. --clock-offset); engine is extra YAML under
	// engine: ("  clock_skew: 10m\n").
	both      bool
	scadaArgs []string
	engine    string
	// memberArgs, when set, adds flags to member id's command line (TLS).
	memberArgs func(id string) []string
	// scheme of the admin API ("http://" by default) and the client that
	// talks to it (default: a plain one).
	scheme string
	client *http.Client
}

func (o *pairOpts) defaults() {
	if o.vars == 0 {
		o.vars = 20
	}
	if o.mapped == 0 {
		o.mapped = o.vars
	}
	if o.changing == 0 {
		o.changing = min(10, o.vars)
	}
	if o.policy == "" {
		o.policy = "any"
	}
	if o.faultDelay == 0 {
		o.faultDelay = time.Second
	}
	if o.cooldown == 0 {
		o.cooldown = 2 * time.Second
	}
	if o.heartbeat == 0 {
		o.heartbeat = 500 * time.Millisecond
	}
	if o.scheme == "" {
		o.scheme = "http://"
	}
}

// member is one pair member process.
type member struct {
	id, role          string
	raft, peer, admin string
	args              []string
	proc              *harness.Proc
}

func (m *member) flag() string {
	s := fmt.Sprintf("id=%s,role=%s,raft=%s,admin=%s", m.id, m.role, m.raft, m.admin)
	if m.peer != "" {
		s += ",peer=" + m.peer
	}
	return s
}

// pair is a running redundant pair with its two servers: plc (the source,
// whose first `changing` variables change at `rate`) and scada (the
// target, whose journal the invariants are checked on).
type pair struct {
	t       testing.TB
	o       pairOpts
	plc     *sim
	scada   *sim
	cfgPath string
	cfgHash string
	a, b    *member
	arb     *member // nil without an arbiter
	proxies map[string]*tcpproxy.Proxy
	client  *http.Client
	sets    int // `set` rounds done on the static variables
}

// startPair starts both servers, writes the mirror config and starts the
// members; it returns once the pair is stable (see waitStable) and the
// target holds the sources' static values.
func startPair(t testing.TB, o pairOpts) *pair {
	t.Helper()
	o.defaults()
	dir := t.TempDir()
	p := &pair{t: t, o: o, proxies: map[string]*tcpproxy.Proxy{},
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}}
	if o.client != nil {
		p.client = o.client
	}
	t.Cleanup(p.client.CloseIdleConnections)
	var extra []string
	if o.rate > 0 {
		extra = []string{"--rate", fmt.Sprint(o.rate), "--changing", strconv.Itoa(o.changing)}
	}
	p.plc = startSim(t, o.vars, "", extra...)
	p.scada = startSim(t, o.vars, filepath.Join(dir, "scada.journal"), o.scadaArgs...)
	// Give the static variables values the target does not hold yet, so
	// the first active has something to write.
	p.setStatic(t)

	p.cfgPath = filepath.Join(dir, "mirror.yml")
	p.cfgHash = writeConfigOpts(t, p.cfgPath, p.plc.endpoint, p.scada.endpoint, o.mapped, o)

	p.a = &member{id: "a", role: "node", raft: freeAddr(t), peer: freeAddr(t), admin: freeAddr(t)}
	p.b = &member{id: "b", role: "node", raft: freeAddr(t), peer: freeAddr(t), admin: freeAddr(t)}
	all := []*member{p.a, p.b}
	if !o.noArbiter {
		p.arb = &member{id: "arb", role: "arbiter", raft: freeAddr(t), admin: freeAddr(t)}
		all = append(all, p.arb)
	}
	var members []string
	for _, m := range all {
		members = append(members, "--member", m.flag())
	}
	timers := []string{"--heartbeat", o.heartbeat.String(), "--policy", o.policy,
		"--fault-delay", o.faultDelay.String(), "--cooldown", o.cooldown.String()}
	for _, m := range all {
		m.args = append([]string{m.role, "--id", m.id, "--data", filepath.Join(dir, "data-"+m.id)}, members...)
		m.args = append(m.args, timers...)
		if m.role == "node" {
			m.args = append(m.args, "--config", p.cfgPath)
		}
		if o.memberArgs != nil {
			m.args = append(m.args, o.memberArgs(m.id)...)
		}
	}
	if o.proxyA {
		for name, s := range map[string]*sim{"plc": p.plc, "scada": p.scada} {
			px, err := tcpproxy.New(strings.TrimPrefix(s.endpoint, "opc.tcp://"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { px.Close() })
			p.proxies[name] = px
			p.a.args = append(p.a.args, "--server-endpoint", name+"=opc.tcp://"+px.Addr())
		}
	}
	t.Cleanup(func() {
		// The processes are gone by now (their cleanups ran first).
		for _, pr := range []struct {
			name string
			proc *harness.Proc
		}{{"plc", p.plc.proc}, {"scada", p.scada.proc}} {
			p.checkCrash(pr.name, pr.proc)
		}
		for _, m := range []*member{p.a, p.b, p.arb} {
			if m != nil && m.proc != nil {
				p.checkCrash(m.id, m.proc)
			}
		}
		if t.Failed() || os.Getenv("PAIR_KEEP_LOGS") != "" {
			p.dumpLogs()
		}
	})
	// The arbiter first, so that the first election has a quorum at once.
	if p.arb != nil {
		p.start(p.arb)
	}
	p.start(p.a)
	p.start(p.b)
	p.waitStable(30 * time.Second)
	p.waitMirrored(p.static(), 20*time.Second)
	return p
}

func (p *pair) start(m *member) {
	p.t.Helper()
	m.proc = harness.Start(p.t, m.args...)
}

// kill kills m with SIGKILL and returns when it is gone.
func (p *pair) kill(m *member) time.Time {
	m.proc.Kill()
	return time.Now()
}

// restart starts a killed member again (same addresses and data dir).
func (p *pair) restart(m *member) {
	p.t.Helper()
	p.checkCrash(m.id, m.proc) // Restart starts a new stderr
	m.proc.Restart()
}

// checkCrash fails the test if a process reported a data race (the
// processes are race-instrumented when the tests are), a panic or a fatal
// runtime error on its stderr. An instrumented process reports a race
// and carries on, so nothing else would notice.
func (p *pair) checkCrash(name string, proc *harness.Proc) {
	p.t.Helper()
	out := proc.Stderr.String()
	for _, marker := range []string{"WARNING: DATA RACE", "\npanic: ", "\nfatal error: "} {
		if i := strings.Index("\n"+out, marker); i >= 0 {
			p.t.Errorf("%s: %s\n%s", name, strings.TrimSpace(marker), out[max(0, i-1):min(len(out), i+4000)])
			return
		}
	}
}

// dumpLogs keeps every member's log and the target journal in a
// directory under the system's temp dir and logs the last lines of each
// log (on failure, or always with PAIR_KEEP_LOGS=1).
func (p *pair) dumpLogs() {
	dir := filepath.Join(os.TempDir(), "uamirror-pair-logs", strings.ReplaceAll(p.t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err == nil {
		p.t.Logf("member logs in %s", dir)
	}
	if b, err := os.ReadFile(p.scada.journal); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "scada.journal"), b, 0o644)
	}
	for _, m := range []*member{p.a, p.b, p.arb} {
		if m == nil || m.proc == nil {
			continue
		}
		_ = os.WriteFile(filepath.Join(dir, m.id+".log"), []byte(m.proc.Stderr.String()), 0o644)
		lines := strings.Split(strings.TrimSpace(m.proc.Stderr.String()), "\n")
		var keep []string
		for _, l := range lines {
			if !strings.Contains(l, `"level":"debug"`) {
				keep = append(keep, l[:min(len(l), 400)])
			}
		}
		if len(keep) > 40 {
			keep = keep[len(keep)-40:]
		}
		p.t.Logf("---- log of %s (last %d lines) ----\n%s", m.id, len(keep), strings.Join(keep, "\n"))
	}
}

// static returns the indices of the mapped variables the generator does
// not change.
func (p *pair) static() []int {
	var out []int
	for i := 0; i < p.o.mapped; i++ {
		if p.o.rate == 0 || i >= p.o.changing {
			out = append(out, i)
		}
	}
	return out
}

// changingVars returns the indices of the mapped changing variables.
func (p *pair) changingVars() []int {
	if p.o.rate == 0 {
		return nil
	}
	var out []int
	for i := 0; i < min(p.o.changing, p.o.mapped); i++ {
		out = append(out, i)
	}
	return out
}

// setStatic gives every static variable of the source a new value.
func (p *pair) setStatic(t testing.TB) {
	t.Helper()
	for i := 0; i < p.o.vars; i++ {
		if p.o.rate == 0 || i >= p.o.changing {
			p.plc.set(t, i, setValue(i, p.sets))
		}
	}
	p.sets++
}

// waitMirrored waits until the target holds the source's values of idx.
func (p *pair) waitMirrored(idx []int, timeout time.Duration) {
	p.t.Helper()
	harness.WaitState(p.t, timeout, fmt.Sprintf("target values of %v equal to the source's", idx), func() (bool, string) {
		src, _, err := p.plc.read(idx)
		if err != nil {
			return false, "plc: " + err.Error()
		}
		dst, _, err := p.scada.read(idx)
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

// waitLive waits until every changing variable on the target carries a
// source timestamp after t0: new source values arrive again.
func (p *pair) waitLive(t0 time.Time, timeout time.Duration) {
	p.t.Helper()
	idx := p.changingVars()
	if len(idx) == 0 {
		return
	}
	harness.WaitState(p.t, timeout, "new source values of every changing variable at the target", func() (bool, string) {
		_, ts, err := p.scada.read(idx)
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

// writeConfig writes the mirror config (plc v_i → scada v_i for i <
// mapped, fast timeouts) and returns its hash.
func writeConfig(t testing.TB, path, plc, scada string, mapped int) string {
	t.Helper()
	return writeConfigOpts(t, path, plc, scada, mapped, pairOpts{})
}

// writeConfigOpts is writeConfig with o's both and engine.
func writeConfigOpts(t testing.TB, path, plc, scada string, mapped int, o pairOpts) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("servers:\n")
	for _, s := range [][2]string{{"plc", plc}, {"scada", scada}} {
		fmt.Fprintf(&b, "  - name: %s\n    endpoints: [%q]\n    timeouts: {keepalive: 200ms, request: 1s, data_age: 3s}\n", s[0], s[1])
	}
	b.WriteString("mappings:\n")
	for i := range mapped {
		fmt.Fprintf(&b, "  - source: {server: plc, node: %q}\n    target: {server: scada, node: %q}\n", nodeID(i), nodeID(i))
		if o.both {
			b.WriteString("    direction: both\n")
		}
	}
	b.WriteString("engine:\n  publishing_interval: 50ms\n  retry_min: 50ms\n  retry_max: 500ms\n" + o.engine)
	cfg, err := mapping.ParseYAML([]byte(b.String()), path)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("test config does not validate: %v\n%s", err, b.String())
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg.Hash()
}

// ---- admin API ----

// admin is m's admin API client.
func (p *pair) admin(m *member) harness.Admin {
	return harness.NewAdmin(m.id, p.o.scheme+m.admin, p.client)
}

func (p *pair) get(m *member, path string, out any) error { return p.admin(m).Get(path, out) }

func (p *pair) status(m *member) (redundancy.Status, error) {
	var st redundancy.Status
	err := p.get(m, "/api/v1/status", &st)
	return st, err
}

// events returns the switchover journal: the longest one the live
// members answer with (a member that just restarted may not have caught
// up with the replicated state yet).
func (p *pair) events() ([]redundancy.Event, error) {
	var errs []error
	var best []redundancy.Event
	answered := false
	for _, m := range []*member{p.a, p.b, p.arb} {
		if m == nil || m.proc.Exited() {
			continue
		}
		var res struct {
			Events []redundancy.Event `json:"events"`
		}
		if err := p.get(m, "/api/v1/events", &res); err != nil {
			errs = append(errs, err)
			continue
		}
		answered = true
		if len(res.Events) > len(best) {
			best = res.Events
		}
	}
	if !answered {
		return nil, errors.Join(append(errs, errors.New("no member answered"))...)
	}
	return best, nil
}

// switchover asks m (POST /api/v1/switchover) to hand the active role over.
func (p *pair) switchover(m *member) error {
	if _, err := p.admin(m).Switchover(context.Background(), diagnostics.SwitchoverRequest{}); err != nil {
		return fmt.Errorf("switchover on %s: %w", m.id, err)
	}
	return nil
}

func (p *pair) other(m *member) *member {
	if m == p.a {
		return p.b
	}
	return p.a
}

// waitStable waits until one node is active and writing, the other is a
// READY standby that the active sees as READY, both agree on the epoch,
// the active and the config, and returns them.
func (p *pair) waitStable(timeout time.Duration) (act, sby *member, epoch uint64) {
	p.t.Helper()
	pw := harness.PendingWatch{Limit: pendingLimit}
	harness.WaitState(p.t, timeout, "a stable pair (one active, one READY standby)", func() (bool, string) {
		sa, err := p.status(p.a)
		if err != nil {
			return false, err.Error()
		}
		sb, err := p.status(p.b)
		if err != nil {
			return false, err.Error()
		}
		ok, bActive, ep, state := harness.StablePair(sa, sb, p.cfgHash)
		act, sby, epoch = p.a, p.b, ep
		sSby := sb
		if bActive {
			act, sby, sSby = p.b, p.a, sa
		}
		if !ok {
			pw.Check(p.t, sSby, p.pendingOf(sby))
		}
		return ok, state
	})
	return act, sby, epoch
}

// pendingLimit: a standby may report unresolved mappings this long
// without a break before the test fails naming them (harness.PendingWatch).
const pendingLimit = settle / 2

// pendingOf lists m's pending mappings from its admin API.
func (p *pair) pendingOf(m *member) func() (diagnostics.MappingPage, error) {
	return p.admin(m).Pending
}

// waitActive waits until m is the active, writing under epoch.
func (p *pair) waitActive(m *member, epoch uint64, timeout time.Duration) {
	p.t.Helper()
	harness.WaitState(p.t, timeout, fmt.Sprintf("%s active under epoch %d", m.id, epoch), func() (bool, string) {
		st, err := p.status(m)
		if err != nil {
			return false, err.Error()
		}
		return st.Role == "active" && st.Ready && st.Epoch == epoch && st.Active == m.id, m.id + ": " + harness.Brief(st)
	})
}

// waitStandby waits until m is a READY standby of the active under epoch.
func (p *pair) waitStandby(m *member, epoch uint64, timeout time.Duration) {
	p.t.Helper()
	pw := harness.PendingWatch{Limit: pendingLimit}
	harness.WaitState(p.t, timeout, fmt.Sprintf("%s READY standby under epoch %d", m.id, epoch), func() (bool, string) {
		st, err := p.status(m)
		if err != nil {
			return false, err.Error()
		}
		pw.Check(p.t, st, p.pendingOf(m))
		return st.Role == "standby" && st.Ready && st.Epoch == epoch && st.Active == p.other(m).id, m.id + ": " + harness.Brief(st)
	})
}

// waitEvent waits for the journal event of epoch (and, with gap, until
// its gap is measured) and returns it.
func (p *pair) waitEvent(epoch uint64, gap bool, timeout time.Duration) redundancy.Event {
	p.t.Helper()
	var ev redundancy.Event
	harness.WaitState(p.t, timeout, fmt.Sprintf("journal event of epoch %d (gap measured: %v)", epoch, gap), func() (bool, string) {
		evs, err := p.events()
		if err != nil {
			return false, err.Error()
		}
		for _, e := range evs {
			if e.Epoch == epoch {
				ev = e
				return !gap || e.GapMS != nil, fmt.Sprintf("%+v", e)
			}
		}
		return false, fmt.Sprintf("%d events, none of epoch %d", len(evs), epoch)
	})
	return ev
}

// journal reads the target's write journal.
func (p *pair) journal() []write { return readJournal(p.t, p.scada.journal) }

// checkInvariants checks the target journal against the pair's events
// and reports every violation.
func (p *pair) checkInvariants() []write {
	p.t.Helper()
	evs, err := p.events()
	if err != nil {
		p.t.Errorf("events (checking without them): %v", err)
	}
	ws := p.journal()
	for _, v := range violations(ws, evs, validValue) {
		p.t.Error(v)
	}
	sessions := map[string]bool{}
	for _, w := range ws {
		sessions[w.Session] = true
	}
	p.t.Logf("target journal: %d writes by %d sessions; %d role changes", len(ws), len(sessions), len(evs))
	return ws
}

// cli runs the uamirror binary with args and returns its combined output
// and exit code.
func cli(t testing.TB, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Binary(t), args...)
	cmd.Env = append(os.Environ(), "UAMIRROR_LOG_FORMAT=json")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("uamirror %v: %v", args, err)
	}
	return string(out), 0
}
