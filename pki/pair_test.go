package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func initPairT(t *testing.T) (string, PairFiles) {
	t.Helper()
	dir := t.TempDir()
	f, err := InitPair(dir, []PairMemberSpec{{ID: "a", Hosts: []string{"127.0.0.1", "node-a"}}, {ID: "b", Hosts: []string{"10.0.0.2"}},
		{ID: "arb", Hosts: []string{"arb.plant"}}}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return dir, f
}

func chain(t *testing.T, f PairMemberFiles) [][]byte {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	return kp.Certificate
}

func roots(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatal("no CA")
	}
	return p
}

// TestInitPairFiles: the files exist where PairFiles says, keys are 0600,
// certificates carry the member identity and hosts, the CA key is not in
// any member directory, and nothing is overwritten.
func TestInitPairFiles(t *testing.T) {
	dir, f := initPairT(t)
	for _, k := range []string{f.CAKey, f.Members["a"].Key, f.Members["b"].Key, f.Members["arb"].Key} {
		st, err := os.Stat(k)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", k, st.Mode().Perm())
		}
	}
	for id, m := range f.Members {
		ents, _ := os.ReadDir(m.Dir)
		if len(ents) != 3 {
			t.Errorf("member %s dir holds %d files, want ca.crt, cert, key", id, len(ents))
		}
		if _, err := os.Stat(filepath.Join(m.Dir, "ca.key")); err == nil {
			t.Errorf("the CA key was copied into %s", m.Dir)
		}
	}
	der := chain(t, f.Members["a"])[0]
	c, _ := x509.ParseCertificate(der)
	if PairMemberID(c) != "a" || len(c.IPAddresses) != 1 || c.DNSNames[0] != "node-a" {
		t.Errorf("cert of a: id %q, IPs %v, DNS %v", PairMemberID(c), c.IPAddresses, c.DNSNames)
	}
	if err := c.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("cert of a for 127.0.0.1: %v", err)
	}
	if _, err := InitPair(dir, []PairMemberSpec{{ID: "a", Hosts: []string{"x"}}}, time.Hour); !errors.Is(err, ErrPairExists) {
		t.Errorf("second init-pair into the same dir: %v, want ErrPairExists", err)
	}
}

// TestPairVerifier: CA and pins, identities, wrong members.
func TestPairVerifier(t *testing.T) {
	_, f := initPairT(t)
	_, other := initPairT(t) // another pair: same ids, another CA
	members := []string{"a", "b", "arb"}
	byCA := &PairVerifier{Roots: roots(t, f.CACert), Members: members}
	pinA := sha256.Sum256(chain(t, other.Members["a"])[0])
	byPin := &PairVerifier{Pins: [][sha256.Size]byte{pinA}, Members: members}
	onlyAB := &PairVerifier{Roots: roots(t, f.CACert), Members: []string{"a", "b"}}
	expired := &PairVerifier{Roots: roots(t, f.CACert), Members: members, Now: func() time.Time { return time.Now().Add(48 * time.Hour) }}
	for _, c := range []struct {
		name   string
		v      *PairVerifier
		raw    [][]byte
		wantID string
		err    error
	}{
		{"member of the pair CA", byCA, chain(t, f.Members["b"]), "b", nil},
		{"arbiter of the pair CA", byCA, chain(t, f.Members["arb"]), "arb", nil},
		{"another CA", byCA, chain(t, other.Members["a"]), "", ErrPairUntrusted},
		{"no certificate", byCA, nil, "", ErrPairNoCertificate},
		{"garbage", byCA, [][]byte{[]byte("nope")}, "", ErrPairUntrusted},
		{"pinned", byPin, chain(t, other.Members["a"]), "a", nil},
		{"not pinned", byPin, chain(t, other.Members["b"]), "", ErrPairUntrusted},
		{"not pinned, no CA", byPin, chain(t, f.Members["a"]), "", ErrPairUntrusted},
		{"trusted but not a member", onlyAB, chain(t, f.Members["arb"]), "", ErrPairUnknownMember},
		{"expired", expired, chain(t, f.Members["a"]), "", ErrPairUntrusted},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, err := c.v.Verify(c.raw)
			if !errors.Is(err, c.err) || id != c.wantID {
				t.Errorf("Verify: %q, %v; want %q, %v", id, err, c.wantID, c.err)
			}
		})
	}
	if err := byCA.VerifyMember(chain(t, f.Members["a"]), "b"); !errors.Is(err, ErrPairWrongMember) {
		t.Errorf("a's certificate as b: %v, want ErrPairWrongMember", err)
	}
	if err := byCA.VerifyMember(chain(t, f.Members["a"]), "a"); err != nil {
		t.Errorf("a's certificate as a: %v", err)
	}
}

func TestParsePairPin(t *testing.T) {
	hex64 := "3040701884eaf4ca5116c7d37d018114e3a3e09dc2cc63d974071366f0df5c09"
	for _, c := range []struct {
		in string
		ok bool
	}{
		{hex64, true},
		{"sha256:" + hex64, true},
		{"30:40:70:18:84:EA:F4:CA:51:16:C7:D3:7D:01:81:14:E3:A3:E0:9D:C2:CC:63:D9:74:07:13:66:F0:DF:5C:09", true},
		{hex64[:62], false},
		{"zz" + hex64[2:], false},
		{"", false},
	} {
		p, err := ParsePairPin(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParsePairPin(%q): %v", c.in, err)
		}
		if c.ok && p[0] != 0x30 {
			t.Errorf("ParsePairPin(%q) = %x", c.in, p)
		}
	}
}

// TestPairVerifierCNIsNoIdentity: a certificate signed by the pair CA
// whose subject CN is a member id but that carries no member URI SAN (a
// CA shared with other systems issues those) is no member; two member
// URIs name none either.
func TestPairVerifierCNIsNoIdentity(t *testing.T) {
	dir, f := initPairT(t)
	v := &PairVerifier{Roots: roots(t, f.CACert), Members: []string{"a", "b", "arb"}}
	ca, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca", "ca.crt"), filepath.Join(dir, "ca", "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(ca.Certificate[0])
	issue := func(cn string, uris ...string) [][]byte {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
		for _, u := range uris {
			pu, _ := url.Parse(u)
			tmpl.URIs = append(tmpl.URIs, pu)
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		return [][]byte{der}
	}
	if id, err := v.Verify(issue("a")); !errors.Is(err, ErrPairUnknownMember) || id != "" {
		t.Errorf("CN a without a URI SAN: %q, %v; want ErrPairUnknownMember", id, err)
	}
	if id, err := v.Verify(issue("a", PairMemberURIPrefix+"a", PairMemberURIPrefix+"b")); !errors.Is(err, ErrPairUnknownMember) || id != "" {
		t.Errorf("two member URIs: %q, %v; want ErrPairUnknownMember", id, err)
	}
	if id, err := v.Verify(issue("not-a-member", PairMemberURIPrefix+"b")); err != nil || id != "b" {
		t.Errorf("URI SAN b, CN other: %q, %v; want b", id, err)
	}
}
