package upgrade

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/diagnostics/adminclient"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/invariant"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Deadlines are generous (a shared machine, race-instrumented members);
// the conditions are strict.
const (
	settle   = 20 * time.Second // a role change, values arriving
	rejoin   = 40 * time.Second // a restarted member catching up
	vars     = 20               // simulated variables, all mapped
	changing = 10               // of which the generator changes the first ones…
	rate     = 1000             // …this many times a second in total

	// plannedBound is the planned switchover's gap bound
	// (docs/BENCHMARKS.md).
	plannedBound = 200 * time.Millisecond
	// legacyFence is what a new node adds to a switchover from a
	// previous-release active: that release's handover does not say
	// whether a Write was still in flight, so the new active waits the
	// fence out (redundancy.Config.FenceWait with the defaults: lease
	// 300 ms + abort bound 100 ms + margin 50 ms).
	// schedSlack is the timer and scheduling delay a loaded 2-core
	// machine adds to the fence wait and the first write (measured under
	// load average ~20: gaps of 517-626 ms against 650 ms).
	schedSlack = 200 * time.Millisecond
)

// legacyFence is what a new node adds to a switchover from a
// previous-release active: that release's handover does not say whether
// a Write was still in flight, so the new active waits the fence out
// (redundancy.Config.FenceWait: lease 300 ms + AbortBound + margin
// 50 ms, where cmd/uamirror sets AbortBound to the host's neighbour
// queue lifetime, (mcast_solicit + app_solicit) × retrans_time_ms, 3 s
// with Linux's defaults, read here as cmd reads it).
var legacyFence = 300*time.Millisecond + neighQueue() + 50*time.Millisecond

// neighQueue is cmd/uamirror's neighQueueBound for this host.
func neighQueue() time.Duration {
	var bound time.Duration
	for _, fam := range []string{"ipv4", "ipv6"} {
		dirs, _ := filepath.Glob(filepath.Join("/proc/sys/net", fam, "neigh", "*"))
		for _, dir := range dirs {
			var v [3]int64
			ok := true
			for i, f := range []string{"mcast_solicit", "app_solicit", "retrans_time_ms"} {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					ok = false
					break
				}
				v[i], err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
				ok = ok && err == nil
			}
			if d := time.Duration(v[0]+v[1]) * time.Duration(v[2]) * time.Millisecond; ok && d > bound {
				bound = d
			}
		}
	}
	if bound == 0 {
		return 3 * time.Second
	}
	return max(bound, 100*time.Millisecond)
}

// member is one pair member process, of either release.
type member struct {
	id, role          string
	raft, peer, admin string
	args              []string
	proc              *harness.Proc
	old               bool // runs the previous release
}

func (m *member) flag() string {
	s := fmt.Sprintf("id=%s,role=%s,raft=%s,admin=%s", m.id, m.role, m.raft, m.admin)
	if m.peer != "" {
		s += ",peer=" + m.peer
	}
	return s
}

// bed is a pair (two nodes and an arbiter) between two simulation
// servers: plc, whose first `changing` variables change `rate` times a
// second, and scada, whose write journal is checked.
type bed struct {
	t          *testing.T
	oldBin     string
	plc, scada *harness.Proc
	plcEP      string
	scadaEP    string
	journal    string
	cfgHash    string
	a, b, arb  *member
	client     *http.Client
}

func addr(t testing.TB) string { return "127.0.0.1:" + strconv.Itoa(harness.FreePort(t)) }

// newBed starts the servers and every member on the previous release and
// waits until the pair is stable.
func newBed(t *testing.T, oldBin string) *bed {
	dir := t.TempDir()
	b := &bed{t: t, oldBin: oldBin, journal: filepath.Join(dir, "scada.journal"),
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}}
	t.Cleanup(b.client.CloseIdleConnections)
	b.plc = harness.Start(t, "simserver", "--port", "0", "--vars", strconv.Itoa(vars), "--type", "Double", "--control",
		"--rate", strconv.Itoa(rate), "--changing", strconv.Itoa(changing))
	b.scada = harness.Start(t, "simserver", "--port", "0", "--vars", strconv.Itoa(vars), "--type", "Double", "--control",
		"--journal", b.journal)
	b.plcEP, b.scadaEP = b.plc.Ready("endpoint"), b.scada.Ready("endpoint")
	// The static variables get values the target does not hold yet.
	for i := changing; i < vars; i++ {
		if err := b.plc.Send(fmt.Sprintf("set %d %v", i, invariant.SetValue(i, 0))); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "mirror.yml")
	b.cfgHash = writeConfig(t, cfgPath, b.plcEP, b.scadaEP)

	b.a = &member{id: "a", role: "node", raft: addr(t), peer: addr(t), admin: addr(t), old: true}
	b.b = &member{id: "b", role: "node", raft: addr(t), peer: addr(t), admin: addr(t), old: true}
	b.arb = &member{id: "arb", role: "arbiter", raft: addr(t), admin: addr(t), old: true}
	all := []*member{b.arb, b.a, b.b}
	var members []string
	for _, m := range all {
		members = append(members, "--member", m.flag())
	}
	// Flags both releases have (the previous one has no --pair-insecure:
	// every address is loopback, which both take without TLS).
	for _, m := range all {
		m.args = append([]string{m.role, "--id", m.id, "--data", filepath.Join(dir, "data-"+m.id)}, members...)
		m.args = append(m.args, "--heartbeat", "500ms", "--policy", "any", "--fault-delay", "1s", "--cooldown", "2s")
		if m.role == "node" {
			m.args = append(m.args, "--config", cfgPath)
		}
	}
	t.Cleanup(func() {
		for _, m := range all {
			if m.proc != nil {
				checkCrash(t, m)
			}
		}
		if t.Failed() || os.Getenv("PAIR_KEEP_LOGS") != "" {
			for _, m := range all {
				if m.proc != nil {
					out := m.proc.Stderr.String()
					t.Logf("---- last log lines of %s (%s):\n%s", m.id, release(m), out[max(0, len(out)-6000):])
				}
			}
		}
	})
	for _, m := range all {
		b.start(m)
	}
	return b
}

