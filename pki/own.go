package pki

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// CertTemplate describes a certificate to generate.
type CertTemplate struct {
	// AppURI becomes the URI SAN (Part 6, 6.2.2: it must equal the
	// application's ApplicationURI).
	AppURI string
	// CommonName of the subject (default "uamirror").
	CommonName string
	// Hosts become IP or DNS SANs.
	Hosts []string
	// NotBefore and NotAfter default to an hour ago and five years on.
	NotBefore, NotAfter time.Time
	// IsCA makes a CA certificate (for tests and small private CAs).
	IsCA bool
	// Parent and ParentKey sign the certificate; nil means self-signed.
	Parent    *x509.Certificate
	ParentKey *rsa.PrivateKey
}

// GenerateCertificate creates an RSA-2048, SHA-256 certificate for an
// OPC UA application with the key usages Part 6, 6.2.2 asks for:
// digitalSignature, nonRepudiation, keyEncipherment, dataEncipherment
// (and keyCertSign when self-signed or a CA), extended key usages
// serverAuth and clientAuth.
func GenerateCertificate(t CertTemplate) ([]byte, *rsa.PrivateKey, error) {
	var uris []*url.URL
	if t.AppURI != "" {
		u, err := url.Parse(t.AppURI)
		if err != nil || u.Scheme == "" {
			return nil, nil, fmt.Errorf("application URI %q: not an absolute URI", t.AppURI)
		}
		uris = append(uris, u)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("generating RSA key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generating serial number: %w", err)
	}
	now := time.Now()
	if t.NotBefore.IsZero() {
		t.NotBefore = now.Add(-time.Hour)
	}
	if t.NotAfter.IsZero() {
		t.NotAfter = now.AddDate(5, 0, 0)
	}
	if t.CommonName == "" {
		t.CommonName = "uamirror"
	}
	tmpl := &x509.Certificate{
		SerialNumber:       serial,
		Subject:            pkix.Name{CommonName: t.CommonName, Organization: []string{"uamirror"}},
		NotBefore:          t.NotBefore,
		NotAfter:           t.NotAfter,
		SignatureAlgorithm: x509.SHA256WithRSA,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment |
			x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  t.IsCA,
		URIs:                  uris,
	}
	if t.Parent == nil || t.IsCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if t.IsCA {
		tmpl.KeyUsage |= x509.KeyUsageCRLSign
	}
	for _, h := range t.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	parent, parentKey := tmpl, key
	if t.Parent != nil {
		parent, parentKey = t.Parent, t.ParentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("creating certificate: %w", err)
	}
	return der, key, nil
}

// CreateOwn creates (or renews: replaces) the own certificate and key for
// appURI and hosts, and makes it the one the store hands out.
func (s *Store) CreateOwn(appURI string, hosts []string) (*Own, error) {
	der, key, err := GenerateCertificate(CertTemplate{AppURI: appURI, Hosts: hosts})
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	return s.SetOwn(der, key)
}

// SetOwn stores der and key as the own certificate (key file mode 0600).
func (s *Store) SetOwn(der []byte, key *rsa.PrivateKey) (*Own, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	s.mu.Lock()
	defer s.mu.Unlock()
	// Key first: a crash between the two writes leaves an old certificate
	// with a new key, which LoadOwn refuses, rather than a silent mismatch.
	if err := writeFileAtomic(filepath.Join(s.dir, DirOwnPrivate, OwnKeyFile), keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("pki: writing key: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, DirOwnCerts, OwnCertFile), der, 0o644); err != nil {
		return nil, fmt.Errorf("pki: writing certificate: %w", err)
	}
	o := &Own{DER: der, Cert: cert, Key: key}
	if len(cert.URIs) > 0 {
		o.AppURI = cert.URIs[0].String()
	}
	s.own = o
	return o, nil
}

// LoadOwn reads the own certificate and key; ErrNoOwnCertificate when
// there is none.
func (s *Store) LoadOwn() (*Own, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	der, cert, err := ReadCertificate(filepath.Join(s.dir, DirOwnCerts, OwnCertFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoOwnCertificate
	}
	if err != nil {
		return nil, fmt.Errorf("pki: own certificate: %w", err)
	}
	kp := filepath.Join(s.dir, DirOwnPrivate, OwnKeyFile)
	b, err := os.ReadFile(kp)
	if err != nil {
		return nil, fmt.Errorf("pki: own key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("pki: own key %s: not PEM", kp)
	}
	var key *rsa.PrivateKey
	if key, err = x509.ParsePKCS1PrivateKey(blk.Bytes); err != nil {
		k8, err8 := x509.ParsePKCS8PrivateKey(blk.Bytes)
		rk, ok := k8.(*rsa.PrivateKey)
		if err8 != nil || !ok {
			return nil, fmt.Errorf("pki: own key %s: not an RSA key", kp)
		}
		key = rk
	}
	if pub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("pki: own certificate and key %s do not match", kp)
	}
	o := &Own{DER: der, Cert: cert, Key: key}
	if len(cert.URIs) > 0 {
		o.AppURI = cert.URIs[0].String()
	}
	s.own = o
	return o, nil
}

// EnsureOwn loads the own certificate, creating it for appURI and hosts
// when there is none (first start). created says whether it did.
func (s *Store) EnsureOwn(appURI string, hosts []string) (o *Own, created bool, err error) {
	o, err = s.LoadOwn()
	if errors.Is(err, ErrNoOwnCertificate) {
		o, err = s.CreateOwn(appURI, hosts)
		return o, err == nil, err
	}
	return o, false, err
}

// ApplicationCertificate returns the own certificate (DER), its key and
// its ApplicationURI for OPC UA secure channels; ErrNoOwnCertificate
// until LoadOwn, EnsureOwn or CreateOwn succeeded.
func (s *Store) ApplicationCertificate() ([]byte, *rsa.PrivateKey, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.own == nil {
		return nil, nil, "", ErrNoOwnCertificate
	}
	return s.own.DER, s.own.Key, s.own.AppURI, nil
}

// VerifyServer is Verify, named for the engine's interface.
func (s *Store) VerifyServer(der []byte, appURI string, pins []string) error {
	return s.Verify(der, appURI, pins)
}

// ReadKeyPair reads a certificate and its RSA key (each PEM or DER) and
// checks that they belong together. Errors name the files, never their
// contents.
func ReadKeyPair(certFile, keyFile string) ([]byte, *rsa.PrivateKey, error) {
	der, cert, err := ReadCertificate(certFile)
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	key, err := x509.ParsePKCS1PrivateKey(b)
	if err != nil {
		k8, err8 := x509.ParsePKCS8PrivateKey(b)
		rk, ok := k8.(*rsa.PrivateKey)
		if err8 != nil || !ok {
			return nil, nil, fmt.Errorf("key %s: not an RSA key (PKCS#1 or PKCS#8)", keyFile)
		}
		key = rk
	}
	if pub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, nil, fmt.Errorf("certificate %s and key %s do not match", certFile, keyFile)
	}
	return der, key, nil
}
