package pair

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"github.com/uamirror/uamirror/test/harness"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/redundancy"
)

// securedPair starts a pair whose raft transport and peer link run over
// mutual TLS with certificates made by `uamirror pki init-pair`, and whose
// admin APIs serve https and want a bearer token for commands.
type securedPair struct {
	*pair
	pki       string // init-pair output
	token     string
	tokenFile string
	caPool    *x509.CertPool
}

func startSecuredPair(t testing.TB, o pairOpts) *securedPair {
	t.Helper()
	o.secure = true
	p := startPair(t, o)
	sec := p.Security
	return &securedPair{pair: p, pki: sec.Dir, token: sec.Token, tokenFile: sec.TokenFile, caPool: sec.CA}
}

// plainHTTPS is a client that trusts the pair CA and sends no credentials.
func (sp *securedPair) plainHTTPS() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: sp.caPool}}}
}

// TestSecuredPair: a pair with mutual TLS on raft and the peer link and
// TLS + token on the admin API comes up with one active and mirrors;
// intruders (another CA, the pair CA but an unknown member id, a member
// speaking for another, plain TCP) are refused on the raft and peer
// ports and the refusals are journaled; commands without the token (or
// with a wrong one) are refused with 401/403 and logged without the
// token, and nothing switches; a switchover with the token, sent to the
// standby (which forwards it with its credentials), works.
func TestSecuredPair(t *testing.T) {
	sp := startSecuredPair(t, pairOpts{vars: 8})
	p := sp.pair
	act, sby, epoch := p.waitStable(30 * time.Second)
	t.Logf("secured pair stable: %s active under epoch %d", act.ID, epoch)

	// The pair view fans out to the other members' admin APIs over https
	// with this member's certificate.
	var view struct {
		Members []struct {
			ID     string             `json:"id"`
			Status *redundancy.Status `json:"status"`
			Error  string             `json:"error"`
		} `json:"members"`
	}
	if err := p.get(sby, "/api/v1/pair", &view); err != nil {
		t.Fatal(err)
	}
	for _, m := range view.Members {
		if m.Status == nil {
			t.Errorf("pair view on %s: member %s: %s", sby.ID, m.ID, m.Error)
		}
	}

	// ---- intruders ----
	foreign := filepath.Join(t.TempDir(), "foreign")
	if out, code := cli(t, "pki", "init-pair", "--out", foreign, "--member", "a=127.0.0.1", "--member", "b=127.0.0.1"); code != 0 {
		t.Fatalf("init-pair (foreign): exit %d\n%s", code, out)
	}
	otherCA := loadKeyPair(t, filepath.Join(foreign, "a", "a.crt"), filepath.Join(foreign, "a", "a.key"))
	mallory := signMember(t, sp.pki, "mallory")
	arbCert := loadKeyPair(t, filepath.Join(sp.pki, "arb", "arb.crt"), filepath.Join(sp.pki, "arb", "arb.key"))

	for _, c := range []struct {
		name string
		cert *tls.Certificate
		want string // in the journaled reason
	}{
		{"another CA (claims to be a)", &otherCA, "not trusted by the pair"},
		{"pair CA, unknown member id", &mallory, "names no member"},
		{"no certificate", nil, "certificate"},
	} {
		for _, port := range []struct{ name, addr string }{{"raft", act.Raft}, {"peer", act.Peer}, {"raft of the standby", sby.Raft}} {
			if err := tlsRefused(port.addr, c.cert); err != nil {
				t.Errorf("%s on the %s port: %v", c.name, port.name, err)
			}
		}
		harness.WaitState(t, 15*time.Second, "the refusal ("+c.name+") in the active's events", func() (bool, string) {
			return hasRefusal(p, act, c.want)
		})
	}
	// A member certificate (the arbiter's) used to speak for node a on the
	// standby's peer link: the TLS handshake passes, the request does not.
	st, body := postSync(t, sby.Peer, arbCert, sp.caPool, act.ID)
	if st != http.StatusForbidden {
		t.Errorf("peer sync as %s with the arbiter's certificate: %d %s, want 403", act.ID, st, body)
	}
	// ... nor as itself: only the other node streams state.
	if st, body := postSync(t, sby.Peer, arbCert, sp.caPool, "arb"); st != http.StatusForbidden {
		t.Errorf("peer sync as arb with the arbiter's certificate: %d %s, want 403", st, body)
	}
	harness.WaitState(t, 15*time.Second, "the impersonation refusal in the standby's events", func() (bool, string) {
		return hasRefusal(p, sby, "with the certificate of member \"arb\"")
	})
	// Plain TCP on the raft port (a member without TLS): refused.
	if c, err := net.DialTimeout("tcp", act.Raft, 2*time.Second); err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
		if n, err := c.Read(make([]byte, 64)); err == nil {
			t.Errorf("plain TCP on the raft port: read %d bytes, want the connection closed", n)
		}
		c.Close()
	}
	// A scan: 30 more bad handshakes from the same host within the rate
	// limit's window add no journal entry (they are counted into the next
	// one; refusals_test.go checks the count).
	for range 30 {
		_ = tlsRefused(act.Peer, &otherCA)
	}
	if n := countRefusals(t, p, act, "peer link: certificate not trusted"); n != 1 {
		t.Errorf("after a scan of 30 handshakes: %d journal entries for it, want 1 (rate-limited)", n)
	}

	// ---- unauthenticated and wrong-token commands ----
	plain := sp.plainHTTPS()
	defer plain.CloseIdleConnections()
	wrong := strings.Repeat("f00d", 10)
	for _, c := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer " + wrong, http.StatusForbidden},
	} {
		for _, m := range []*member{act, sby} {
			req, _ := http.NewRequest(http.MethodPost, "https://"+m.Admin+"/api/v1/switchover", strings.NewReader(`{}`))
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			res, err := plain.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != c.want || !strings.Contains(res.Header.Get("Content-Type"), "json") || !strings.Contains(string(b), `"error"`) {
				t.Errorf("switchover on %s with %s: %d %s %s, want %d with a JSON error", m.ID, c.name, res.StatusCode, res.Header.Get("Content-Type"), b, c.want)
			}
		}
	}
	// The CLI: https with the pair CA but no token → exit 5 (unauthorised).
	out, code := cli(t, "switchover", "--node", "https://"+sby.Admin, "--cacert", filepath.Join(sp.pki, "ca", "ca.crt"))
	if code != 5 {
		t.Errorf("uamirror switchover without a token: exit %d, want 5\n%s", code, out)
	}
	// Nothing switched.
	for _, m := range []*member{act, sby} {
		st, err := p.status(m)
		if err != nil || st.Active != act.ID || st.Epoch != epoch {
			t.Fatalf("after the refused switchovers %s says active=%q epoch=%d (%v), want %s/%d", m.ID, st.Active, st.Epoch, err, act.ID, epoch)
		}
	}
	// Journaled (uamirror events shows it), and logged, without the token.
	out, code = cli(t, "events", "--node", "https://"+act.Admin, "--cacert", filepath.Join(sp.pki, "ca", "ca.crt"))
	if code != 0 || !strings.Contains(out, "refused") || !strings.Contains(out, "admin API: POST /api/v1/switchover") || !strings.Contains(out, "not trusted by the pair") {
		t.Errorf("uamirror events on %s: exit %d, want the refused connections and the refused switchover:\n%s", act.ID, code, out)
	}
	for _, m := range []*member{act, sby} {
		log := m.Proc.Stderr.String()
		if !strings.Contains(log, "admin request refused") || !strings.Contains(log, "/api/v1/switchover") {
			t.Errorf("%s did not log the refused switchover", m.ID)
		}
		for _, secret := range []string{wrong, sp.token} {
			if strings.Contains(log, secret) {
				t.Errorf("%s logged a token", m.ID)
			}
		}
	}

	// ---- a switchover with the token, through the standby ----
	out, code = cli(t, "status", "--node", "https://"+sby.Admin, "--cacert", filepath.Join(sp.pki, "ca", "ca.crt"))
	if code != 0 {
		t.Errorf("uamirror status over https (loopback, no token): exit %d\n%s", code, out)
	}
	t0 := time.Now()
	out, code = cli(t, "switchover", "--node", "https://"+sby.Admin, "--cacert", filepath.Join(sp.pki, "ca", "ca.crt"), "--token-file", sp.tokenFile)
	if code != 0 {
		t.Fatalf("uamirror switchover with the token (via the standby): exit %d\n%s", code, out)
	}
	p.waitActive(sby, epoch+1, 15*time.Second)
	p.waitStandby(act, epoch+1, 20*time.Second)
	ev := p.waitEvent(epoch+1, false, 10*time.Second)
	if ev.Reason != "manual" || ev.To != sby.ID {
		t.Errorf("switchover event %+v, want manual to %s", ev, sby.ID)
	}
	p.setStatic(t)
	p.waitMirrored(p.static(), 15*time.Second)
	t.Logf("switchover with the token done in %s; values flow through %s", time.Since(t0).Round(time.Millisecond), sby.ID)
}