func release(m *member) string {
	if m.old {
		return "previous release"
	}
	return "this tree"
}

// start starts m on its release.
func (b *bed) start(m *member) {
	b.t.Helper()
	if m.old {
		m.proc = startOld(b.t, b.oldBin, m.args...)
	} else {
		m.proc = harness.Start(b.t, m.args...)
	}
}

// upgrade stops m (SIGTERM) and starts this tree's binary in its place,
// on the same data directory and addresses.
func (b *bed) upgrade(m *member) {
	b.t.Helper()
	m.proc.Stop(10 * time.Second)
	checkCrash(b.t, m)
	m.old = false
	b.start(m)
}

// checkCrash fails the test on a data race, a panic, a fatal error, or a
// member that stopped on a command it could not apply, in m's log.
func checkCrash(t *testing.T, m *member) {
	t.Helper()
	out := m.proc.Stderr.String()
	for _, marker := range []string{"WARNING: DATA RACE", "\npanic: ", "\nfatal error: ", "unknown op", "STOPPING"} {
		if i := strings.Index("\n"+out, marker); i >= 0 {
			t.Errorf("%s (%s): %s\n%s", m.id, release(m), strings.TrimSpace(marker), out[max(0, i-2000):min(len(out), i+2000)])
			return
		}
	}
}

// writeConfig writes the mirror config (plc v_i → scada v_i) both
// releases parse, and returns its hash.
func writeConfig(t testing.TB, path, plc, scada string) string {
	t.Helper()
	var sb strings.Builder
	sb.WriteString("servers:\n")
	for _, s := range [][2]string{{"plc", plc}, {"scada", scada}} {
		fmt.Fprintf(&sb, "  - name: %s\n    endpoints: [%q]\n    timeouts: {keepalive: 200ms, request: 1s, data_age: 3s}\n", s[0], s[1])
	}
	sb.WriteString("mappings:\n")
	for i := range vars {
		fmt.Fprintf(&sb, "  - source: {server: plc, node: %q}\n    target: {server: scada, node: %q}\n", invariant.NodeID(i), invariant.NodeID(i))
	}
	sb.WriteString("engine:\n  publishing_interval: 50ms\n  retry_min: 50ms\n  retry_max: 500ms\n")
	cfg, err := mapping.ParseYAML([]byte(sb.String()), path)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("test config does not validate: %v", err)
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg.Hash()
}

func (b *bed) admin(m *member) *adminclient.Client {
	return adminclient.New("http://"+m.admin, adminclient.Options{HTTPClient: b.client})
}

// status is m's status; a previous-release member's lacks the version
// fields (zero).
func (b *bed) status(m *member) (redundancy.Status, error) {
	return b.admin(m).Status(context.Background())
}

// events is the longest switchover journal a live member answers with.
func (b *bed) events() []redundancy.Event {
	var best []redundancy.Event
	for _, m := range []*member{b.a, b.b, b.arb} {
		if m.proc.Exited() {
			continue
		}
		evs, err := b.admin(m).Events(context.Background())
		if err == nil && len(evs) > len(best) {
			best = evs
		}
	}
	return best
}

func brief(st redundancy.Status) string {
	s := fmt.Sprintf("%s ready=%v epoch=%d active=%q config=%.8s pair_protocol=%d recorded=%d", st.Role, st.Ready, st.Epoch,
		st.Active, st.ConfigHash, st.PairProtocol, st.RecordedProtocol)
	if st.NotReady != "" {
		s += " (" + st.NotReady + ")"
	}
	return s
}

