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
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/invariant"
	"github.com/uamirror/uamirror/test/pairbed"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The pair runs on the shared real-process bed, test/pairbed (the fault
// matrix in test/fault runs the same bed in a network lab). This file
// keeps the package's short names for it; struct fields are the bed's
// (p.CfgHash, m.ID, s.Endpoint).

// The simulation servers' value scheme (see test/invariant).
const ns = invariant.NS

func nodeID(i int) string { return invariant.NodeID(i) }

func setValue(i, k int) float64 { return invariant.SetValue(i, k) }

func validValue(node string, v float64) error { return invariant.ValidValue(node, v) }

// freeAddr returns a 127.0.0.1 address that was free a moment ago (see
// harness.FreePort for why not an ephemeral port).
func freeAddr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
}

// sim is a simulation OPC UA server process; member a pair member.
type (
	sim    = pairbed.Sim
	member = pairbed.Member
)

// startSim starts a simulation server on 127.0.0.1 with vars Double
// variables, a write journal at journal ("" for none) and extra flags.
func startSim(t testing.TB, vars int, journal string, extra ...string) *sim {
	t.Helper()
	return pairbed.StartSim(t, pairbed.SimOptions{Vars: vars, Journal: journal, Args: extra})
}

// pairOpts describes a pair to start (pairbed.Options has the defaults).
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
	// secure: mutual TLS on raft and the peer link, the admin API on
	// https with a bearer token (see startSecuredPair).
	secure bool
}

func (o pairOpts) bed() pairbed.Options {
	return pairbed.Options{Name: "pair", Vars: o.vars, Mapped: o.mapped, Changing: o.changing, Rate: o.rate,
		NoArbiter: o.noArbiter, Policy: o.policy, FaultDelay: o.faultDelay, Cooldown: o.cooldown, Heartbeat: o.heartbeat,
		ProxyA: o.proxyA, Both: o.both, SCADAArgs: o.scadaArgs, Engine: o.engine, Secure: o.secure,
		PendingLimit: pendingLimit}
}

// pendingLimit: a standby may report unresolved mappings this long
// without a break before the test fails naming them (harness.PendingWatch).
const pendingLimit = settle / 2

// pair is a running redundant pair with its two servers: plc (the source,
// whose first `changing` variables change at `rate`) and scada (the
// target, whose journal the invariants are checked on). The short fields
// point at the bed's (they never change).
type pair struct {
	*pairbed.Pair
	t          testing.TB
	plc, scada *sim
	a, b, arb  *member // arb nil without an arbiter
}

// startPair starts both servers, writes the mirror config and starts the
// members; it returns once the pair is stable (see waitStable) and the
// target holds the sources' static values.
func startPair(t testing.TB, o pairOpts) *pair {
	t.Helper()
	b := pairbed.Start(t, o.bed())
	return &pair{Pair: b, t: t, plc: b.PLC, scada: b.SCADA, a: b.A, b: b.B, arb: b.Arb}
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
	return pairbed.WriteConfig(t, path, plc, scada, mapped, o.bed())
}

// cli runs the uamirror binary with args and returns its combined output
// and exit code.
func cli(t testing.TB, args ...string) (string, int) {
	t.Helper()
	return pairbed.CLI(t, args...)
}

// The pair's short method names (see pairbed.Pair for each). Some are
// unused by the tests here today; they stay for tests written against
// them.

func (p *pair) start(m *member)                             { p.t.Helper(); p.StartMember(m) }
func (p *pair) kill(m *member) time.Time                    { return p.Kill(m) }
func (p *pair) restart(m *member)                           { p.t.Helper(); p.Restart(m) }
func (p *pair) checkCrash(name string, proc *harness.Proc)  { p.t.Helper(); p.CheckCrash(name, proc) }
func (p *pair) dumpLogs()                                   { p.DumpLogs() }
func (p *pair) static() []int                               { return p.Static() }
func (p *pair) changingVars() []int                         { return p.Changing() }
func (p *pair) setStatic(t testing.TB)                      { t.Helper(); p.SetStatic() }
func (p *pair) admin(m *member) harness.Admin               { return p.Admin(m) }
func (p *pair) get(m *member, path string, out any) error   { return p.Get(m, path, out) }
func (p *pair) status(m *member) (redundancy.Status, error) { return p.Status(m) }
func (p *pair) events() ([]redundancy.Event, error)         { return p.Events() }
func (p *pair) switchover(m *member) error                  { return p.Switchover(m) }
func (p *pair) other(m *member) *member                     { return p.Other(m) }
func (p *pair) journal() []write                            { return p.Journal() }

func (p *pair) pendingOf(m *member) func() (diagnostics.MappingPage, error) { return p.PendingOf(m) }

func (p *pair) waitMirrored(idx []int, timeout time.Duration) {
	p.t.Helper()
	p.WaitMirrored(idx, timeout)
}

func (p *pair) waitLive(t0 time.Time, timeout time.Duration) { p.t.Helper(); p.WaitLive(t0, timeout) }

func (p *pair) waitStable(timeout time.Duration) (act, sby *member, epoch uint64) {
	p.t.Helper()
	return p.WaitStable(timeout)
}

func (p *pair) waitActive(m *member, epoch uint64, timeout time.Duration) {
	p.t.Helper()
	p.WaitActive(m, epoch, timeout)
}

func (p *pair) waitStandby(m *member, epoch uint64, timeout time.Duration) {
	p.t.Helper()
	p.WaitStandby(m, epoch, timeout)
}

func (p *pair) waitEvent(epoch uint64, gap bool, timeout time.Duration) redundancy.Event {
	p.t.Helper()
	return p.WaitEvent(epoch, gap, timeout)
}

// checkInvariants checks the target journal against the pair's events,
// reports every violation and returns the journal.
func (p *pair) checkInvariants() []write {
	p.t.Helper()
	ws, _, _ := p.CheckInvariants()
	return ws
}
