package redundancy

// The raft transport of a member: hashicorp/raft's NetworkTransport over
// a stream layer of our own. raft alone accepts any peer and any RPC (one
// 17-byte TimeoutNow makes a follower start an election), keeps idle
// connections forever and allocates a 256 KiB buffer per connection
// before reading a byte. The stream layer admits a connection only after
// the TLS handshake (when the pair has TLS) and its first RPC were
// checked, and then stands between the network and raft for the
// connection's life: every RPC it passes on names, in its header, the
// member whose certificate opened the connection (or, on plain TCP, the
// member the first RPC named), at that member's raft address, and a
// TimeoutNow comes from the leader this member follows.

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// raft's RPC types on the wire (net_transport.go in hashicorp/raft).
const (
	rpcAppendEntries uint8 = iota
	rpcRequestVote
	rpcInstallSnapshot
	rpcTimeoutNow
	rpcRequestPreVote
)

// rpcBodyTimeout: once an RPC's first byte arrived, the rest (and each
// chunk of a snapshot) must follow within this long, and a response must
// be taken by the peer within this long. An idle admitted connection has
// no deadline (raft pools connections and a pooled one closed under it
// would fail the first vote of a failover); it is bounded by
// maxConnsPerMember instead.
const rpcBodyTimeout = 10 * time.Second

// maxRaftMessage bounds one raft RPC (without snapshot data). Entries
// carry the mirror config (YAML); 64 entries of a large config fit.
const maxRaftMessage = 64 << 20

// raftStreamLayer is raft's StreamLayer: a pairListener whose admit step
// is a raftGuard, and a Dial that reaches only configured members (over
// mutual TLS when the pair has TLS, checking the server is the member
// configured at that address).
type raftStreamLayer struct {
	*pairListener
	tls     *PairTLS // nil: plain TCP
	members []Member
}

// Dial connects to the member at address.
func (s *raftStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	want := ""
	for _, m := range s.members {
		if m.Raft == string(address) {
			want = m.ID
		}
	}
	if want == "" {
		return nil, fmt.Errorf("raft: %s is no member's raft address", address)
	}
	d := &net.Dialer{Timeout: timeout}
	if s.tls == nil {
		return d.Dial("tcp", string(address))
	}
	c, err := tls.DialWithDialer(d, "tcp", string(address), s.tls.ClientConfig(want))
	if err != nil {
		var ne net.Error
		if !errors.As(err, &ne) { // a TLS refusal, not an unreachable peer
			s.refused("raft (outgoing to "+want+")", stringAddr(address), err)
		}
		return nil, err
	}
	return c, nil
}

// raftGuard checks the RPCs arriving on the raft port.
type raftGuard struct {
	members []Member
	// addrs holds, per member id, the forms of its raft address an RPC
	// header may carry (as configured, and resolved).
	addrs map[string][]string
	// leader returns the id of the leader this member follows ("" none).
	leader func() string
	// onTimeoutNow is called for every TimeoutNow passed on to raft.
	onTimeoutNow func(from string)
	// bodyTimeout is rpcBodyTimeout (shorter in tests).
	bodyTimeout time.Duration
}

func newRaftGuard(members []Member, leader func() string, onTimeoutNow func(string)) *raftGuard {
	g := &raftGuard{members: members, addrs: map[string][]string{}, leader: leader, onTimeoutNow: onTimeoutNow, bodyTimeout: rpcBodyTimeout}
	for _, m := range members {
		g.addrs[m.ID] = append(g.addrs[m.ID], m.Raft)
		if a, err := net.ResolveTCPAddr("tcp", m.Raft); err == nil {
			g.addrs[m.ID] = append(g.addrs[m.ID], a.String())
		}
	}
	return g
}

// rpcMsg is one decoded raft RPC.
type rpcMsg struct {
	typ  uint8
	cmd  any   // *raft.AppendEntriesRequest, …
	data int64 // snapshot bytes following an InstallSnapshot
}

