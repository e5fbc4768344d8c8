package redundancy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

// encodeRPC encodes a raft RPC as NetworkTransport puts it on the wire.
func encodeRPC(t testing.TB, typ uint8, cmd any) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteByte(typ)
	if err := codec.NewEncoder(&b, &codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}}).Encode(cmd); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// decodeRPC reads one RPC as raft's handleCommand does.
func decodeRPC(t testing.TB, c net.Conn) (uint8, any) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	typ, err := r.ReadByte()
	if err != nil {
		t.Fatalf("reading the RPC type: %v", err)
	}
	var cmd any
	switch typ {
	case rpcAppendEntries:
		cmd = &raft.AppendEntriesRequest{}
	case rpcRequestVote:
		cmd = &raft.RequestVoteRequest{}
	case rpcTimeoutNow:
		cmd = &raft.TimeoutNowRequest{}
	default:
		t.Fatalf("rpc type %d", typ)
	}
	if err := codec.NewDecoder(r, &codec.MsgpackHandle{}).Decode(cmd); err != nil {
		t.Fatal(err)
	}
	return typ, cmd
}

func hdr(id, addr string) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: 3, ID: []byte(id), Addr: []byte(addr)}
}

// guarded is a raft port (plain TCP or mutual TLS) behind the stream
// layer, with what it accepted and refused.
type guarded struct {
	sl       *raftStreamLayer
	addr     string
	journal  *refusalJournal
	accepted chan net.Conn
	mu       sync.Mutex
	leader   string
	timeouts []string
	refusals []string // every refusal (the journal rate-limits)
	wg       sync.WaitGroup
}

func startGuarded(t *testing.T, p *PairTLS, members func(self string) []Member) *guarded {
	return startGuardedT(t, p, members, rpcBodyTimeout)
}

func startGuardedT(t *testing.T, p *PairTLS, members func(self string) []Member, bodyTimeout time.Duration) *guarded {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &guarded{addr: ln.Addr().String(), journal: newRefusalJournal("b", zap.NewNop()), accepted: make(chan net.Conn, 64)}
	ms := members(g.addr)
	var cfg *tls.Config
	if p != nil {
		cfg = p.ServerConfig()
	}
	pl := newPairListener(ln, cfg, "raft", func(l string, a net.Addr, err error) {
		g.mu.Lock()
		g.refusals = append(g.refusals, err.Error())
		g.mu.Unlock()
		g.journal.add(l, a, err)
	})
	if p != nil {
		pl.verify = p.Verifier.Verify
	}
	rg := newRaftGuard(ms, func() string { g.mu.Lock(); defer g.mu.Unlock(); return g.leader },
		func(from string) { g.mu.Lock(); g.timeouts = append(g.timeouts, from); g.mu.Unlock() })
	rg.bodyTimeout = bodyTimeout
	pl.admit = rg.admit
	g.sl = &raftStreamLayer{pairListener: pl.start(), tls: p, members: ms}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(g.accepted)
		for {
			c, err := g.sl.Accept()
			if err != nil {
				return
			}
			select {
			case g.accepted <- c:
			default:
				c.Close()
			}
		}
	}()
	t.Cleanup(func() {
		g.sl.Close()
		g.wg.Wait()
		for c := range g.accepted {
			c.Close()
		}
	})
	return g
}

// refusedWith waits for a refusal containing want.
func (g *guarded) refusedWith(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		g.mu.Lock()
		for _, e := range g.refusals {
			if strings.Contains(e, want) {
				g.mu.Unlock()
				return
			}
		}
		g.mu.Unlock()
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t.Fatalf("no refusal %q in %q", want, g.refusals)
}