// TestAdminRefusesOpenNonLoopback: without authentication the admin API
// does not bind a non-loopback address (unless --admin-insecure).
func TestAdminRefusesOpenNonLoopback(t *testing.T) {
	raft, peer := freeAddr(t), freeAddr(t)
	port := strings.TrimPrefix(freeAddr(t), "127.0.0.1:")
	out, code := cli(t, "arbiter", "--id", "arb", "--data", t.TempDir(), "--admin", "0.0.0.0:"+port,
		"--member", "id=a,role=node,raft="+freeAddr(t)+",peer="+peer,
		"--member", "id=b,role=node,raft="+freeAddr(t)+",peer="+freeAddr(t),
		"--member", "id=arb,role=arbiter,raft="+raft)
	if code != 2 || !strings.Contains(out, "--admin-insecure") {
		t.Errorf("arbiter with an open admin API on 0.0.0.0: exit %d, want 2 naming --admin-insecure\n%s", code, out)
	}
}

// tlsRefused dials addr with cert (nil: none) and returns nil if the
// server refuses the connection (handshake error, or closed before any
// data), an error if it accepted it.
func tlsRefused(addr string, cert *tls.Certificate) error {
	cfg := &tls.Config{InsecureSkipVerify: true} // the intruder does not care who the server is
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := &net.Dialer{Timeout: 3 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil
	}
	defer c.Close()
	// TLS 1.3: the server judges the client certificate after the client
	// finished; its verdict arrives as an alert on the first read.
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte("POST /peer/v1/sync HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"))
	if _, err := c.Read(make([]byte, 64)); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return fmt.Errorf("connection still open after 5 s: %w", err)
		}
		return nil
	}
	return fmt.Errorf("the server answered")
}

