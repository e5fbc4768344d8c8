// Package fault is uamirror's fault matrix (issue #7): the redundant pair
// runs in a network lab (test/netlab: every host a network namespace on
// this machine), each member and each OPC UA server on a host of its own,
// and the tests break links, hosts, servers, disks and processes on
// purpose. Every scenario states its expected outcome first and is judged
// from the outside: the members' admin API and the target server's write
// journal (test/invariant).
//
// Hosts: h1 node a, h2 node b, h3 the arbiter, h4 the source server
// "plc", h5 the target server "scada".
//
//	go test -race -count=1 ./test/fault/                      # the CI subset
//	go test -race -count=1 ./test/fault/ -fault.full          # every scenario (or UAMIRROR_FAULT_FULL=1)
//	go test -race -count=1 -timeout 40m ./test/fault/ -run Soak -soak 30m [-seed N]
//
// Without root, iproute2 or nftables the tests skip with the reason;
// test/netlab/netlab.sh sandbox go test ./test/fault runs them in a user
// namespace where the machine allows one.
package fault

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/invariant"
	"github.com/uamirror/uamirror/test/netlab"
)

var (
	full = flag.Bool("fault.full", os.Getenv("UAMIRROR_FAULT_FULL") != "",
		"run every scenario of the fault matrix (default: the CI subset); also UAMIRROR_FAULT_FULL=1")
	resultsFile = flag.String("fault.results", os.Getenv("UAMIRROR_FAULT_RESULTS"),
		"append one JSON line per scenario (the RELIABILITY.md table) to this file")
	delayLossFor = flag.Duration("fault.delayloss", 5*time.Minute, "how long the delay+loss scenario watches (full set)")
)

// Lab hosts.
const (
	hA, hB, hArb, hPLC, hSCADA = "h1", "h2", "h3", "h4", "h5"
	simPort                    = "4840"
)

// Deadlines are generous (shared machine, race-instrumented members); the
// conditions are strict.
const (
	settle = 30 * time.Second
	rejoin = 60 * time.Second
)

// The admin API is polled every 50 ms (a lab's five race-built processes
// on two cores: slower than the pair tests' default).
func init() { harness.PollEvery = 50 * time.Millisecond }

// needFull skips a scenario outside the full set.
func needFull(t *testing.T) {
	t.Helper()
	if !*full {
		t.Skip("not in the CI subset: run with -fault.full or UAMIRROR_FAULT_FULL=1")
	}
}

// opts describes a bed.
type opts struct {
	vars, changing int
	mapped         int // mappings v0…v<mapped-1> (default all vars)
	rate           float64
	policy         string
	faultDelay     time.Duration
	cooldown       time.Duration
	heartbeat      time.Duration
	tmpfs          bool // data dirs of a and b on small tmpfs mounts
	// plain runs the pair without TLS (the admin API then open, with
	// --admin-insecure). By default the bed is a secured pair: mutual TLS
	// on raft and the peer link from `pki init-pair`, the admin API on
	// https with a bearer token — what a plant should run.
	plain bool
}

