// Package redundancytest runs a redundant pair (two bridge nodes and an
// optional arbiter) in one test process, without OS processes or
// sockets: raft over hashicorp/raft's InmemTransport with in-memory
// stores, the peer link through an in-memory http.RoundTripper, and a fake
// mirror whose writes land on a shared fake Target that records who wrote
// under which epoch. Links can be cut and healed, members killed and
// restarted, so that the pair's fencing rules (gate, lease, handover,
// force) read as the failure they test, in the spirit of raft's own
// MakeCluster/Partition/Disconnect.
//
// It owns nothing outside the test: every goroutine it starts ends before
// the test's cleanup returns. It must never be imported by production code.
package redundancytest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/redundancy"
)

// Options shape a cluster.
type Options struct {
	// Arbiter adds a third member "arb" (a trio); without it the pair is
	// a and b alone.
	Arbiter bool
	// Config, when set, adjusts every member's config before it starts.
	Config func(*redundancy.Config)
	// Mirror is the fake mirror of every node; MirrorFor overrides it per
	// node id.
	Mirror    MirrorOptions
	MirrorFor map[string]MirrorOptions
	// StandbyApplyWait is the nodes' redundancy.Options.StandbyApplyWait
	// (0: the default).
	StandbyApplyWait time.Duration
	// Verbose writes the members' logs (warn and above) to the test log;
	// also on with UAMIRROR_TEST_LOG=1.
	Verbose bool
}

// Cluster is a running in-memory pair. Its methods are safe for
// concurrent use.
type Cluster struct {
	t       testing.TB
	o       Options
	members []redundancy.Member
	yaml    []byte
	target  *Target

	mu  sync.Mutex
	ms  map[string]*Member
	cut map[[2]string]bool // unordered member pairs whose links are cut
}

// Member is one member of the cluster.
type Member struct {
	ID   string
	Role redundancy.Role
	c    *Cluster
	addr raft.ServerAddress
	peer string
	dir  string

	logs  *raft.InmemStore
	snaps *raft.InmemSnapshotStore

	// Guarded by c.mu.
	trans   *raft.InmemTransport
	node    *redundancy.Node
	running bool
	cancel  context.CancelFunc
	done    chan struct{}

	mirror atomic.Pointer[Mirror]
}

// testConfig is a valid mirror config: the fake mirror ignores it, the
// node only replicates and parses it.
const testConfig = `servers:
  - name: plc
    endpoints: ["opc.tcp://127.0.0.1:1"]
  - name: scada
    endpoints: ["opc.tcp://127.0.0.1:2"]
mappings:
  - source: {server: plc, node: "ns=1;s=v0"}
    target: {server: scada, node: "ns=1;s=v0"}
`

// New starts a cluster and stops it in t's cleanup.
func New(t testing.TB, o Options) *Cluster {
	t.Helper()
	if os.Getenv("UAMIRROR_TEST_LOG") != "" {
		o.Verbose = true
	}
	cfg, err := mapping.ParseYAML([]byte(testConfig), "redundancytest")
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("redundancytest config: %v", err)
	}
	c := &Cluster{t: t, o: o, yaml: []byte(testConfig), target: &Target{}, ms: map[string]*Member{}, cut: map[[2]string]bool{}}
	ids := []string{"a", "b"}
	if o.Arbiter {
		ids = append(ids, "arb")
	}
	for _, id := range ids {
		role := redundancy.RoleNode
		peer := "peer-" + id
		if id == "arb" {
			role, peer = redundancy.RoleArbiter, ""
		}
		m := &Member{ID: id, Role: role, c: c, addr: raft.ServerAddress("raft-" + id), peer: peer, dir: t.TempDir(),
			logs: raft.NewInmemStore(), snaps: raft.NewInmemSnapshotStore()}
		c.ms[id] = m
		c.members = append(c.members, redundancy.Member{ID: id, Role: role, Raft: string(m.addr), Peer: peer})
	}
	t.Cleanup(c.Close)
	for _, id := range ids {
		c.Start(id)
	}
	return c
}

// Target returns the fake target all nodes write to.
func (c *Cluster) Target() *Target { return c.target }

// Member returns the member id.
func (c *Cluster) Member(id string) *Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.ms[id]
	if m == nil {
		c.t.Fatalf("redundancytest: no member %q", id)
	}
	return m
}

// Node returns the member's running node (nil while it is down).
func (m *Member) Node() *redundancy.Node {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	return m.node
}

