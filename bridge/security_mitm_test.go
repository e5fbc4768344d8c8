package bridge_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uapolicy"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/pki"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/uaserver"
)

// TestPasswordNotSentToSessionMITM: a man in the middle of a None/None
// channel passes GetEndpoints through unchanged (so the endpoint shows
// the real, pinned server certificate, which passes validation) but puts
// its own certificate in the CreateSession response. gopcua would encrypt
// the password to that one; the engine must refuse before
// ActivateSession. The man in the middle holds the key of its certificate
// and decrypts any password it gets: without the check it reads it.
func TestPasswordNotSentToSessionMITM(t *testing.T) {
	const password = "Mitm-Reads-Me-42"
	real, err := uaserver.New(uaserver.Config{Vars: 1, Type: "Double", Logger: zap.NewNop(),
		Security: []uaserver.SecurityPolicy{{Policy: "Basic256Sha256", Mode: ua.MessageSecurityModeSignAndEncrypt}},
		Users:    map[string]string{"operator": password}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := harness.Context(t)
	if err := real.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = real.Close() })
	rogueDER, rogueKey, err := uaserver.GenerateCertificate("urn:rogue", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	m := startMITM(t, strings.TrimPrefix(real.Endpoint(), "opc.tcp://"), rogueDER, rogueKey)

	eps, err := opcua.GetEndpoints(ctx, real.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	var realCert []byte
	for _, ep := range eps {
		if ep.SecurityMode == ua.MessageSecurityModeNone {
			realCert = ep.ServerCertificate
		}
	}
	if realCert == nil || bytes.Equal(realCert, rogueDER) {
		t.Fatal("the None endpoint presents no certificate of its own")
	}
	store, err := pki.Open(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.EnsureOwn("urn:uamirror:test:client", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("UAMIRROR_TEST_MITM_PW", password)
	sim := startSim(t, 1, "Double")
	cfg := &mapping.Config{
		Servers: []mapping.Server{
			{Name: "plc", Endpoints: []string{"opc.tcp://" + m.addr}, SecurityPolicy: "None", SecurityMode: "None",
				TrustedCertificates: []string{pki.Thumbprint(realCert)}, Timeouts: fastTimeouts(),
				Auth: mapping.Auth{Type: "username", Username: "operator", PasswordEnv: "UAMIRROR_TEST_MITM_PW"}},
			{Name: "sim", Endpoints: []string{sim.Endpoint()}, Timeouts: fastTimeouts()},
		},
		Engine:   mapping.Engine{PublishingInterval: 50 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond},
		Mappings: []mapping.Mapping{{Source: mapping.NodeRef{Server: "plc", Node: "nsu=" + real.NamespaceURI() + ";s=v0"}, Target: mapping.NodeRef{Server: "sim", Node: node(0)}}},
	}
	cfg.Mappings[0].ID = mapping.DeriveID(cfg.Mappings[0].Source, cfg.Mappings[0].Target)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	run := func(cfg *mapping.Config) *bridge.Engine {
		e, err := bridge.New(bridge.Options{Config: cfg, Security: store, Logger: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = e.Run(rctx) }()
		t.Cleanup(func() { cancel(); wg.Wait() })
		return e
	}
	e := run(cfg)

	var refused string
	harness.Eventually(t, 20*time.Second, "the engine refuses the session, or the man in the middle gets an ActivateSession", func() bool {
		if m.activations() > 0 {
			return true
		}
		for _, s := range e.Stats().Servers {
			if s.Name == "plc" && strings.Contains(s.LastError, bridge.ErrServerNotVerified.Error()) {
				refused = s.LastError
				return true
			}
		}
		return false
	})
	if pw := m.stolen(); pw != "" {
		t.Fatalf("the man in the middle decrypted the password: %q", pw)
	}
	if n := m.activations(); n > 0 {
		t.Fatalf("the man in the middle got %d ActivateSession requests", n)
	}
	if !m.rewrote() {
		t.Fatal("the man in the middle never rewrote a CreateSession response: the test tests nothing")
	}
	t.Logf("refused: %s", refused)

	// The same login without the man in the middle: the session comes up
	// (the real server checks the password) and its subscription delivers.
	direct := *cfg
	direct.Servers = append([]mapping.Server(nil), cfg.Servers...)
	direct.Servers[0].Endpoints = []string{real.Endpoint()}
	e2 := run(&direct)
	waitConnected(t, e2, 1)
	real.SetValue(0, 12.5, time.Now())
	harness.Eventually(t, 15*time.Second, "plc → sim over the checked session", func() bool { return valueOf(sim, 0) == 12.5 })
}

// mitm relays OPC UA TCP between a client and a server on a None/None
// channel (plain text), replaces the ServerCertificate of CreateSession
// responses with its own and decrypts the password of ActivateSession
// requests with its key.
type mitm struct {
	addr   string
	target string
	der    []byte
	key    *rsa.PrivateKey

	mu        sync.Mutex
	rewrites  int
	nonceLen  int
	activates int
	password  string
}

func startMITM(t *testing.T, target string, der []byte, key *rsa.PrivateKey) *mitm {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &mitm{addr: ln.Addr().String(), target: target, der: der, key: key}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) { mu.Lock(); conns = append(conns, c); mu.Unlock() }
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			track(c)
			track(s)
			wg.Add(2)
			go func() { defer wg.Done(); m.pump(c, s, m.toServer); _ = s.Close(); _ = c.Close() }()
			go func() { defer wg.Done(); m.pump(s, c, m.toClient); _ = s.Close(); _ = c.Close() }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return m
}

func (m *mitm) activations() int { m.mu.Lock(); defer m.mu.Unlock(); return m.activates }
func (m *mitm) stolen() string   { m.mu.Lock(); defer m.mu.Unlock(); return m.password }
func (m *mitm) rewrote() bool    { m.mu.Lock(); defer m.mu.Unlock(); return m.rewrites > 0 }

// pump copies chunks from src to dst, passing each final MSG chunk's body
// (after the 24 bytes of header, channel id, token id, sequence number
// and request id: Part 6, 6.7.2) through f, which may replace it.
func (m *mitm) pump(src, dst net.Conn, f func(body []byte) []byte) {
	hdr := make([]byte, 8)
	for {
		if _, err := io.ReadFull(src, hdr); err != nil {
			return
		}
		n := binary.LittleEndian.Uint32(hdr[4:])
		if n < 8 || n > 1<<24 {
			return
		}
		chunk := make([]byte, n)
		copy(chunk, hdr)
		if _, err := io.ReadFull(src, chunk[8:]); err != nil {
			return
		}
		if string(hdr[:4]) == "MSGF" && n > 24 {
			if body := f(chunk[24:]); body != nil {
				chunk = append(chunk[:24:24], body...)
				binary.LittleEndian.PutUint32(chunk[4:], uint32(len(chunk)))
			}
		}
		if _, err := dst.Write(chunk); err != nil {
			return
		}
	}
}

func (m *mitm) toClient(body []byte) []byte {
	typeID, v, err := ua.DecodeService(body)
	res, ok := v.(*ua.CreateSessionResponse)
	if err != nil || !ok {
		return nil
	}
	res.ServerCertificate = m.der
	id, err1 := typeID.Encode()
	b, err2 := ua.Encode(res)
	if err1 != nil || err2 != nil {
		return nil
	}
	m.mu.Lock()
	m.rewrites++
	m.nonceLen = len(res.ServerNonce)
	m.mu.Unlock()
	return append(id, b...)
}

func (m *mitm) toServer(body []byte) []byte {
	_, v, err := ua.DecodeService(body)
	req, ok := v.(*ua.ActivateSessionRequest)
	if err != nil || !ok {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.activates++
	if req.UserIdentityToken == nil {
		return nil
	}
	tok, ok := req.UserIdentityToken.Value.(*ua.UserNameIdentityToken)
	if !ok {
		return nil
	}
	for _, pol := range []string{ua.SecurityPolicyURIBasic256Sha256, ua.SecurityPolicyURIAes128Sha256RsaOaep, ua.SecurityPolicyURIAes256Sha256RsaPss} {
		enc, err := uapolicy.Asymmetric(pol, m.key, &m.key.PublicKey)
		if err != nil {
			continue
		}
		// length, password, server nonce (Part 4, 7.36.4)
		if secret, err := enc.Decrypt(tok.Password); err == nil && len(secret) >= 4+m.nonceLen {
			m.password = string(secret[4 : len(secret)-m.nonceLen])
			break
		}
	}
	if m.password == "" {
		m.password = string(tok.Password) // not encrypted, or to a key it lacks
	}
	return nil
}