// closedByPeer reports whether the server closed c (EOF or reset) within
// the deadline.
func closedByPeer(c net.Conn, within time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(within))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestRaftPortAttacks reproduces the attacks on the raft port of #12 and
// shows each refused before raft sees it: the 17-byte TimeoutNow from
// anyone, a member's RPC naming another member, a member's address that
// is not its own, a TimeoutNow from a member that is not the leader, a
// connection that switches identity after its first RPC, and a silent
// connection (closed after the admission deadline). A TimeoutNow from the
// leader passes and is noted for the journal.
func TestRaftPortAttacks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after startGuarded's cleanup
	members := func(self string) []Member {
		return []Member{{ID: "a", Role: RoleNode, Raft: "127.0.0.1:7001"}, {ID: "b", Role: RoleNode, Raft: self},
			{ID: "arb", Role: RoleArbiter, Raft: "127.0.0.1:7003"}}
	}
	g := startGuarded(t, nil, members) // plain TCP: --pair-insecure or loopback
	g.mu.Lock()
	g.leader = "a"
	g.mu.Unlock()
	dial := func(t *testing.T) net.Conn {
		c, err := net.DialTimeout("tcp", g.addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	for _, tc := range []struct {
		name string
		msg  []byte
		want string
	}{
		{"the 17-byte TimeoutNow", []byte("\x03\x81\xafProtocolVersion\x03"), "names no member"},
		{"TimeoutNow from a non-leader member", encodeRPC(t, rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: hdr("arb", "127.0.0.1:7003")}), "not the leader this member follows"},
		{"RequestVote with another member's address", encodeRPC(t, rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: hdr("a", "127.0.0.1:7003"), Term: 9}), "not its own"},
		{"unknown RPC type", []byte{9, 0x80}, "unknown RPC type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t)
			if _, err := c.Write(tc.msg); err != nil {
				t.Fatal(err)
			}
			if !closedByPeer(c, 5*time.Second) {
				t.Error("connection not closed")
			}
			g.refusedWith(t, tc.want)
		})
	}
	// The leader's TimeoutNow passes and is noted; a second RPC on that
	// connection in another member's name closes it.
	c := dial(t)
	if _, err := c.Write(encodeRPC(t, rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: hdr("a", "127.0.0.1:7001")})); err != nil {
		t.Fatal(err)
	}
	var sc net.Conn
	select {
	case sc = <-g.accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the leader's TimeoutNow was not accepted")
	}
	if typ, _ := decodeRPC(t, sc); typ != rpcTimeoutNow {
		t.Fatalf("raft got %d", typ)
	}
	g.mu.Lock()
	if len(g.timeouts) != 1 || g.timeouts[0] != "a" {
		t.Errorf("noted transfers %v, want [a]", g.timeouts)
	}
	g.mu.Unlock()
	if _, err := c.Write(encodeRPC(t, rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: hdr("arb", "127.0.0.1:7003"), Term: 9})); err != nil {
		t.Fatal(err)
	}
	if !closedByPeer(c, 5*time.Second) {
		t.Error("identity switch: connection not closed")
	}
	g.refusedWith(t, `sent as member "arb" on a connection of member "a"`)
	// Raft's end sees the connection end, not the refused RPC.
	_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := sc.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("raft's end after the refusal: %d, %v", n, err)
	}
	sc.Close()

	// Silent: closed after the admission deadline.
	t0 := time.Now()
	if s := dial(t); !closedByPeer(s, admitTimeout+3*time.Second) {
		t.Error("silent connection kept open")
	}
	if d := time.Since(t0); d < admitTimeout-time.Second {
		t.Errorf("silent connection closed after %s", d)
	}
}

// TestRaftRPCBoundToCertificate: over mutual TLS, member a's certificate
// cannot carry an RPC in b's or arb's name (the arbiter cannot start an
// election in a node's name either), and its own RPCs pass.
func TestRaftRPCBoundToCertificate(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after startGuarded's cleanup
	own := testPKI(t)
	members := func(self string) []Member {
		return []Member{{ID: "a", Role: RoleNode, Raft: "127.0.0.1:7001"}, {ID: "b", Role: RoleNode, Raft: self},
			{ID: "arb", Role: RoleArbiter, Raft: "127.0.0.1:7003"}}
	}
	g := startGuarded(t, own["b"], members)
	g.mu.Lock()
	g.leader = "a"
	g.mu.Unlock()
	send := func(t *testing.T, as string, msg []byte) net.Conn {
		c, err := tls.Dial("tcp", g.addr, own[as].ClientConfig("b"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		return c
	}
	// The arbiter's certificate, a TimeoutNow in a's (the leader's) name.
	c := send(t, "arb", encodeRPC(t, rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: hdr("a", "127.0.0.1:7001")}))
	if !closedByPeer(c, 5*time.Second) {
		t.Error("arb speaking as a: not closed")
	}
	g.refusedWith(t, `sent as member "a" on a connection of member "arb"`)
	// a's certificate, a RequestVote as arb.
	c = send(t, "a", encodeRPC(t, rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: hdr("arb", "127.0.0.1:7003"), Term: 5}))
	if !closedByPeer(c, 5*time.Second) {
		t.Error("a speaking as arb: not closed")
	}
	g.refusedWith(t, `sent as member "arb" on a connection of member "a"`)
	// a as a: passes.
	send(t, "a", encodeRPC(t, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hdr("a", "127.0.0.1:7001"), Term: 5}))
	select {
	case sc := <-g.accepted:
		if typ, _ := decodeRPC(t, sc); typ != rpcAppendEntries {
			t.Errorf("raft got %d", typ)
		}
		sc.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("a's own AppendEntries not accepted")
	}
	g.mu.Lock()
	if len(g.timeouts) != 0 {
		t.Errorf("a refused TimeoutNow was noted: %v", g.timeouts)
	}
	g.mu.Unlock()
}

