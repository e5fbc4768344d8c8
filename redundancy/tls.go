package redundancy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// PeerVerifier authenticates a pair member by its certificate chain (leaf
// first, DER) and returns the member id it names (*pki.PairVerifier
// satisfies it). It must be safe for concurrent use.
type PeerVerifier interface {
	Verify(rawCerts [][]byte) (memberID string, err error)
}

// PairTLS is the mutual TLS of the raft transport and the peer link. In
// Config, nil means plain TCP, as before TLS existed.
type PairTLS struct {
	// Cert is this member's certificate and key. The key never leaves the
	// node: nothing sends it anywhere.
	Cert tls.Certificate
	// Verifier decides which certificates are members.
	Verifier PeerVerifier
}

// admitTimeout bounds what a new connection on a pair listener may take
// before it is admitted: the TLS handshake and, on the raft port, its
// first RPC. A peer that connects and says nothing holds a slot this long
// at most.
const admitTimeout = 5 * time.Second

// maxHandshakes bounds the connections per listener that are not admitted
// yet (TLS handshake, first raft RPC); connections beyond it are closed
// at once (and the refusal journaled). Nothing of raft is allocated for
// them.
const maxHandshakes = 32

// maxConnsPerMember bounds the admitted connections per member and
// listener. raft pools up to 3 per peer and uses a few more at once
// (heartbeat, pipeline); the peer link's client keeps 2. An admitted
// connection beyond it evicts that member's least recently active one.
const maxConnsPerMember = 8

// ServerConfig is the TLS server side of a pair listener: a client
// certificate is required and must name a member.
func (t *PairTLS) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{t.Cert},
		ClientAuth:   tls.RequireAnyClientCert, // verified below: CA or pin, and the member id
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := t.Verifier.Verify(raw)
			return err
		},
	}
}

// ClientConfig is the TLS client side towards member want: the server's
// certificate must name exactly that member. Go's own verification
// (hostnames, system roots) is replaced by the pair's: the pair CA or a
// pin, and the member id.
func (t *PairTLS) ClientConfig(want string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{t.Cert},
		InsecureSkipVerify: true, // replaced by VerifyPeerCertificate, which checks the chain and the id
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			id, err := t.Verifier.Verify(raw)
			if err != nil {
				return err
			}
			if id != want {
				return fmt.Errorf("certificate names member %q, expected %q", id, want)
			}
			return nil
		},
	}
}

// pairListener accepts TCP connections and admits them before handing
// them on: the TLS handshake (mutual, verified by cfg; nil cfg: plain
// TCP) and then admit, if set (the raft port checks the first RPC). A
// connection that fails is reported to refused and closed. Admissions run
// concurrently (at most maxHandshakes, each within admitTimeout), so one
// silent client does not stall the others, and a flood costs a closed
// socket per connection. Admitted connections are counted per member (at
// most maxConnsPerMember; the least recently active is evicted) and
// closed by Close.
//
// Accept returns a *liveConn (or what admit returns); net/http does not
// see the TLS under it, so the peer link reads the member from the
// connection (memberOf) rather than from Request.TLS.
type pairListener struct {
	ln      net.Listener
	addr    net.Addr // advertised address
	cfg     *tls.Config
	verify  func(raw [][]byte) (string, error) // member of a TLS peer
	name    string                             // "raft" or "peer link", for the journal
	refused func(listener string, remote net.Addr, reason error)
	// admit, when set, runs after the handshake, within the deadline; it
	// returns the connection to hand on and the member it speaks for.
	admit func(l *pairListener, c *liveConn, deadline time.Time) (net.Conn, string, error)

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	conns  chan net.Conn
	done   chan struct{}
	sem    chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu   sync.Mutex
	live map[*liveConn]struct{}
}

// liveConn is an admitted (or being admitted) connection of a
// pairListener: Close removes it from the listener's count.
type liveConn struct {
	net.Conn
	l        *pairListener
	member   string
	lastRead atomic.Int64 // unix nanos of the last successful Read
	closed   sync.Once
	also     io.Closer // closed with the connection (the raft proxy's pipe)
}

func (c *liveConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *liveConn) Close() error {
	c.closed.Do(func() {
		c.l.mu.Lock()
		delete(c.l.live, c)
		c.l.mu.Unlock()
		if c.also != nil {
			_ = c.also.Close()
		}
	})
	return c.Conn.Close()
}