func (o *opts) defaults() {
	if o.vars == 0 {
		o.vars = 20
	}
	if o.mapped == 0 {
		o.mapped = o.vars
	}
	if o.changing == 0 {
		o.changing = 10
	}
	if o.rate == 0 {
		o.rate = 200
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
}

type sim struct {
	host     string
	proc     *harness.Proc
	endpoint string
	journal  string
}

type member struct {
	id, role, host string
	data           string
	args           []string
	proc           *harness.Proc
	client         *http.Client
}

// bed is a pair in the lab: plc (h4, its first `changing` variables
// change at `rate`) → scada (h5, journaled), nodes a (h1) and b (h2), the
// arbiter (h3).
type bed struct {
	t          *testing.T
	o          opts
	lab        *netlab.Lab
	dir        string
	plc, scada *sim
	a, b, arb  *member
	cfgPath    string
	cfgHash    string
	sets       int
	setMu      sync.Mutex
}

func start(t *testing.T, o opts) *bed {
	t.Helper()
	o.defaults()
	lab := netlab.New(t, 5)
	harness.Binary(t) // build before the clocks start
	e := &bed{t: t, o: o, lab: lab, dir: t.TempDir()}
	e.plc = e.startSim(hPLC, "", "--rate", fmt.Sprint(o.rate), "--changing", strconv.Itoa(o.changing))
	e.scada = e.startSim(hSCADA, filepath.Join(e.dir, "scada.journal"))
	e.setStatic()

	e.cfgPath = filepath.Join(e.dir, "mirror.yml")
	e.cfgHash = e.writeConfig(e.cfgPath, o.mapped)
	e.a = &member{id: "a", role: "node", host: hA}
	e.b = &member{id: "b", role: "node", host: hB}
	e.arb = &member{id: "arb", role: "arbiter", host: hArb}
	all := []*member{e.a, e.b, e.arb}
	var members []string
	for _, m := range all {
		ip := lab.IP(m.host)
		s := fmt.Sprintf("id=%s,role=%s,raft=%s:7001,admin=%s:7201", m.id, m.role, ip, ip)
		if m.role == "node" {
			s += ",peer=" + ip + ":7101"
		}
		members = append(members, "--member", s)
	}
	sec := e.secure(all)
	for _, m := range all {
		tr := &http.Transport{DialContext: lab.Dialer(m.host), MaxIdleConnsPerHost: 2}
		m.client = &http.Client{Timeout: 3 * time.Second, Transport: tr}
		if sec != nil {
			tr.TLSClientConfig = &tls.Config{RootCAs: sec.ca}
			m.client.Transport = &harness.TokenTransport{Token: sec.token, Base: tr}
		}
		t.Cleanup(tr.CloseIdleConnections)
	}
	for _, m := range all {
		m.data = filepath.Join(e.dir, "data-"+m.id)
		if err := os.MkdirAll(m.data, 0o755); err != nil {
			t.Fatal(err)
		}
		if o.tmpfs && m.role == "node" {
			e.mountTmpfs(m.data)
		}
		m.args = append([]string{m.role, "--id", m.id, "--data", m.data}, members...)
		m.args = append(m.args, "--heartbeat", o.heartbeat.String(), "--policy", o.policy,
			"--fault-delay", o.faultDelay.String(), "--cooldown", o.cooldown.String())
		if m.role == "node" {
			m.args = append(m.args, "--config", e.cfgPath)
		}
		if sec != nil {
			m.args = append(m.args, sec.args(m.id)...)
		} else {
			m.args = append(m.args, "--admin-insecure", "--pair-insecure") // raft and peer on namespace IPs: refused without it
		}
	}
	t.Cleanup(func() {
		for _, p := range []struct {
			name string
			proc *harness.Proc
		}{{"plc", e.plc.proc}, {"scada", e.scada.proc}, {"a", e.a.proc}, {"b", e.b.proc}, {"arb", e.arb.proc}} {
			if p.proc != nil {
				checkCrash(t, p.name, p.proc)
			}
		}
		if t.Failed() || os.Getenv("FAULT_KEEP_LOGS") != "" {
			e.dumpLogs()
		}
	})
	e.startMember(e.arb)
	e.startMember(e.a)
	e.startMember(e.b)
	e.waitStable(settle)
	e.waitMirrored(e.static(), settle)
	return e
}

func (e *bed) startSim(host, journal string, extra ...string) *sim {
	e.t.Helper()
	args := []string{"simserver", "--host", e.lab.IP(host), "--port", simPort, "--vars", strconv.Itoa(e.o.vars), "--type", "Double", "--control"}
	if journal != "" {
		args = append(args, "--journal", journal)
	}
	p := harness.StartIn(e.t, e.lab.Exec(host), e.lab.Env(), append(args, extra...)...)
	return &sim{host: host, proc: p, endpoint: p.Ready("endpoint"), journal: journal}
}

func (e *bed) startMember(m *member) {
	e.t.Helper()
	m.proc = harness.StartIn(e.t, e.lab.Exec(m.host), e.lab.Env(), m.args...)
}

// restart starts a member that was killed again (same data).
func (e *bed) restart(m *member) {
	e.t.Helper()
	checkCrash(e.t, m.id, m.proc)
	m.proc.Restart()
}

// mountTmpfs mounts a small tmpfs on dir (unmounted in cleanup): a disk
// that can be filled (root ignores file modes, not a full disk).
func (e *bed) mountTmpfs(dir string) {
	e.t.Helper()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "uamirror-fault", dir).CombinedOutput(); err != nil {
		e.t.Skipf("cannot mount a tmpfs for the data dir: %v: %s", err, out)
	}
	e.t.Cleanup(func() {
		// The members are gone by now (cleanups run in reverse order).
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			e.t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

func checkCrash(t *testing.T, name string, proc *harness.Proc) {
	t.Helper()
	out := proc.Stderr.String()
	for _, marker := range []string{"WARNING: DATA RACE", "\npanic: ", "\nfatal error: "} {
		if i := strings.Index("\n"+out, marker); i >= 0 {
			t.Errorf("%s: %s\n%s", name, strings.TrimSpace(marker), out[max(0, i-1):min(len(out), i+4000)])
			return
		}
	}
}

func (e *bed) dumpLogs() {
	dir := filepath.Join(os.TempDir(), "uamirror-fault-logs", strings.ReplaceAll(e.t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	e.t.Logf("member logs in %s", dir)
	if b, err := os.ReadFile(e.scada.journal); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "scada.journal"), b, 0o644)
	}
	for _, m := range []*member{e.a, e.b, e.arb} {
		if m.proc != nil {
			_ = os.WriteFile(filepath.Join(dir, m.id+".log"), []byte(m.proc.Stderr.String()), 0o644)
		}
	}
}

// ---- values ----

func (e *bed) static() []int {
	var out []int
	for i := e.o.changing; i < e.o.mapped; i++ {
		out = append(out, i)
	}
	return out
}

func (e *bed) changingVars() []int {
	var out []int
	for i := range e.o.changing {
		out = append(out, i)
	}
	return out
}

// setStatic gives every static source variable a new value.
func (e *bed) setStatic() {
	e.setMu.Lock()
	defer e.setMu.Unlock()
	for _, i := range e.static() {
		if err := e.plc.proc.Send("set " + strconv.Itoa(i) + " " + strconv.FormatFloat(invariant.SetValue(i, e.sets), 'f', -1, 64)); err != nil {
			e.t.Errorf("plc control: %v", err)
		}
	}
	e.sets++
}

// read reads variables idx of s (from inside its host).
func (e *bed) read(s *sim, idx []int) ([]float64, []time.Time, error) {
	nodes := make([]string, len(idx))
	for k, i := range idx {
		nodes[k] = invariant.NodeID(i)
	}
	var vals []float64
	var tss []time.Time
	err := e.lab.InNS(s.host, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		dvs, err := harness.ReadValues(ctx, s.endpoint, nodes)
		if err != nil {
			return err
		}
		for k, dv := range dvs {
			if dv == nil || dv.Value == nil {
				return fmt.Errorf("v%d: no value", idx[k])
			}
			f, ok := dv.Value.Value().(float64)
			if !ok {
				return fmt.Errorf("v%d: %T, want float64", idx[k], dv.Value.Value())
			}
			vals, tss = append(vals, f), append(tss, dv.SourceTimestamp)
		}
		return nil
	})
	return vals, tss, err
}

// waitMirrored waits until the target holds the source's values of idx.
func (e *bed) waitMirrored(idx []int, timeout time.Duration) {
	e.t.Helper()
	harness.WaitState(e.t, timeout, fmt.Sprintf("target values of %v equal to the source's", idx), func() (bool, string) {
		src, _, err := e.read(e.plc, idx)
		if err != nil {
			return false, "plc: " + err.Error()
		}
		dst, _, err := e.read(e.scada, idx)
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

// waitLive waits until every changing variable at the target carries a
// source timestamp after t0.
func (e *bed) waitLive(t0 time.Time, timeout time.Duration) {
	e.t.Helper()
	idx := e.changingVars()
	harness.WaitState(e.t, timeout, "new source values of every changing variable at the target", func() (bool, string) {
		_, ts, err := e.read(e.scada, idx)
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

// writeConfig writes the mirror config plc v_i → scada v_i (i < mapped)
// with the servers' lab endpoints and returns its hash.
func (e *bed) writeConfig(path string, mapped int) string {
	e.t.Helper()
	var b strings.Builder
	b.WriteString("servers:\n")
	for _, s := range []struct {
		name string
		sim  *sim
	}{{"plc", e.plc}, {"scada", e.scada}} {
		fmt.Fprintf(&b, "  - name: %s\n    endpoints: [%q]\n    timeouts: {connect: 2s, keepalive: 200ms, request: 1s, data_age: 3s}\n", s.name, s.sim.endpoint)
	}
	b.WriteString("mappings:\n")
	for i := range mapped {
		fmt.Fprintf(&b, "  - source: {server: plc, node: %q}\n    target: {server: scada, node: %q}\n", invariant.NodeID(i), invariant.NodeID(i))
	}
	b.WriteString("engine:\n  publishing_interval: 50ms\n  retry_min: 50ms\n  retry_max: 500ms\n")
	cfg, err := mapping.ParseYAML([]byte(b.String()), path)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		e.t.Fatalf("test config does not validate: %v\n%s", err, b.String())
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return cfg.Hash()
}

// ---- admin API (dialed from inside the member's own host, which works
// even while the host is isolated) ----

// admin is m's admin API client.
func (e *bed) admin(m *member) harness.Admin {
	return harness.NewAdmin(m.id, e.adminURL(m), m.client)
}

func (e *bed) get(m *member, path string, out any) error { return e.admin(m).Get(path, out) }

func (e *bed) status(m *member) (redundancy.Status, error) {
	var st redundancy.Status
	if m.proc == nil || m.proc.Exited() {
		return st, fmt.Errorf("%s is not running", m.id)
	}
	err := e.get(m, "/api/v1/status", &st)
	return st, err
}

// events returns the longest switchover journal a live member answers with.
func (e *bed) events() ([]redundancy.Event, error) {
	var errs []error
	var best []redundancy.Event
	answered := false
	for _, m := range []*member{e.a, e.b, e.arb} {
		if m.proc == nil || m.proc.Exited() {
			continue
		}
		var res struct {
			Events []redundancy.Event `json:"events"`
		}
		if err := e.get(m, "/api/v1/events", &res); err != nil {
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

func (e *bed) other(m *member) *member {
	if m == e.a {
		return e.b
	}
	return e.a
}

// waitStable waits for one active writing node and a READY standby that
// agree on the epoch, the active and the config.
func (e *bed) waitStable(timeout time.Duration) (act, sby *member, epoch uint64) {
	e.t.Helper()
	pw := harness.PendingWatch{Limit: pendingLimit}
	harness.WaitState(e.t, timeout, "a stable pair (one active, one READY standby)", func() (bool, string) {
		sa, err := e.status(e.a)
		if err != nil {
			return false, err.Error()
		}
		sb, err := e.status(e.b)
		if err != nil {
			return false, err.Error()
		}
		ok, bActive, ep, state := harness.StablePair(sa, sb, e.cfgHash)
		act, sby, epoch = e.a, e.b, ep
		sSby := sb
		if bActive {
			act, sby, sSby = e.b, e.a, sa
		}
		if !ok {
			pw.Check(e.t, sSby, e.pendingOf(sby))
		}
		return ok, state
	})
	return act, sby, epoch
}

// pendingLimit: a standby may report unresolved mappings this long
// without a break before the test fails naming them (harness.PendingWatch).
const pendingLimit = settle / 2

// pendingOf lists m's pending mappings from its admin API.
func (e *bed) pendingOf(m *member) func() (diagnostics.MappingPage, error) { return e.admin(m).Pending }

// waitActive waits until m is active (and writing) under an epoch after
// `after`, and returns that epoch.
func (e *bed) waitActive(m *member, after uint64, timeout time.Duration) uint64 {
	e.t.Helper()
	var epoch uint64
	harness.WaitState(e.t, timeout, fmt.Sprintf("%s active under an epoch after %d", m.id, after), func() (bool, string) {
		st, err := e.status(m)
		if err != nil {
			return false, err.Error()
		}
		epoch = st.Epoch
		return st.Role == "active" && st.Ready && st.Epoch > after && st.Active == m.id, m.id + ": " + harness.Brief(st)
	})
	return epoch
}

// waitEvent waits for the journal event of epoch.
func (e *bed) waitEvent(epoch uint64, timeout time.Duration) redundancy.Event {
	e.t.Helper()
	var ev redundancy.Event
	harness.WaitState(e.t, timeout, fmt.Sprintf("journal event of epoch %d", epoch), func() (bool, string) {
		evs, err := e.events()
		if err != nil {
			return false, err.Error()
		}
		for _, x := range evs {
			if x.Epoch == epoch {
				ev = x
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events, none of epoch %d", len(evs), epoch)
	})
	return ev
}

func (e *bed) journal() []invariant.Write { return invariant.ReadJournal(e.t, e.scada.journal) }

// ---- waiting ----

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ---- the secured pair ----

// bedSecurity is the pair's TLS material (from `pki init-pair`) and the
// admin token.
type bedSecurity struct {
	dir, tokenFile, token string
	ca                    *x509.CertPool
}

// secure makes the pair's certificates for the members' lab addresses
// and an admin token; nil for a plain bed.
func (e *bed) secure(all []*member) *bedSecurity {
	e.t.Helper()
	if e.o.plain {
		return nil
	}
	sec := &bedSecurity{dir: filepath.Join(e.dir, "pki"), tokenFile: filepath.Join(e.dir, "admin.token")}
	args := []string{"pki", "init-pair", "--out", sec.dir}
	for _, m := range all {
		flag := "--member"
		if m.role == "arbiter" {
			flag = "--arbiter"
		}
		args = append(args, flag, m.id+"="+e.lab.IP(m.host))
	}
	if out, err := exec.Command(harness.Binary(e.t), args...).CombinedOutput(); err != nil {
		e.t.Fatalf("pki init-pair: %v\n%s", err, out)
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	sec.token = hex.EncodeToString(b)
	if err := os.WriteFile(sec.tokenFile, []byte(sec.token+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(sec.dir, "ca", "ca.crt"))
	if err != nil {
		e.t.Fatal(err)
	}
	sec.ca = x509.NewCertPool()
	sec.ca.AppendCertsFromPEM(ca)
	return sec
}

// args are member id's TLS and admin-token flags.
func (sec *bedSecurity) args(id string) []string {
	d := filepath.Join(sec.dir, id)
	return []string{"--tls-ca", filepath.Join(d, "ca.crt"), "--tls-cert", filepath.Join(d, id+".crt"),
		"--tls-key", filepath.Join(d, id+".key"), "--admin-token-file", sec.tokenFile}
}

// adminURL is member m's admin API base URL.
func (e *bed) adminURL(m *member) string {
	if e.o.plain {
		return "http://" + e.lab.IP(m.host) + ":7201"
	}
	return "https://" + e.lab.IP(m.host) + ":7201"
}