// TestRaftPortConnectionBounds: connections being admitted beyond
// maxHandshakes are closed at once; admitted connections of one member
// beyond maxConnsPerMember evict its least recently active one.
func TestRaftPortConnectionBounds(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after startGuarded's cleanup
	g := startGuarded(t, nil, func(self string) []Member {
		return []Member{{ID: "a", Role: RoleNode, Raft: "127.0.0.1:7001"}, {ID: "b", Role: RoleNode, Raft: self}}
	})
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	closed := 0
	for range maxHandshakes + 20 {
		c, err := net.DialTimeout("tcp", g.addr, time.Second)
		if err != nil {
			closed++ // reset at once
			continue
		}
		idle = append(idle, c)
	}
	for _, c := range idle[maxHandshakes:] {
		if closedByPeer(c, 2*time.Second) {
			closed++
		}
	}
	if closed < 20 {
		t.Errorf("%d of the 20 connections over the admission limit closed at once", closed)
	}
	g.refusedWith(t, "too many connections being admitted")
	for _, c := range idle {
		c.Close()
	}
	idle = nil
	// Wait for the admission slots to free (the listener sees the closes).
	hb := encodeRPC(t, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hdr("a", "127.0.0.1:7001"), Term: 1})
	var conns []net.Conn
	deadline := time.Now().Add(5 * time.Second)
	for len(conns) < maxConnsPerMember+3 && time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", g.addr, time.Second)
		if err != nil {
			continue // an admission slot not freed yet: reset at once; until the deadline
		}
		idle = append(idle, c)
		_, _ = c.Write(hb)
		select {
		case sc := <-g.accepted:
			conns = append(conns, sc)
			defer sc.Close()
		case <-time.After(time.Second):
		}
	}
	if len(conns) != maxConnsPerMember+3 {
		t.Fatalf("%d connections of member a admitted", len(conns))
	}
	if n := g.sl.liveCount(); n != maxConnsPerMember {
		t.Errorf("%d connections of member a open, want %d", n, maxConnsPerMember)
	}
	// The three oldest were evicted: their client sides are closed.
	for i, c := range idle[:3] {
		if !closedByPeer(c, 2*time.Second) {
			t.Errorf("oldest connection %d not evicted", i)
		}
	}
}

// FuzzRaftFirstRPC: whatever arrives as a connection's first RPC, the
// guard decodes and checks it without panicking, and passes nothing that
// does not name a member at its address.
func FuzzRaftFirstRPC(f *testing.F) {
	f.Add([]byte("\x03\x81\xafProtocolVersion\x03"))
	f.Add(encodeRPC(f, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hdr("a", "127.0.0.1:7001"), Term: 1,
		Entries: []*raft.Log{{Index: 1, Term: 1, Data: []byte("x")}}}))
	f.Add(encodeRPC(f, rpcInstallSnapshot, &raft.InstallSnapshotRequest{RPCHeader: hdr("a", "127.0.0.1:7001"), Size: 3}))
	f.Add(encodeRPC(f, rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: hdr("b", "127.0.0.1:7002"), Term: 2}))
	g := newRaftGuard([]Member{{ID: "a", Raft: "127.0.0.1:7001"}, {ID: "b", Raft: "127.0.0.1:7002"}},
		func() string { return "a" }, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		client, server := net.Pipe()
		defer server.Close()
		go func() { _, _ = client.Write(b); client.Close() }()
		l := &pairListener{live: map[*liveConn]struct{}{}}
		p := &raftProxy{g: g, c: &liveConn{Conn: server, l: l}}
		p.budget = &budgetReader{r: p.c, left: maxRaftMessage}
		p.br = bufio.NewReaderSize(p.budget, 4096)
		p.dec = codec.NewDecoder(p.br, &codec.MsgpackHandle{})
		m, err := p.read(false)
		if err != nil {
			return
		}
		h := m.cmd.(raft.WithRPCHeader).GetRPCHeader()
		if mm, ok := g.addrs[string(h.ID)]; !ok || !addrIn(string(h.Addr), mm) {
			t.Fatalf("passed an RPC naming %q at %q", h.ID, h.Addr)
		}
	})
}

// TestRaftSlowRPC: an admitted member connection that starts an RPC and
// then trickles or stops is closed after the body deadline (raft's end
// sees the connection end); one that idles between RPCs is kept.
func TestRaftSlowRPC(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	own := testPKI(t)
	g := startGuardedT(t, own["b"], func(self string) []Member {
		return []Member{{ID: "a", Role: RoleNode, Raft: "127.0.0.1:7001"}, {ID: "b", Role: RoleNode, Raft: self}}
	}, 300*time.Millisecond)
	c, err := tls.Dial("tcp", g.addr, own["a"].ClientConfig("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ae := encodeRPC(t, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hdr("a", "127.0.0.1:7001"), Term: 1})
	if _, err := c.Write(ae); err != nil {
		t.Fatal(err)
	}
	var sc net.Conn
	select {
	case sc = <-g.accepted:
		defer sc.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("not admitted")
	}
	decodeRPC(t, sc)
	// Idle for three body deadlines: kept.
	if closedByPeer(c, time.Second) {
		t.Fatal("an idle admitted connection was closed")
	}
	// Half an RPC, then silence: closed after the body deadline.
	t0 := time.Now()
	if _, err := c.Write(ae[:len(ae)/2]); err != nil {
		t.Fatal(err)
	}
	if !closedByPeer(c, 5*time.Second) {
		t.Fatal("a stalled RPC kept its connection")
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("closed after %s, want about 300 ms", d)
	}
	_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := sc.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("raft's end still open: %v", err)
	}
}