// Mirror returns the member's current fake mirror (nil before the node
// built one).
func (m *Member) Mirror() *Mirror { return m.mirror.Load() }

// Role returns the member's role as its node reports it ("down" while it
// is not running).
func (m *Member) RoleNow() (string, uint64) {
	n := m.Node()
	if n == nil {
		return "down", 0
	}
	role, epoch := n.Role()
	return string(role), epoch
}

// Start starts (or restarts, on its stores) member id.
func (c *Cluster) Start(id string) {
	m := c.Member(id)
	// PairInsecure: the members talk over raft's in-memory transport and
	// an in-process peer link; their "addresses" are names, no port opens.
	cfg := redundancy.Config{ID: id, DataDir: m.dir, Members: c.members, PairInsecure: true}
	if c.o.Config != nil {
		c.o.Config(&cfg)
	}
	log := zap.NewNop()
	if c.o.Verbose {
		log = zaptest.NewLogger(c.t, zaptest.Level(zap.WarnLevel)).Named(id)
	}
	opts := redundancy.Options{Config: cfg, Logger: log, OpenRaft: m.openRaft, PeerTransport: peerLink{c: c, from: id}}
	if m.Role == redundancy.RoleNode {
		opts.InitialConfig = c.yaml
		mo := c.o.Mirror
		if o, ok := c.o.MirrorFor[id]; ok {
			mo = o
		}
		opts.StandbyApplyWait = c.o.StandbyApplyWait
		if mo.Refuse != nil {
			opts.CheckConfig = mo.Refuse
		}
		opts.NewMirror = func(cfg *mapping.Config, gate *redundancy.Gate, onWritten func(redundancy.FlowState)) (redundancy.Mirror, error) {
			if mo.Refuse != nil {
				if err := mo.Refuse(cfg); err != nil {
					return nil, err
				}
			}
			mm := newMirror(id, gate, c.target, onWritten, mo)
			mm.Config, mm.Built = cfg, time.Now()
			m.mirror.Store(mm)
			if mo.NoAborter {
				return noAborter{mm}, nil
			}
			if mo.Live || mo.LiveRefused {
				return liveMirror{mm}, nil
			}
			return mm, nil
		}
	}
	n, err := redundancy.New(opts)
	if err != nil {
		c.t.Fatalf("redundancytest: member %s: %v", id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.mu.Lock()
	if m.running {
		c.mu.Unlock()
		cancel()
		c.t.Fatalf("redundancytest: member %s is running", id)
	}
	m.node, m.running, m.cancel, m.done = n, true, cancel, done
	c.mu.Unlock()
	go func() {
		defer close(done)
		if err := n.Run(ctx); err != nil && ctx.Err() == nil {
			c.t.Errorf("redundancytest: member %s: %v", id, err)
		}
	}()
}

// Kill stops member id at once (its goroutines end; its stores stay for
// a restart) and cuts it off from everyone.
func (c *Cluster) Kill(id string) {
	m := c.Member(id)
	c.mu.Lock()
	if !m.running {
		c.mu.Unlock()
		return
	}
	m.running = false
	cancel, done := m.cancel, m.done
	c.isolateLocked(m)
	c.mu.Unlock()
	cancel()
	<-done
	c.mu.Lock()
	m.node, m.trans = nil, nil
	c.mu.Unlock()
}

// Close stops every member; called by the test's cleanup.
func (c *Cluster) Close() {
	c.mu.Lock()
	ids := make([]string, 0, len(c.ms))
	for id := range c.ms {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	sort.Strings(ids)
	for _, id := range ids {
		c.Kill(id)
	}
}

func key(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// Cut cuts the links (raft and peer link) between members a and b.
func (c *Cluster) Cut(a, b string) {
	ma, mb := c.Member(a), c.Member(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut[key(a, b)] = true
	if ma.trans != nil {
		ma.trans.Disconnect(mb.addr)
	}
	if mb.trans != nil {
		mb.trans.Disconnect(ma.addr)
	}
}

// Disconnect cuts every link of member id: it is alive but alone.
func (c *Cluster) Disconnect(id string) {
	for _, o := range c.others(id) {
		c.Cut(id, o)
	}
}

// Partition cuts every link between the members in group and the rest.
func (c *Cluster) Partition(group ...string) {
	in := map[string]bool{}
	for _, id := range group {
		in[id] = true
	}
	for _, a := range group {
		for _, b := range c.others(a) {
			if !in[b] {
				c.Cut(a, b)
			}
		}
	}
}

// Heal restores every link between running members.
func (c *Cluster) Heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = map[[2]string]bool{}
	for _, m := range c.ms {
		c.connectLocked(m)
	}
}

func (c *Cluster) others(id string) []string {
	var out []string
	for _, m := range c.members {
		if m.ID != id {
			out = append(out, m.ID)
		}
	}
	return out
}

// isolateLocked disconnects m's transport from everyone (c.mu held).
func (c *Cluster) isolateLocked(m *Member) {
	for _, o := range c.ms {
		if o == m {
			continue
		}
		if o.trans != nil {
			o.trans.Disconnect(m.addr)
		}
		if m.trans != nil {
			m.trans.Disconnect(o.addr)
		}
	}
}

// connectLocked connects m's transport with every running member it has
// no cut link to (c.mu held).
func (c *Cluster) connectLocked(m *Member) {
	if m.trans == nil || !m.running {
		return
	}
	for _, o := range c.ms {
		if o == m || o.trans == nil || !o.running || c.cut[key(m.ID, o.ID)] {
			continue
		}
		m.trans.Connect(o.addr, o.trans)
		o.trans.Connect(m.addr, m.trans)
	}
}

// openRaft is the member's Options.OpenRaft: its in-memory stores (kept
// across restarts) and a new in-memory transport connected per the cuts.
func (m *Member) openRaft() (redundancy.RaftParts, error) {
	_, tr := raft.NewInmemTransportWithTimeout(m.addr, 250*time.Millisecond)
	m.c.mu.Lock()
	if m.trans != nil {
		m.c.isolateLocked(m)
	}
	m.trans = tr
	m.c.connectLocked(m)
	m.c.mu.Unlock()
	return redundancy.RaftParts{Logs: m.logs, Stable: m.logs, Snaps: m.snaps, Trans: tr}, nil
}

// peerLink carries one node's peer link requests to the other node's
// PeerHandler, unless the link is cut or the other node is down.
type peerLink struct {
	c    *Cluster
	from string
}

var errLinkCut = errors.New("redundancytest: peer link cut")

func (p peerLink) RoundTrip(req *http.Request) (*http.Response, error) {
	c := p.c
	c.mu.Lock()
	var to *Member
	for _, m := range c.ms {
		if m.peer != "" && m.peer == req.URL.Host {
			to = m
		}
	}
	var h http.Handler
	if to != nil && to.running && to.node != nil && !c.cut[key(p.from, to.ID)] {
		h = to.node.PeerHandler()
	}
	c.mu.Unlock()
	if h == nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("%s → %s: %w", p.from, req.URL.Host, errLinkCut)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

// WaitFor polls cond every 5 ms until it holds, failing the test with
// what after timeout.
func (c *Cluster) WaitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("redundancytest: after %s: %s\n%s", timeout, what, c.Describe())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitWriting waits until node id is active and one of its writes of its
// current epoch has landed; it returns that epoch.
func (c *Cluster) WaitWriting(id string, timeout time.Duration) uint64 {
	c.t.Helper()
	m := c.Member(id)
	var epoch uint64
	c.WaitFor(timeout, id+" active and writing", func() bool {
		role, e := m.RoleNow()
		if role != "active" {
			return false
		}
		_, ok := c.target.FirstOf(id, e)
		epoch = e
		return ok
	})
	return epoch
}

// Describe returns each member's role and epoch and the landings'
// summary, for failure messages.
func (c *Cluster) Describe() string {
	var b strings.Builder
	for _, m := range c.members {
		role, e := c.Member(m.ID).RoleNow()
		fmt.Fprintf(&b, "  %s: %s epoch %d\n", m.ID, role, e)
	}
	ls := c.target.Landings()
	var runs []string
	for i := 0; i < len(ls); {
		j := i
		for j < len(ls) && ls[j].Node == ls[i].Node && ls[j].Epoch == ls[i].Epoch {
			j++
		}
		runs = append(runs, fmt.Sprintf("%s/e%d×%d", ls[i].Node, ls[i].Epoch, j-i))
		i = j
	}
	if len(runs) > 12 {
		runs = append(runs[:6], append([]string{"…"}, runs[len(runs)-6:]...)...)
	}
	fmt.Fprintf(&b, "  landings: %s\n", strings.Join(runs, " "))
	return b.String()
}
