// Package pairbed is the real-process bed of uamirror's redundant pair,
// shared by the pair tests (test/pair, every process on 127.0.0.1) and
// the fault matrix (test/fault, every process on a host of a network lab,
// test/netlab). A bed is two simulation OPC UA servers — plc, the source,
// whose first Changing variables change at Rate, and scada, the target,
// whose write journal records every value written — and the pair's
// members (nodes a and b and an optional arbiter), each a separate
// process of the real binary that a test can kill, freeze, restart or
// cut off. A test judges the result from the outside only: the members'
// admin API (through diagnostics/adminclient, test/harness.Admin) and the
// target's journal (test/invariant).
//
// It lives beside test/harness rather than in it: harness starts
// processes and waits on conditions for every test package, while a bed
// pulls in the pair's model (the network lab, TCP proxies, mapping
// configs, the invariant checker) that only the pair and fault tests
// need.
//
// A Pair belongs to the test that started it: its methods are called
// from that test's goroutine (they fail the test through T), except
// SetStatic, which may also be called from other goroutines.
package pairbed

import (
	"crypto/tls"
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

	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/netlab"
	"github.com/uamirror/uamirror/test/tcpproxy"
)

// The lab hosts of a bed in a network lab (Options.Lab).
const (
	HostA, HostB, HostArb, HostPLC, HostSCADA = "h1", "h2", "h3", "h4", "h5"
)

// Fixed ports in a lab (every process has an address of its own there).
const (
	labSimPort   = "4840"
	labRaftPort  = "7001"
	labPeerPort  = "7101"
	labAdminPort = "7201"
)

// Options describes a bed. The zero value is a plain loopback pair of 20
// static variables with an arbiter.
type Options struct {
	// Name names the bed's kind in the log directory kept on failure
	// (uamirror-<Name>-logs under the temp dir) and in the environment
	// variable that keeps logs always (<NAME>_KEEP_LOGS); default "pair".
	Name string

	Vars     int     // simulated variables per server (default 20)
	Mapped   int     // mappings v0…v<Mapped-1> (default Vars)
	Changing int     // the first Changing variables change at Rate (default min(10, Vars))
	Rate     float64 // source changes/s in total (0: static sources)

	NoArbiter  bool
	Policy     string        // server monitor policy (default any)
	FaultDelay time.Duration // default 1s
	Cooldown   time.Duration // default 2s
	Heartbeat  time.Duration // default 500ms (the product default)

	// Both makes every mapping bidirectional; SCADAArgs are extra flags of
	// the target server (e.g. --clock-offset); Engine is extra YAML under
	// engine: ("  clock_skew: 10m\n"); Connect, when set, bounds a
	// server connect in the config (a lab's cut link drops packets, so a
	// connect would otherwise hang for the product default).
	Both      bool
	SCADAArgs []string
	Engine    string
	Connect   time.Duration

	// Lab runs the bed in a network lab of at least five hosts: a on
	// HostA, b on HostB, the arbiter on HostArb, the servers on HostPLC
	// and HostSCADA. Nil: everything on 127.0.0.1.
	Lab *netlab.Lab
	// ProxyA (loopback only): node a reaches both servers through TCP
	// proxies (node b directly), so a test can cut a's links alone.
	ProxyA bool
	// Tmpfs (needs root): the data dirs of a and b are small tmpfs
	// mounts, disks a test can fill.
	Tmpfs bool

	// Secure runs a secured pair: mutual TLS on raft and the peer link
	// from `pki init-pair`, the admin API on https with a bearer token.
	// Without it, a bed in a lab passes --admin-insecure and
	// --pair-insecure (the members listen on non-loopback addresses).
	Secure bool
	// MemberArgs, when set, adds flags to member id's command line.
	MemberArgs func(id string) []string
	// Scheme of the admin API ("http://" or, when Secure, "https://" by
	// default) and Client, the client that talks to it (default: one per
	// member, dialing from inside the member's lab host, which works even
	// while the host is isolated).
	Scheme string
	Client *http.Client
	// AdminTimeout bounds one admin API request (default 5s).
	AdminTimeout time.Duration

	// StartTimeout bounds Start's waits for a stable pair and mirrored
	// values (default 30s).
	StartTimeout time.Duration
	// PendingLimit: how long a standby may report unresolved mappings
	// without a break before a wait fails naming them
	// (harness.PendingWatch; default 10s).
	PendingLimit time.Duration
}

