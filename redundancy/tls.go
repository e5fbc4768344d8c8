package redundancy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
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

// handshakeTimeout bounds a TLS handshake on the pair's listeners: a
// peer that connects and says nothing holds a slot this long at most.
const handshakeTimeout = 5 * time.Second

// maxHandshakes bounds concurrent handshakes per listener; connections
// beyond it are closed at once (and the refusal journaled).
const maxHandshakes = 32

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

// pairListener accepts TCP connections and completes the TLS handshake
// (mutual, verified by serverConfig) before handing a connection on; a
// failed handshake is reported to refused and the connection closed.
// Handshakes run concurrently (at most maxHandshakes), so one silent
// client does not stall the others. Accept returns *tls.Conn, which
// net/http recognises (Request.TLS is set).
type pairListener struct {
	ln      net.Listener
	addr    net.Addr // advertised address
	cfg     *tls.Config
	name    string // "raft" or "peer link", for the journal
	refused func(listener string, remote net.Addr, reason error)

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	conns  chan net.Conn
	done   chan struct{}
	sem    chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func newPairListener(ln net.Listener, cfg *tls.Config, name string, refused func(string, net.Addr, error)) *pairListener {
	l := &pairListener{ln: ln, addr: ln.Addr(), cfg: cfg, name: name, refused: refused,
		conns: make(chan net.Conn), done: make(chan struct{}), sem: make(chan struct{}, maxHandshakes)}
	l.ctx, l.cancel = context.WithCancel(context.Background())
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
			l.refused(l.name, c.RemoteAddr(), errors.New("too many concurrent handshakes"))
			_ = c.Close()
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-l.sem }()
			l.handshake(c)
		}()
	}
}

func (l *pairListener) handshake(c net.Conn) {
	tc := tls.Server(c, l.cfg)
	ctx, cancel := context.WithTimeout(l.ctx, handshakeTimeout) // Close ends it too
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		l.refused(l.name, c.RemoteAddr(), err)
		_ = c.Close()
		return
	}
	select {
	case l.conns <- tc:
	case <-l.done:
		_ = tc.Close()
	}
}

// Accept returns the next connection whose handshake succeeded.
func (l *pairListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and returns after every handshake goroutine has
// exited.
func (l *pairListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		l.cancel()
		err = l.ln.Close()
		l.wg.Wait()
	})
	return err
}

// Addr is the listener's address.
func (l *pairListener) Addr() net.Addr { return l.addr }

// pairStreamLayer is raft's StreamLayer over mutual TLS: the listener
// side is a pairListener, Dial checks that the server is the member
// configured at that raft address.
type pairStreamLayer struct {
	*pairListener
	tls     *PairTLS
	members []Member
}

// Dial connects to the member at address; a certificate that does not
// name that member fails the handshake.
func (s *pairStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
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

type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

// newTransport returns the raft transport: plain TCP as before, or mutual
// TLS through a pairStreamLayer when the pair has TLS.
func (n *Node) newTransport() (*raft.NetworkTransport, error) {
	logger := NewHCLogger(n.log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)), "transport")
	addr, err := net.ResolveTCPAddr("tcp", n.self.Raft)
	if err != nil {
		return nil, fmt.Errorf("raft address %s: %w", n.self.Raft, err)
	}
	if n.cfg.TLS == nil {
		return raft.NewTCPTransportWithLogger(n.self.Raft, addr, 3, 2*time.Second, logger)
	}
	ln, err := net.Listen("tcp", n.self.Raft)
	if err != nil {
		return nil, err
	}
	pl := newPairListener(ln, n.cfg.TLS.ServerConfig(), "raft", n.refusals.add)
	if addr.IP != nil && !addr.IP.IsUnspecified() {
		pl.addr = addr
	}
	sl := &pairStreamLayer{pairListener: pl, tls: n.cfg.TLS, members: n.cfg.Members}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: sl, MaxPool: 3, Timeout: 2 * time.Second, Logger: logger,
	}), nil
}