// waitStable waits until one node is active and writing and the other
// is a READY standby it sees as READY, on the same epoch and config.
func (b *bed) waitStable(timeout time.Duration) (act, sby *member, epoch uint64) {
	b.t.Helper()
	harness.WaitState(b.t, timeout, "a stable pair (one active, one READY standby)", func() (bool, string) {
		sa, err := b.status(b.a)
		if err != nil {
			return false, err.Error()
		}
		sb, err := b.status(b.b)
		if err != nil {
			return false, err.Error()
		}
		act, sby = b.a, b.b
		sAct, sSby := sa, sb
		if sb.Role == redundancy.PairActive {
			act, sby, sAct, sSby = b.b, b.a, sb, sa
		}
		epoch = sAct.Epoch
		ok := sAct.Role == redundancy.PairActive && sSby.Role == redundancy.PairStandby && sAct.Ready && sSby.Ready &&
			sAct.StandbyReady && sAct.Epoch == sSby.Epoch && sAct.Active == act.id && sSby.Active == act.id &&
			sAct.ConfigHash == b.cfgHash && sSby.ConfigHash == b.cfgHash
		return ok, fmt.Sprintf("a: %s; b: %s", brief(sa), brief(sb))
	})
	return act, sby, epoch
}

// waitLive waits until every changing variable at the target carries a
// source timestamp after t0.
func (b *bed) waitLive(t0 time.Time, timeout time.Duration) {
	b.t.Helper()
	nodes := make([]string, changing)
	for i := range nodes {
		nodes[i] = invariant.NodeID(i)
	}
	harness.WaitState(b.t, timeout, "new source values of every changing variable at the target", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		dvs, err := harness.ReadValues(ctx, b.scadaEP, nodes)
		if err != nil {
			return false, err.Error()
		}
		for i, dv := range dvs {
			if dv == nil || !dv.SourceTimestamp.After(t0) {
				return false, fmt.Sprintf("v%d: not updated since %s", i, t0.Format("15:04:05.000"))
			}
		}
		return true, ""
	})
}

// notRecorded fails the test if member m's status shows the versions
// record (the replicated state of protocol 2) or a pair protocol above
// LegacyProtocol while a previous-release member is in the pair.
func (b *bed) notRecorded(m *member, why string) {
	b.t.Helper()
	st, err := b.status(m)
	if err != nil {
		b.t.Fatalf("%s: %v", m.id, err)
	}
	if st.RecordedProtocol != 0 || len(st.RecordedVersions) != 0 {
		b.t.Errorf("%s: the versions record is applied while %s: protocol %d, versions %+v", m.id, why, st.RecordedProtocol, st.RecordedVersions)
	}
	if st.PairProtocol != redundancy.LegacyProtocol {
		b.t.Errorf("%s: pair protocol %d while %s, want %d", m.id, st.PairProtocol, why, redundancy.LegacyProtocol)
	}
}

