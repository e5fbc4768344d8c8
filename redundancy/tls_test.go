package redundancy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/pki"
)

// testPKI makes a pair PKI (a, b, arb) and returns each member's PairTLS.
func testPKI(t *testing.T) map[string]*PairTLS {
	t.Helper()
	f, err := pki.InitPair(t.TempDir(), []pki.PairMemberSpec{{ID: "a", Hosts: []string{"127.0.0.1"}},
		{ID: "b", Hosts: []string{"127.0.0.1"}}, {ID: "arb", Hosts: []string{"127.0.0.1"}}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(f.CACert)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	v := &pki.PairVerifier{Roots: roots, Members: []string{"a", "b", "arb"}}
	out := map[string]*PairTLS{}
	for id, m := range f.Members {
		kp, err := tls.LoadX509KeyPair(m.Cert, m.Key)
		if err != nil {
			t.Fatal(err)
		}
		out[id] = &PairTLS{Cert: kp, Verifier: v}
	}
	return out
}

// TestPairStreamLayer: a member dials another's raft port over mutual
// TLS and its RPC reaches raft's end; a certificate of another CA is refused (and
// journaled) on the listener side and never reaches Accept; a dialer
// refuses a server whose certificate names another member than the one
// configured at that address; Close ends Accept and leaks nothing.
func TestPairStreamLayer(t *testing.T) {
	defer goleak.VerifyNone(t)
	own, other := testPKI(t), testPKI(t)
	jb := newRefusalJournal("b", zap.NewNop())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	members := []Member{{ID: "a", Raft: "127.0.0.1:1"}, {ID: "b", Raft: addr}}
	pl := newPairListener(ln, own["b"].ServerConfig(), "raft", jb.add)
	pl.verify = own["b"].Verifier.Verify
	pl.admit = newRaftGuard(members, func() string { return "a" }, nil).admit
	b := &raftStreamLayer{pairListener: pl.start(), tls: own["b"], members: members}
	defer b.Close()

	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := b.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()

	// An intruder with a certificate of another CA: refused before Accept.
	ja := newRefusalJournal("a", zap.NewNop())
	evilCfg := &tls.Config{Certificates: []tls.Certificate{other["a"].Cert}, InsecureSkipVerify: true} // it does not check b
	if c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, evilCfg); err == nil {
		// TLS 1.3: the client finishes first; the server's verdict
		// arrives on the first read.
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("intruder's connection not closed by the server: %v", err)
		}
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(jb.list()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	if evs := jb.list(); len(evs) != 1 || !strings.Contains(evs[0].Detail, "not trusted") || !strings.HasPrefix(evs[0].From, "127.0.0.1:") || evs[0].Kind != RefusalKind {
		t.Errorf("refusal journal of b: %+v", evs)
	}

	// The member a: accepted, bytes flow both ways.
	a := &raftStreamLayer{pairListener: &pairListener{refused: ja.add}, tls: own["a"], members: members}
	c, err := a.Dial(raft.ServerAddress(addr), 2*time.Second)
	if err != nil {
		t.Fatalf("a dials b: %v", err)
	}
	defer c.Close()
	ping := encodeRPC(t, rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: 3, ID: []byte("a"), Addr: []byte("127.0.0.1:1")}})
	if _, err := c.Write(ping); err != nil {
		t.Fatal(err)
	}
	var sc net.Conn
	select {
	case sc = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("b did not accept a")
	}
	defer sc.Close()
	if typ, req := decodeRPC(t, sc); typ != rpcTimeoutNow || string(req.(*raft.TimeoutNowRequest).ID) != "a" {
		t.Fatalf("b read %d %+v", typ, req)
	}

	// a believes arb lives at b's address: b's certificate is refused.
	confused := &raftStreamLayer{pairListener: &pairListener{refused: ja.add}, tls: own["a"],
		members: []Member{{ID: "arb", Raft: addr}}}
	if _, err := confused.Dial(raft.ServerAddress(addr), 2*time.Second); err == nil || !strings.Contains(err.Error(), `names member "b", expected "arb"`) {
		t.Errorf("dialing arb's address served by b: %v", err)
	}
	if _, err := a.Dial("127.0.0.1:9", time.Second); err == nil || !strings.Contains(err.Error(), "no member") {
		t.Errorf("dialing an address of no member: %v", err)
	}
	if evs := ja.list(); len(evs) != 1 || !strings.Contains(evs[0].Detail, "outgoing to arb") {
		t.Errorf("a's journal after the mismatched dial: %+v", evs)
	}

	if err := b.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := b.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	for range accepted {
	}
}

// TestRefusalJournalRateLimit: one entry per host, listener and kind of
// reason per window; the refusals in between are counted into the next
// entry; the number of tracked hosts is bounded.
func TestRefusalJournalRateLimit(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	j := newRefusalJournal("a", zap.NewNop())
	j.now = func() time.Time { return now }
	bad := errors.New("certificate not trusted by the pair: x")
	for i := range 50 {
		j.add("raft", stringAddr("10.0.0.9:"+string(rune('0'+i%10))), bad)
	}
	j.add("raft", stringAddr("10.0.0.9:1"), errors.New("tls: client didn't provide a certificate"))
	j.add("peer link", stringAddr("10.0.0.9:1"), bad)
	j.add("raft", stringAddr("10.0.0.8:1"), bad)
	if n := len(j.list()); n != 4 {
		t.Fatalf("%d entries, want 4 (one per host, listener and reason): %+v", n, j.list())
	}
	now = now.Add(refusalWindow + time.Second)
	j.add("raft", stringAddr("10.0.0.9:7"), bad)
	evs := j.list()
	if last := evs[len(evs)-1]; len(evs) != 5 || !strings.Contains(last.Detail, "and 49 more refusals") {
		t.Errorf("after the window: %d entries, last %q", len(evs), last.Detail)
	}
	// A scan from many hosts: bounded state and list.
	for i := range 3 * maxRefusalHosts {
		j.add("raft", stringAddr(net.JoinHostPort(net.IPv4(10, 1, byte(i>>8), byte(i)).String(), "1")), bad)
	}
	if len(j.hosts) > maxRefusalHosts || len(j.list()) > maxRefusals {
		t.Errorf("after a scan: %d hosts tracked, %d entries", len(j.hosts), len(j.list()))
	}
}