// memberOf returns the member a connection accepted by a pairListener
// speaks for ("" for plain TCP without an admit step, or another conn).
func memberOf(c net.Conn) string {
	if lc, ok := c.(*liveConn); ok {
		return lc.member
	}
	return ""
}

func newPairListener(ln net.Listener, cfg *tls.Config, name string, refused func(string, net.Addr, error)) *pairListener {
	l := &pairListener{ln: ln, addr: ln.Addr(), cfg: cfg, name: name, refused: refused,
		conns: make(chan net.Conn), done: make(chan struct{}), sem: make(chan struct{}, maxHandshakes),
		live: map[*liveConn]struct{}{}}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l
}

// start starts accepting; set verify and admit before.
func (l *pairListener) start() *pairListener {
	l.wg.Add(1)
	go func() { defer l.wg.Done(); l.acceptLoop() }()
	return l
}

func (l *pairListener) acceptLoop() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient error (out of file descriptors): back off.
			t := time.NewTimer(50 * time.Millisecond)
			select {
			case <-l.done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		select {
		case l.sem <- struct{}{}:
		default:
			l.refused(l.name, c.RemoteAddr(), errors.New("too many connections being admitted"))
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // no TIME_WAIT state kept for a flood
			}
			_ = c.Close()
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.handshake(c)
		}()
	}
}

func (l *pairListener) handshake(c net.Conn) {
	released := false
	release := func() {
		if !released {
			released = true
			<-l.sem
		}
	}
	defer release()
	deadline := time.Now().Add(admitTimeout)
	ctx, cancel := context.WithDeadline(l.ctx, deadline) // Close ends it too
	defer cancel()
	lc := &liveConn{Conn: c, l: l}
	if l.cfg != nil {
		tc := tls.Server(c, l.cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			l.refused(l.name, c.RemoteAddr(), err)
			_ = c.Close()
			return
		}
		lc.Conn = tc
		if l.verify != nil {
			raw := make([][]byte, 0, len(tc.ConnectionState().PeerCertificates))
			for _, pc := range tc.ConnectionState().PeerCertificates {
				raw = append(raw, pc.Raw)
			}
			id, err := l.verify(raw)
			if err != nil { // verified in the handshake already: a second line
				l.refused(l.name, c.RemoteAddr(), err)
				_ = c.Close()
				return
			}
			lc.member = id
		}
	}
	var out net.Conn = lc
	if l.admit != nil {
		_ = c.SetDeadline(deadline)
		stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) }) // Close interrupts
		o, member, err := l.admit(l, lc, deadline)
		stop()
		if err != nil {
			l.refused(l.name, c.RemoteAddr(), err)
			_ = c.Close()
			return
		}
		out, lc.member = o, member
	}
	release()
	if !l.register(lc) {
		_ = out.Close()
		_ = lc.Close()
		return
	}
	select {
	case l.conns <- out:
	case <-l.done:
		_ = out.Close()
		_ = lc.Close()
	}
}

// register counts an admitted connection, evicting its member's least
// recently active one past maxConnsPerMember. false: the listener is
// closed.
func (l *pairListener) register(lc *liveConn) bool {
	lc.lastRead.Store(time.Now().UnixNano())
	l.mu.Lock()
	select {
	case <-l.done:
		l.mu.Unlock()
		return false
	default:
	}
	var oldest *liveConn
	n := 0
	for c := range l.live {
		if c.member != lc.member {
			continue
		}
		n++
		if oldest == nil || c.lastRead.Load() < oldest.lastRead.Load() {
			oldest = c
		}
	}
	l.live[lc] = struct{}{}
	l.mu.Unlock()
	if n >= maxConnsPerMember && oldest != nil {
		_ = oldest.Close()
	}
	return true
}

// liveCount returns the number of admitted connections open.
func (l *pairListener) liveCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.live)
}

// Accept returns the next admitted connection.
func (l *pairListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting, closes every admitted connection and returns
// after every goroutine of the listener has exited.
func (l *pairListener) Close() error {
	var err error
	l.once.Do(func() {
		l.mu.Lock()
		close(l.done)
		live := make([]*liveConn, 0, len(l.live))
		for c := range l.live {
			live = append(live, c)
		}
		l.mu.Unlock()
		l.cancel()
		err = l.ln.Close()
		for _, c := range live {
			_ = c.Close()
		}
		l.wg.Wait()
	})
	return err
}

// Addr is the listener's address.
func (l *pairListener) Addr() net.Addr { return l.addr }

type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }
