package pki

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func gen(t *testing.T, tmpl CertTemplate) []byte {
	t.Helper()
	der, _, err := GenerateCertificate(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestOwnCertificate(t *testing.T) {
	s := openStore(t)
	if _, _, _, err := s.ApplicationCertificate(); !errors.Is(err, ErrNoOwnCertificate) {
		t.Fatalf("before first start: %v", err)
	}
	o, created, err := s.EnsureOwn("urn:test:uamirror", []string{"127.0.0.1", "host.example"})
	if err != nil || !created {
		t.Fatalf("EnsureOwn: created %v, %v", created, err)
	}
	c := o.Cert
	if len(c.URIs) != 1 || c.URIs[0].String() != "urn:test:uamirror" || o.AppURI != "urn:test:uamirror" {
		t.Errorf("URI SAN %v", c.URIs)
	}
	wantKU := x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment |
		x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign
	if c.KeyUsage != wantKU {
		t.Errorf("key usage %b, want %b", c.KeyUsage, wantKU)
	}
	if len(c.ExtKeyUsage) != 2 || c.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || c.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
		t.Errorf("ext key usage %v", c.ExtKeyUsage)
	}
	if c.SignatureAlgorithm != x509.SHA256WithRSA || o.Key.N.BitLen() != 2048 {
		t.Errorf("signature %v, key %d bits", c.SignatureAlgorithm, o.Key.N.BitLen())
	}
	if len(c.IPAddresses) != 1 || len(c.DNSNames) != 1 {
		t.Errorf("SANs %v %v", c.IPAddresses, c.DNSNames)
	}
	fi, err := os.Stat(filepath.Join(s.Dir(), DirOwnPrivate, OwnKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi.Mode(), err)
	}
	// Second start: the same certificate.
	s2, _ := Open(s.Dir())
	o2, created, err := s2.EnsureOwn("urn:other", nil)
	if err != nil || created || string(o2.DER) != string(o.DER) {
		t.Fatalf("reload: created %v, same %v, %v", created, string(o2.DER) == string(o.DER), err)
	}
	der, key, uri, err := s2.ApplicationCertificate()
	if err != nil || string(der) != string(o.DER) || !key.Equal(o.Key) || uri != "urn:test:uamirror" {
		t.Errorf("ApplicationCertificate: %v", err)
	}
}

func TestVerify(t *testing.T) {
	now := time.Now()
	caDER, caKey, err := GenerateCertificate(CertTemplate{CommonName: "test CA", IsCA: true})
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	interDER, interKey, err := GenerateCertificate(CertTemplate{CommonName: "test intermediate", IsCA: true, Parent: ca, ParentKey: caKey})
	if err != nil {
		t.Fatal(err)
	}
	inter, _ := x509.ParseCertificate(interDER)

	good := gen(t, CertTemplate{AppURI: "urn:srv"})
	expired := gen(t, CertTemplate{AppURI: "urn:srv", NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
	future := gen(t, CertTemplate{AppURI: "urn:srv", NotBefore: now.Add(time.Hour), NotAfter: now.Add(48 * time.Hour)})
	byCA := gen(t, CertTemplate{AppURI: "urn:srv", Parent: ca, ParentKey: caKey})
	byInter := gen(t, CertTemplate{AppURI: "urn:srv", Parent: inter, ParentKey: interKey})

	tests := []struct {
		name      string
		der       []byte
		uri       string
		pins      []string
		trusted   [][]byte // files in trusted/certs
		issuers   [][]byte
		want      error
		wantInMsg string
	}{
		{name: "unknown", der: good, uri: "urn:srv", want: ErrUntrusted, wantInMsg: "uamirror pki trust " + Thumbprint(good)},
		{name: "trusted", der: good, uri: "urn:srv", trusted: [][]byte{good}},
		{name: "pinned sha1", der: good, uri: "urn:srv", pins: []string{strings.ToUpper(Thumbprint(good))}},
		{name: "pinned sha256", der: good, uri: "urn:srv", pins: []string{SHA256(good)}},
		{name: "other pin", der: good, uri: "urn:srv", pins: []string{SHA256(byCA)}, want: ErrUntrusted},
		{name: "expired though trusted", der: expired, uri: "urn:srv", trusted: [][]byte{expired}, want: ErrExpired, wantInMsg: "not valid after"},
		{name: "not yet valid", der: future, uri: "urn:srv", pins: []string{Thumbprint(future)}, want: ErrNotYetValid},
		{name: "uri mismatch", der: good, uri: "urn:other", trusted: [][]byte{good}, want: ErrURIMismatch, wantInMsg: `"urn:other"`},
		{name: "chain to trusted CA", der: byCA, uri: "urn:srv", trusted: [][]byte{caDER}},
		{name: "CA only in issuers", der: byCA, uri: "urn:srv", issuers: [][]byte{caDER}, want: ErrUntrusted},
		{name: "via intermediate", der: byInter, uri: "urn:srv", trusted: [][]byte{caDER}, issuers: [][]byte{interDER}},
		{name: "intermediate missing", der: byInter, uri: "urn:srv", trusted: [][]byte{caDER}, want: ErrUntrusted},
		{name: "garbage", der: []byte("nope"), want: ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			for i, d := range tc.trusted {
				writeDER(t, filepath.Join(s.Dir(), DirTrusted, "t"+string(rune('a'+i))+".der"), d)
			}
			for i, d := range tc.issuers {
				writeDER(t, filepath.Join(s.Dir(), DirIssuers, "i"+string(rune('a'+i))+".der"), d)
			}
			err := s.Verify(tc.der, tc.uri, tc.pins)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.wantInMsg) {
				t.Errorf("error %q does not say %q", err, tc.wantInMsg)
			}
			rejected, _ := readCerts(filepath.Join(s.Dir(), DirRejected))
			if wantRej := errors.Is(err, ErrUntrusted); (len(rejected) == 1) != wantRej {
				t.Errorf("%d certificates in rejected/, want %v", len(rejected), wantRej)
			}
		})
	}
}

func writeDER(t *testing.T, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, der, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTrustReject(t *testing.T) {
	s := openStore(t)
	der := gen(t, CertTemplate{AppURI: "urn:srv", CommonName: "plc 1"})
	if err := s.Verify(der, "urn:srv", nil); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("first: %v", err)
	}
	if _, err := s.Trust("00" + Thumbprint(der)[2:]); !errors.Is(err, ErrNotFound) {
		t.Errorf("trust unknown thumbprint: %v", err)
	}
	e, err := s.Trust(strings.ToUpper(Thumbprint(der)))
	if err != nil || e.Kind != KindTrusted || e.URI != "urn:srv" {
		t.Fatalf("trust: %+v %v", e, err)
	}
	if err := s.Verify(der, "urn:srv", nil); err != nil {
		t.Fatalf("after trust: %v", err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Kind != KindTrusted {
		t.Fatalf("list %+v %v", list, err)
	}
	if _, err := s.Reject(SHA256(der)); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(der, "urn:srv", nil); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("after reject: %v", err)
	}
	// Trust by file.
	f := filepath.Join(t.TempDir(), "srv.der")
	writeDER(t, f, der)
	if _, err := s.Trust(f); err != nil {
		t.Fatal(err)
	}
	list, _ = s.List()
	if len(list) != 1 || list[0].Kind != KindTrusted {
		t.Errorf("after trust by file: %+v", list)
	}
}

func TestExpiryMark(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		nb, na time.Time
		want   string
	}{
		{now.Add(-time.Hour), now.Add(40 * 24 * time.Hour), ""},
		{now.Add(-time.Hour), now.Add(29 * 24 * time.Hour), "expires soon"},
		{now.Add(-time.Hour), now.Add(-time.Minute), "expired"},
		{now.Add(time.Hour), now.Add(40 * 24 * time.Hour), "not yet valid"},
	} {
		if got := ExpiryMark(tc.nb, tc.na, now); got != tc.want {
			t.Errorf("%v..%v: %q, want %q", tc.nb, tc.na, got, tc.want)
		}
	}
}

// TestConcurrentVerify runs verifications and trust changes at once (for
// the race detector).
func TestConcurrentVerify(t *testing.T) {
	s := openStore(t)
	der := gen(t, CertTemplate{AppURI: "urn:srv"})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				_ = s.Verify(der, "urn:srv", nil)
				_, _ = s.List()
			}
		}()
	}
	for j := 0; j < 10; j++ {
		_, _ = s.Trust(Thumbprint(der))
		_, _ = s.Reject(Thumbprint(der))
	}
	wg.Wait()
}