func rpcName(t uint8) string {
	switch t {
	case rpcAppendEntries:
		return "AppendEntries"
	case rpcRequestVote:
		return "RequestVote"
	case rpcInstallSnapshot:
		return "InstallSnapshot"
	case rpcTimeoutNow:
		return "TimeoutNow"
	case rpcRequestPreVote:
		return "RequestPreVote"
	}
	return fmt.Sprintf("type %d", t)
}

// budgetReader counts the bytes a message may still take.
type budgetReader struct {
	r    io.Reader
	left int64
}

var errRaftMessageTooLarge = fmt.Errorf("raft RPC larger than %d bytes", maxRaftMessage)

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errRaftMessageTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// raftProxy carries one admitted connection: requests from the network
// are decoded, checked and re-encoded towards raft (over a pipe);
// responses are copied back.
type raftProxy struct {
	g      *raftGuard
	c      *liveConn // the network side
	br     *bufio.Reader
	budget *budgetReader
	dec    *codec.Decoder
	member string // whom this connection speaks for
	inner  net.Conn
	outer  net.Conn // raft's end is inner; we write requests to outer
}

// admit reads and checks the first RPC (within the admission deadline
// set on c), then starts the proxy and returns raft's end of it.
func (g *raftGuard) admit(l *pairListener, c *liveConn, _ time.Time) (net.Conn, string, error) {
	p := &raftProxy{g: g, c: c, member: c.member}
	p.budget = &budgetReader{r: c, left: maxRaftMessage}
	p.br = bufio.NewReaderSize(p.budget, 4096)
	p.dec = codec.NewDecoder(p.br, &codec.MsgpackHandle{})
	first, err := p.read(false)
	if err != nil {
		return nil, "", err
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, "", err
	}
	p.inner, p.outer = net.Pipe()
	c.also = p.outer
	l.wg.Add(2)
	go func() { defer l.wg.Done(); p.requests(first) }()
	go func() { defer l.wg.Done(); p.responses() }()
	return &addrConn{Conn: p.inner, local: c.LocalAddr(), remote: c.RemoteAddr()}, p.member, nil
}

// read reads the next RPC and checks it. wait: no deadline until its
// first byte (an idle admitted connection).
func (p *raftProxy) read(wait bool) (*rpcMsg, error) {
	if wait {
		if err := p.c.SetReadDeadline(time.Time{}); err != nil {
			return nil, err
		}
	}
	p.budget.left = maxRaftMessage
	typ, err := p.br.ReadByte()
	if err != nil {
		return nil, err
	}
	if wait {
		if err := p.c.SetReadDeadline(time.Now().Add(p.g.bodyTimeout)); err != nil {
			return nil, err
		}
	}
	m := &rpcMsg{typ: typ}
	var legacy []byte // the pre-header address field of some RPCs
	switch typ {
	case rpcAppendEntries:
		r := &raft.AppendEntriesRequest{}
		m.cmd, err = r, p.dec.Decode(r)
		legacy = r.Leader //nolint:staticcheck // still on the wire
	case rpcRequestVote:
		r := &raft.RequestVoteRequest{}
		m.cmd, err = r, p.dec.Decode(r)
		legacy = r.Candidate //nolint:staticcheck // still on the wire
	case rpcInstallSnapshot:
		r := &raft.InstallSnapshotRequest{}
		m.cmd, err = r, p.dec.Decode(r)
		legacy, m.data = r.Leader, r.Size //nolint:staticcheck // still on the wire
		if err == nil && r.Size < 0 {
			err = fmt.Errorf("negative snapshot size %d", r.Size)
		}
	case rpcTimeoutNow:
		r := &raft.TimeoutNowRequest{}
		m.cmd, err = r, p.dec.Decode(r)
	case rpcRequestPreVote:
		r := &raft.RequestPreVoteRequest{}
		m.cmd, err = r, p.dec.Decode(r)
	default:
		return nil, fmt.Errorf("raft: unknown RPC type %d", typ)
	}
	if err != nil {
		return nil, fmt.Errorf("raft %s: undecodable: %w", rpcName(typ), err)
	}
	if err := p.check(m, legacy); err != nil {
		return nil, err
	}
	return m, nil
}