func (o *Options) defaults() {
	if o.Name == "" {
		o.Name = "pair"
	}
	if o.Vars == 0 {
		o.Vars = 20
	}
	if o.Mapped == 0 {
		o.Mapped = o.Vars
	}
	if o.Changing == 0 {
		o.Changing = min(10, o.Vars)
	}
	if o.Policy == "" {
		o.Policy = "any"
	}
	if o.FaultDelay == 0 {
		o.FaultDelay = time.Second
	}
	if o.Cooldown == 0 {
		o.Cooldown = 2 * time.Second
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 500 * time.Millisecond
	}
	if o.Scheme == "" {
		o.Scheme = "http://"
		if o.Secure {
			o.Scheme = "https://"
		}
	}
	if o.AdminTimeout == 0 {
		o.AdminTimeout = 5 * time.Second
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.PendingLimit == 0 {
		o.PendingLimit = 10 * time.Second
	}
}

// Member is one pair member process.
type Member struct {
	ID, Role string
	Host     string // lab host ("" on loopback)
	// Raft, Peer (nodes only) and Admin are the member's host:port
	// addresses.
	Raft, Peer, Admin string
	Data              string // data dir
	Args              []string
	Proc              *harness.Proc // nil until started
	// URL is the admin API's base URL; Client talks to it.
	URL    string
	Client *http.Client
}

func (m *Member) flag() string {
	s := fmt.Sprintf("id=%s,role=%s,raft=%s,admin=%s", m.ID, m.Role, m.Raft, m.Admin)
	if m.Peer != "" {
		s += ",peer=" + m.Peer
	}
	return s
}

func (m *Member) running() bool { return m != nil && m.Proc != nil && !m.Proc.Exited() }

// Pair is a running bed: the servers PLC and SCADA, the mirror config at
// CfgPath (hash CfgHash: the config a stable pair must run; a test that
// applies another sets it) and the members A, B and Arb (nil without an
// arbiter).
type Pair struct {
	T        testing.TB
	O        Options // with defaults filled in
	Dir      string  // the bed's temp dir
	PLC      *Sim
	SCADA    *Sim
	CfgPath  string
	CfgHash  string
	A, B     *Member
	Arb      *Member
	Proxies  map[string]*tcpproxy.Proxy // ProxyA: "plc", "scada"
	Security *Security                  // nil unless Secure

	setMu sync.Mutex
	sets  int // SetStatic rounds done
}

// Start starts both servers, writes the mirror config and starts the
// members; it returns once the pair is stable (see WaitStable) and the
// target holds the sources' static values.
func Start(t testing.TB, o Options) *Pair {
	t.Helper()
	o.defaults()
	harness.Binary(t) // build before the clocks start
	p := &Pair{T: t, O: o, Dir: t.TempDir(), Proxies: map[string]*tcpproxy.Proxy{}}
	var rate []string
	if o.Rate > 0 {
		rate = []string{"--rate", fmt.Sprint(o.Rate), "--changing", strconv.Itoa(o.Changing)}
	}
	p.PLC = StartSim(t, SimOptions{Vars: o.Vars, Lab: o.Lab, Host: HostPLC, Args: rate})
	p.SCADA = StartSim(t, SimOptions{Vars: o.Vars, Lab: o.Lab, Host: HostSCADA,
		Journal: filepath.Join(p.Dir, "scada.journal"), Args: o.SCADAArgs})
	// Give the static variables values the target does not hold yet, so
	// the first active has something to write.
	p.SetStatic()

	p.CfgPath = filepath.Join(p.Dir, "mirror.yml")
	p.CfgHash = WriteConfig(t, p.CfgPath, p.PLC.Endpoint, p.SCADA.Endpoint, o.Mapped, o)

	p.A = p.newMember("a", "node", HostA)
	p.B = p.newMember("b", "node", HostB)
	all := []*Member{p.A, p.B}
	if !o.NoArbiter {
		p.Arb = p.newMember("arb", "arbiter", HostArb)
		all = append(all, p.Arb)
	}
	if o.Secure {
		p.Security = newSecurity(t, p.Dir, o.Lab)
	}
	p.clients(all)
	var members []string
	for _, m := range all {
		members = append(members, "--member", m.flag())
	}
	for _, m := range all {
		if err := os.MkdirAll(m.Data, 0o755); err != nil {
			t.Fatal(err)
		}
		if o.Tmpfs && m.Role == "node" {
			mountTmpfs(t, m.Data)
		}
		m.Args = append([]string{m.Role, "--id", m.ID, "--data", m.Data}, members...)
		m.Args = append(m.Args, "--heartbeat", o.Heartbeat.String(), "--policy", o.Policy,
			"--fault-delay", o.FaultDelay.String(), "--cooldown", o.Cooldown.String())
		if m.Role == "node" {
			m.Args = append(m.Args, "--config", p.CfgPath)
		}
		switch {
		case p.Security != nil:
			m.Args = append(m.Args, p.Security.Args(m.ID)...)
		case o.Lab != nil:
			m.Args = append(m.Args, "--admin-insecure", "--pair-insecure") // raft and peer on lab IPs: refused without it
		}
		if o.MemberArgs != nil {
			m.Args = append(m.Args, o.MemberArgs(m.ID)...)
		}
	}
	if o.ProxyA {
		if o.Lab != nil {
			t.Fatal("pairbed: ProxyA is for a loopback bed (a lab cuts links itself)")
		}
		for _, s := range []struct {
			name string
			sim  *Sim
		}{{"plc", p.PLC}, {"scada", p.SCADA}} {
			px, err := tcpproxy.New(strings.TrimPrefix(s.sim.Endpoint, "opc.tcp://"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { px.Close() })
			p.Proxies[s.name] = px
			p.A.Args = append(p.A.Args, "--server-endpoint", s.name+"=opc.tcp://"+px.Addr())
		}
	}
	t.Cleanup(func() {
		// The processes are gone by now (their cleanups ran first).
		p.CheckCrash("plc", p.PLC.Proc)
		p.CheckCrash("scada", p.SCADA.Proc)
		for _, m := range all {
			if m.Proc != nil {
				p.CheckCrash(m.ID, m.Proc)
			}
		}
		if t.Failed() || os.Getenv(strings.ToUpper(o.Name)+"_KEEP_LOGS") != "" {
			p.DumpLogs()
		}
	})
	// The arbiter first, so that the first election has a quorum at once.
	if p.Arb != nil {
		p.StartMember(p.Arb)
	}
	p.StartMember(p.A)
	p.StartMember(p.B)
	p.WaitStable(o.StartTimeout)
	p.WaitMirrored(p.Static(), o.StartTimeout)
	return p
}

// newMember places member id: on its lab host with the lab's fixed ports,
// or on 127.0.0.1 ports that were free a moment ago.
func (p *Pair) newMember(id, role, host string) *Member {
	m := &Member{ID: id, Role: role, Data: filepath.Join(p.Dir, "data-"+id)}
	addr := func(port string) string {
		if p.O.Lab != nil {
			return p.O.Lab.IP(host) + ":" + port
		}
		return "127.0.0.1:" + strconv.Itoa(harness.FreePort(p.T))
	}
	if p.O.Lab != nil {
		m.Host = host
	}
	m.Raft, m.Admin = addr(labRaftPort), addr(labAdminPort)
	if role == "node" {
		m.Peer = addr(labPeerPort)
	}
	m.URL = p.O.Scheme + m.Admin
	return m
}

// clients gives every member its admin API client.
func (p *Pair) clients(all []*Member) {
	if p.O.Client != nil {
		for _, m := range all {
			m.Client = p.O.Client
		}
		p.T.Cleanup(p.O.Client.CloseIdleConnections)
		return
	}
	for _, m := range all {
		tr := &http.Transport{MaxIdleConnsPerHost: 2}
		if m.Host != "" {
			tr.DialContext = p.O.Lab.Dialer(m.Host)
		}
		var rt http.RoundTripper = tr
		if p.Security != nil {
			tr.TLSClientConfig = &tls.Config{RootCAs: p.Security.CA}
			rt = &harness.TokenTransport{Token: p.Security.Token, Base: tr}
		}
		m.Client = &http.Client{Timeout: p.O.AdminTimeout, Transport: rt}
		p.T.Cleanup(tr.CloseIdleConnections)
	}
}

// mountTmpfs mounts a small tmpfs on dir (unmounted in cleanup): a disk
// that can be filled (root ignores file modes, not a full disk). It skips
// the test where no tmpfs can be mounted.
func mountTmpfs(t testing.TB, dir string) {
	t.Helper()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "uamirror-fault", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs for the data dir: %v: %s", err, out)
	}
	t.Cleanup(func() {
		// The members are gone by now (cleanups run in reverse order).
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}
