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
	"flag"
	"os"
	"testing"
	"time"

	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/invariant"
	"github.com/uamirror/uamirror/test/netlab"
	"github.com/uamirror/uamirror/test/pairbed"
)

var (
	full = flag.Bool("fault.full", os.Getenv("UAMIRROR_FAULT_FULL") != "",
		"run every scenario of the fault matrix (default: the CI subset); also UAMIRROR_FAULT_FULL=1")
	resultsFile = flag.String("fault.results", os.Getenv("UAMIRROR_FAULT_RESULTS"),
		"append one JSON line per scenario (the RELIABILITY.md table) to this file")
	delayLossFor = flag.Duration("fault.delayloss", 5*time.Minute, "how long the delay+loss scenario watches (full set)")
)

// Lab hosts (the shared bed's, test/pairbed).
const (
	hA, hB, hArb, hPLC, hSCADA = pairbed.HostA, pairbed.HostB, pairbed.HostArb, pairbed.HostPLC, pairbed.HostSCADA
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
	mapped         int     // mappings v0…v<mapped-1> (default all vars)
	rate           float64 // default 200
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

type (
	sim    = pairbed.Sim
	member = pairbed.Member
)

// bed is a pair in the lab on the shared bed (test/pairbed): plc (h4, its
// first `changing` variables change at `rate`) → scada (h5, journaled),
// nodes a (h1) and b (h2), the arbiter (h3). The short fields point at
// the bed's (they never change).
type bed struct {
	*pairbed.Pair
	t          *testing.T
	lab        *netlab.Lab
	dir        string
	plc, scada *sim
	a, b, arb  *member
}

func start(t *testing.T, o opts) *bed {
	t.Helper()
	if o.rate == 0 {
		o.rate = 200
	}
	lab := netlab.New(t, 5)
	p := pairbed.Start(t, pairbed.Options{Name: "fault", Vars: o.vars, Mapped: o.mapped, Changing: o.changing, Rate: o.rate,
		Policy: o.policy, FaultDelay: o.faultDelay, Cooldown: o.cooldown, Heartbeat: o.heartbeat,
		Lab: lab, Tmpfs: o.tmpfs, Secure: !o.plain, Connect: 2 * time.Second,
		AdminTimeout: 3 * time.Second, StartTimeout: settle, PendingLimit: pendingLimit})
	return &bed{Pair: p, t: t, lab: lab, dir: p.Dir, plc: p.PLC, scada: p.SCADA, a: p.A, b: p.B, arb: p.Arb}
}

// pendingLimit: a standby may report unresolved mappings this long
// without a break before the test fails naming them (harness.PendingWatch).
const pendingLimit = settle / 2

// The bed's short method names (see pairbed.Pair for each).

func (e *bed) startMember(m *member) { e.t.Helper(); e.StartMember(m) }
func (e *bed) restart(m *member)     { e.t.Helper(); e.Restart(m) }
func (e *bed) static() []int         { return e.Static() }
func (e *bed) changingVars() []int   { return e.Changing() }
func (e *bed) setStatic()            { e.SetStatic() }
func (e *bed) writeConfig(path string, mapped int) string {
	e.t.Helper()
	return e.WriteConfig(path, mapped)
}
func (e *bed) status(m *member) (redundancy.Status, error) { return e.Status(m) }
func (e *bed) events() ([]redundancy.Event, error)         { return e.Events() }
func (e *bed) journal() []invariant.Write                  { return e.Journal() }
func (e *bed) admin(m *member) harness.Admin               { return e.Admin(m) }
func (e *bed) get(m *member, path string, out any) error   { return e.Get(m, path, out) }

// adminURL is member m's admin API base URL.
func (e *bed) adminURL(m *member) string { return m.URL }

// read reads variables idx of s (from inside its host).
func (e *bed) read(s *sim, idx []int) ([]float64, []time.Time, error) { return s.Read(idx) }

func (e *bed) waitMirrored(idx []int, timeout time.Duration) {
	e.t.Helper()
	e.WaitMirrored(idx, timeout)
}

func (e *bed) waitLive(t0 time.Time, timeout time.Duration) { e.t.Helper(); e.WaitLive(t0, timeout) }

func (e *bed) waitStable(timeout time.Duration) (act, sby *member, epoch uint64) {
	e.t.Helper()
	return e.WaitStable(timeout)
}

// waitActive waits until m is active (and writing) under an epoch after
// `after`, and returns that epoch.
func (e *bed) waitActive(m *member, after uint64, timeout time.Duration) uint64 {
	e.t.Helper()
	return e.WaitActiveAfter(m, after, timeout)
}

// waitEvent waits for the journal event of epoch.
func (e *bed) waitEvent(epoch uint64, timeout time.Duration) redundancy.Event {
	e.t.Helper()
	return e.WaitEvent(epoch, false, timeout)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