// TestRollingUpgradeFromPreviousRelease upgrades a running pair from the
// previous release (v0.1.0, PREVIOUS_RELEASE) to this tree under a
// stream of 1,000 source changes a second, the way docs/UPGRADE.md says:
// the arbiter, then the standby, a switchover, then the other node — each
// restarted on its own data directory, which the previous release wrote.
// At the target: no bad value, no value older than the last, one writer
// at a time; the switchover's gap within the planned bound (plus the
// fence a previous-release handover needs); the versions record (new in
// protocol 2) applied only once every member runs this tree.
func TestRollingUpgradeFromPreviousRelease(t *testing.T) {
	old := buildPrevious(t)
	began := time.Now()
	b := newBed(t, old)
	act, sby, epoch := b.waitStable(2 * settle)
	b.waitLive(time.Now(), settle)
	t.Logf("previous release pair stable in %s: %s active, epoch %d", time.Since(began).Round(time.Millisecond), act.id, epoch)

	// 1. The arbiter.
	b.upgrade(b.arb)
	harness.WaitState(t, rejoin, "the upgraded arbiter follows a leader", func() (bool, string) {
		st, err := b.status(b.arb)
		return err == nil && st.Ready && st.Version.Protocol == redundancy.ProtocolVersion, brief(st)
	})
	assertMigrated(t, b.arb)
	b.notRecorded(b.arb, "both nodes run the previous release")

	// 2. The standby: one node of each release.
	b.upgrade(sby)
	act2, _, epoch2 := b.waitStable(rejoin)
	if act2 != act || epoch2 != epoch {
		t.Fatalf("upgrading the standby moved the active role: %s active in epoch %d, was %s in %d", act2.id, epoch2, act.id, epoch)
	}
	assertMigrated(t, sby)
	st, err := b.status(sby)
	if err != nil {
		t.Fatal(err)
	}
	if v := memberVersion(st, act.id); v.Protocol != redundancy.LegacyProtocol || v.Source != "peer link" {
		t.Errorf("the upgraded standby sees the previous-release active as %+v, want protocol %d from the peer link", v, redundancy.LegacyProtocol)
	}
	b.notRecorded(sby, "the active runs the previous release")

	// 3. Switch over to the upgraded node, through the old active's API.
	trigger := time.Now()
	if _, err := b.admin(act).Switchover(context.Background(), diagnostics.SwitchoverRequest{}); err != nil {
		t.Fatalf("switchover on the previous-release active %s: %v", act.id, err)
	}
	act3, sby3, epoch3 := b.waitStable(settle)
	if act3 != sby || epoch3 != epoch+1 {
		t.Fatalf("after the switchover %s is active in epoch %d, want %s in %d", act3.id, epoch3, sby.id, epoch+1)
	}
	var lastOld, firstNew invariant.Write
	harness.WaitState(t, settle, "the new active's first write", func() (ok bool, _ string) {
		ws, err := invariant.ParseJournal(b.journal)
		if err != nil {
			return false, err.Error()
		}
		lastOld, firstNew, ok = invariant.Takeover(ws, time.Time{}, trigger)
		return ok, ""
	})
	gap := firstNew.Time.Sub(lastOld.Time)
	t.Logf("switchover %s (previous release) → %s (this tree): gap %.1f ms (bound %s + %s fence)", act.id, sby.id,
		float64(gap)/float64(time.Millisecond), plannedBound, legacyFence)
	if gap > plannedBound+legacyFence+schedSlack {
		t.Errorf("switchover gap %s, over the bound %s (+%s scheduling slack)", gap, plannedBound+legacyFence, schedSlack)
	}
	// The new active knows its standby runs the previous release: the
	// record stays unproposed however long it waits.
	harness.Holds(t, 3*time.Second, "no versions record while the standby runs the previous release", func() (bool, string) {
		st, err := b.status(sby3)
		if err != nil {
			return false, err.Error()
		}
		st2, err := b.status(act3)
		if err != nil {
			return false, err.Error()
		}
		return st.RecordedProtocol == 0 && st2.RecordedProtocol == 0 && st2.PairProtocol == redundancy.LegacyProtocol,
			"active " + brief(st2)
	})

	// 4. The other node.
	b.upgrade(act)
	act4, _, epoch4 := b.waitStable(rejoin)
	if act4 != sby || epoch4 != epoch+1 {
		t.Fatalf("upgrading the standby moved the active role: %s active in epoch %d", act4.id, epoch4)
	}
	assertMigrated(t, act)
	// Every member runs this tree: the record is applied, everywhere.
	for _, m := range []*member{b.a, b.b, b.arb} {
		harness.WaitState(t, settle, m.id+" applies the versions record", func() (bool, string) {
			st, err := b.status(m)
			if err != nil {
				return false, err.Error()
			}
			ok := st.RecordedProtocol == redundancy.ProtocolVersion && len(st.RecordedVersions) == 3
			for _, v := range st.RecordedVersions {
				ok = ok && v.Protocol == redundancy.ProtocolVersion
			}
			return ok && st.PairProtocol == redundancy.ProtocolVersion, brief(st)
		})
	}
	end := time.Now()
	b.waitLive(end, settle)

	// The target: every value one the source produced, none older than
	// the last, one writer at a time.
	ws := invariant.ReadJournal(t, b.journal)
	evs := b.events()
	r := invariant.Check(ws, evs, invariant.ValidValue)
	for _, v := range r.Violations {
		t.Error(v)
	}
	if r.Total > 0 {
		t.Errorf("%d violations at the target", r.Total)
	}
	if len(evs) == 0 || evs[0].Reason != "bootstrap" || evs[0].Epoch != 1 {
		t.Errorf("the journal lost the previous release's events across the upgrade: %+v", evs)
	}
	t.Logf("target journal: %d writes by %d sessions, %d bad or regressed, %d role changes; whole upgrade %s",
		r.Writes, r.Sessions, r.Total, len(evs), time.Since(began).Round(time.Second))
}

// memberVersion returns member id's version as st's node knows it.
func memberVersion(st redundancy.Status, id string) redundancy.MemberVersion {
	for _, m := range st.Members {
		if m.ID == id {
			return m.Version
		}
	}
	return redundancy.MemberVersion{}
}

// assertMigrated checks that m, now on this tree, opened the data
// directory the previous release wrote: its raft-boltdb v1 store was
// migrated (and kept aside), not replaced by a fresh one.
func assertMigrated(t *testing.T, m *member) {
	t.Helper()
	if !strings.Contains(m.proc.Stderr.String(), "migrated the raft store to raft-boltdb v2") {
		t.Errorf("%s: no migration of the previous release's raft store in its log", m.id)
	}
}