// ErrRaftRPCRefused marks a raft RPC refused by the stream layer.
var ErrRaftRPCRefused = errors.New("raft RPC refused")

// refusal is an error whose text starts with its kind (the refusal
// journal keeps one entry per kind, host and window) and that wraps a
// sentinel.
type refusal struct {
	kind, detail string
	sentinel     error
}

func (r *refusal) Error() string { return r.kind + ": " + r.detail }
func (r *refusal) Unwrap() error { return r.sentinel }

func refuseRPC(kind, format string, a ...any) error {
	return &refusal{kind: kind, detail: fmt.Sprintf(format, a...), sentinel: ErrRaftRPCRefused}
}

// check binds the RPC to the connection's member.
func (p *raftProxy) check(m *rpcMsg, legacy []byte) error {
	h := m.cmd.(raft.WithRPCHeader).GetRPCHeader()
	id, addr, name := string(h.ID), string(h.Addr), rpcName(m.typ)
	addrs, known := p.g.addrs[id]
	switch {
	case !known:
		return refuseRPC("raft RPC from no member", "%s names no member of the pair (ID %q)", name, id)
	case p.member != "" && id != p.member:
		return refuseRPC("raft RPC in another member's name", "%s sent as member %q on a connection of member %q (a member cannot speak for another)",
			name, id, p.member)
	case !addrIn(addr, addrs):
		return refuseRPC("raft RPC with a wrong address", "%s from member %q carries raft address %q, not its own %s", name, id, addr, addrs[0])
	case len(legacy) > 0 && !addrIn(string(legacy), addrs):
		return refuseRPC("raft RPC with a wrong address", "%s from member %q names raft address %q, not its own %s", name, id, legacy, addrs[0])
	}
	if m.typ == rpcTimeoutNow {
		// raft starts an election on any TimeoutNow (raft.go timeoutNow):
		// only the leader this member follows may hand it leadership.
		if l := p.g.leader(); l == "" || l != id {
			return refuseRPC("raft TimeoutNow not from the leader", "TimeoutNow from member %q, which is not the leader this member follows (%q): no election in this member's name",
				id, l)
		}
	}
	p.member = id
	return nil
}

func addrIn(a string, addrs []string) bool {
	for _, x := range addrs {
		if a == x {
			return true
		}
	}
	return false
}

// requests passes checked RPCs to raft until the connection fails or an
// RPC is refused; it then closes both sides.
func (p *raftProxy) requests(first *rpcMsg) {
	defer p.c.Close()
	defer p.outer.Close()
	bw := bufio.NewWriter(p.outer)
	enc := codec.NewEncoder(bw, &codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}})
	m := first
	for {
		if m.typ == rpcTimeoutNow && p.g.onTimeoutNow != nil {
			p.g.onTimeoutNow(p.member)
		}
		if err := bw.WriteByte(m.typ); err != nil {
			return
		}
		if err := enc.Encode(m.cmd); err != nil {
			return
		}
		if m.data > 0 && p.copySnapshot(bw, m.data) != nil {
			return
		}
		if err := bw.Flush(); err != nil {
			return
		}
		var err error
		if m, err = p.read(true); err != nil {
			if errors.Is(err, ErrRaftRPCRefused) || errors.Is(err, errRaftMessageTooLarge) {
				p.c.l.refused(p.c.l.name, p.c.RemoteAddr(), err)
			}
			return
		}
	}
}