// hasRefusal reports whether m's events hold a refusal whose detail
// contains want (and names a remote address).
func hasRefusal(p *pair, m *member, want string) (bool, string) {
	var res struct {
		Events []redundancy.Event `json:"events"`
	}
	if err := p.get(m, "/api/v1/events", &res); err != nil {
		return false, err.Error()
	}
	var seen []string
	for _, e := range res.Events {
		if e.Kind != redundancy.RefusalKind {
			continue
		}
		seen = append(seen, e.From+" "+e.Detail)
		if strings.Contains(e.Detail, want) && strings.HasPrefix(e.From, "127.0.0.1:") && e.To == m.ID {
			return true, ""
		}
	}
	return false, fmt.Sprintf("refusals on %s: %q", m.ID, seen)
}

// countRefusals counts m's refusal events whose detail contains want.
func countRefusals(t *testing.T, p *pair, m *member, want string) int {
	t.Helper()
	var res struct {
		Events []redundancy.Event `json:"events"`
	}
	if err := p.get(m, "/api/v1/events", &res); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range res.Events {
		if e.Kind == redundancy.RefusalKind && strings.Contains(e.Detail, want) {
			n++
		}
	}
	return n
}

// postSync sends a peer sync as member from with cert.
func postSync(t *testing.T, addr string, cert tls.Certificate, roots *x509.CertPool, from string) (int, string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	res, err := c.Post("https://"+addr+"/peer/v1/sync", "application/json", strings.NewReader(fmt.Sprintf(`{"from":%q,"epoch":999}`, from)))
	if err != nil {
		t.Fatalf("peer sync: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func loadKeyPair(t *testing.T, cert, key string) tls.Certificate {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// signMember makes a certificate for member id signed by the pair CA in
// dir (as a stolen CA key, or a CA shared with other systems, would).
func signMember(t *testing.T, dir, id string) tls.Certificate {
	t.Helper()
	ca := loadKeyPair(t, filepath.Join(dir, "ca", "ca.crt"), filepath.Join(dir, "ca", "ca.key"))
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: id},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		URIs:        []*url.URL{{Scheme: "urn", Opaque: "uamirror:member:" + id}}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	kp, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// TestSecuredPairKillActive: on a secured pair, kill -9 of the active
// hands over as on a plain one (raft and the peer link reconnect over
// TLS), and the killed node, restarted, rejoins as a READY standby.
func TestSecuredPairKillActive(t *testing.T) {
	p := startSecuredPair(t, pairOpts{rate: streamR}).pair
	act, sby, epoch := p.waitStable(settle)
	p.waitLive(time.Now(), settle)
	killAt := p.kill(act)
	p.waitActive(sby, epoch+1, settle)
	ev := p.waitEvent(epoch+1, true, settle)
	if ev.From != act.ID || ev.To != sby.ID {
		t.Errorf("event of epoch %d = %+v, want %s → %s", epoch+1, ev, act.ID, sby.ID)
	}
	p.waitLive(killAt, settle)
	p.restart(act)
	p.waitStandby(act, epoch+1, rejoin)
	p.setStatic(t)
	p.waitMirrored(p.static(), settle)
	p.checkInvariants()
	t.Logf("kill -9 of %s on a secured pair: %s took over, node's gap %.1f ms; %s rejoined", act.ID, sby.ID, *ev.GapMS, act.ID)
}