// copySnapshot copies n bytes of snapshot data, each chunk within
// rpcBodyTimeout.
func (p *raftProxy) copySnapshot(w io.Writer, n int64) error {
	buf := make([]byte, 32<<10)
	for n > 0 {
		if err := p.c.SetReadDeadline(time.Now().Add(p.g.bodyTimeout)); err != nil {
			return err
		}
		p.budget.left = int64(len(buf)) + 4096
		k := min(int64(len(buf)), n)
		r, err := io.ReadFull(p.br, buf[:k])
		if r > 0 {
			if _, werr := w.Write(buf[:r]); werr != nil {
				return werr
			}
		}
		if err != nil {
			return err
		}
		n -= int64(r)
	}
	return nil
}

// responses copies raft's responses to the network, each write within
// rpcBodyTimeout.
func (p *raftProxy) responses() {
	defer p.c.Close()
	defer p.outer.Close()
	buf := make([]byte, 4096)
	for {
		n, err := p.outer.Read(buf)
		if n > 0 {
			if derr := p.c.SetWriteDeadline(time.Now().Add(p.g.bodyTimeout)); derr != nil {
				return
			}
			if _, werr := p.c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// addrConn is a pipe end that reports the network connection's addresses.
type addrConn struct {
	net.Conn
	local, remote net.Addr
}

func (c *addrConn) LocalAddr() net.Addr  { return c.local }
func (c *addrConn) RemoteAddr() net.Addr { return c.remote }

// leaderID returns the leader this member follows ("" none known).
func (n *Node) leaderID() string {
	r := n.raft()
	if r == nil {
		return ""
	}
	_, id := r.LeaderWithID()
	return string(id)
}

// newTransport returns the raft transport over a raftStreamLayer (mutual
// TLS when the pair has TLS, plain TCP otherwise).
func (n *Node) newTransport() (*raft.NetworkTransport, error) {
	logger := NewHCLogger(n.log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)), "transport")
	if n.cfg.TLS == nil {
		if open := n.cfg.nonLoopback(); len(open) > 0 {
			n.log.Warn("PAIR INSECURE (--pair-insecure): raft and the peer link run plain TCP on non-loopback addresses; "+
				"anyone who reaches them can take the pair over", zap.Strings("addresses", open))
		}
	}
	addr, err := net.ResolveTCPAddr("tcp", n.self.Raft)
	if err != nil {
		return nil, fmt.Errorf("raft address %s: %w", n.self.Raft, err)
	}
	ln, err := net.Listen("tcp", n.self.Raft)
	if err != nil {
		return nil, err
	}
	var cfg *tls.Config
	if n.cfg.TLS != nil {
		cfg = n.cfg.TLS.ServerConfig()
	}
	pl := newPairListener(ln, cfg, "raft", n.refusals.add)
	if n.cfg.TLS != nil {
		pl.verify = n.cfg.TLS.Verifier.Verify
	}
	pl.admit = newRaftGuard(n.cfg.Members, n.leaderID, n.noteTimeoutNow).admit
	if addr.IP != nil && !addr.IP.IsUnspecified() {
		pl.addr = addr
	}
	sl := &raftStreamLayer{pairListener: pl.start(), tls: n.cfg.TLS, members: n.cfg.Members}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: sl, MaxPool: 3, Timeout: 2 * time.Second, Logger: logger,
	}), nil
}

// transferNote is the last TimeoutNow this member accepted.
type transferNote struct {
	from string
	at   time.Time
}

// noteTimeoutNow records a TimeoutNow passed on to raft, so that the
// promotion it causes is journaled as the transfer it was.
func (n *Node) noteTimeoutNow(from string) {
	n.lastTimeoutNow.Store(&transferNote{from: from, at: time.Now()})
	n.log.Warn("leadership transfer to this member requested by the leader (TimeoutNow)", zap.String("from", from))
}

// transferRecent: a promotion within this long of an accepted TimeoutNow
// is journaled as that transfer.
const transferRecent = 5 * time.Second

// transferredBy returns the member whose TimeoutNow this member accepted
// within transferRecent, or "".
func (n *Node) transferredBy() string {
	t := n.lastTimeoutNow.Load()
	if t == nil || time.Since(t.at) > transferRecent {
		return ""
	}
	return t.from
}
