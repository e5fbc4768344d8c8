// Package pki owns uamirror's OPC UA certificate store: the application
// instance certificate and its key, the trust lists for server
// certificates, and the validation of the certificate a server presents
// (gopcua validates none: see bridge/security.go).
//
// The store is a folder laid out as OPC UA applications usually do
// (Part 12, F.1):
//
//	own/certs/       this application's certificate (uamirror.der)
//	own/private/     its RSA key (uamirror.pem, mode 0600)
//	trusted/certs/   trusted server certificates and trusted CAs
//	trusted/crl/     (reserved: CRLs are not checked yet)
//	rejected/certs/  certificates that were refused, to be trusted by hand
//	issuers/certs/   intermediate CAs used to build chains, not trusted alone
//	issuers/crl/     (reserved)
//
// The pair links' TLS is not this package's concern (files pair*.go, if
// any, belong to it and are kept apart). The package never reads flags or
// the environment, and it never trusts
// a certificate by itself: only a file in trusted/certs, a chain to a CA
// there, or a thumbprint the caller pins does.
//
// A Store is safe for concurrent use: several server supervisors verify
// certificates at once while `uamirror pki` may change the folders from
// another process. Every method takes the store's mutex; the folders are
// re-read on each verification, so a certificate trusted by the CLI is
// honoured at the next connection attempt without a restart.
package pki

import (
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // OPC UA thumbprints are SHA-1 (Part 6, 6.2.3)
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Folders of a store, relative to its root.
const (
	DirOwnCerts   = "own/certs"
	DirOwnPrivate = "own/private"
	DirTrusted    = "trusted/certs"
	DirTrustedCRL = "trusted/crl"
	DirRejected   = "rejected/certs"
	DirIssuers    = "issuers/certs"
	DirIssuersCRL = "issuers/crl"
)

// Names of the own certificate and key files.
const (
	OwnCertFile = "uamirror.der"
	OwnKeyFile  = "uamirror.pem"
)

// ExpiryWarning is how long before its NotAfter a certificate is reported
// as expiring soon.
const ExpiryWarning = 30 * 24 * time.Hour

// Sentinel errors of verification and of the store's commands; match them
// with errors.Is.
var (
	// ErrUntrusted: the certificate is neither in trusted/, nor chains to
	// a CA there, nor pinned.
	ErrUntrusted = errors.New("certificate not trusted")
	// ErrExpired: now is after the certificate's NotAfter.
	ErrExpired = errors.New("certificate expired")
	// ErrNotYetValid: now is before the certificate's NotBefore.
	ErrNotYetValid = errors.New("certificate not yet valid")
	// ErrURIMismatch: the certificate's URI SAN differs from the
	// ApplicationURI the server announces.
	ErrURIMismatch = errors.New("certificate URI does not match the application URI")
	// ErrInvalid: the bytes are not an X.509 certificate.
	ErrInvalid = errors.New("invalid certificate")
	// ErrNotFound: no certificate in the store has this thumbprint.
	ErrNotFound = errors.New("no such certificate")
	// ErrNoOwnCertificate: the store has no own certificate yet.
	ErrNoOwnCertificate = errors.New("no own certificate")
)

// Store is a PKI folder. See the package doc for its layout and its
// concurrency contract.
type Store struct {
	dir string
	now func() time.Time

	mu  sync.Mutex
	own *Own // loaded by LoadOwn/EnsureOwn/CreateOwn
}

// Open opens the store in dir, creating the folders (mode 0700) that do
// not exist yet.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("pki: no folder given")
	}
	for _, d := range []string{DirOwnCerts, DirOwnPrivate, DirTrusted, DirTrustedCRL, DirRejected, DirIssuers, DirIssuersCRL} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
	}
	return &Store{dir: dir, now: time.Now}, nil
}

// Dir returns the store's root folder.
func (s *Store) Dir() string { return s.dir }

// Thumbprint returns the SHA-1 thumbprint of a DER certificate in
// lower-case hex, as OPC UA tools show it (Part 6, 6.2.3).
func Thumbprint(der []byte) string {
	h := sha1.Sum(der) //nolint:gosec // the OPC UA thumbprint is SHA-1 by definition
	return hex.EncodeToString(h[:])
}

// SHA256 returns the SHA-256 fingerprint of a DER certificate in
// lower-case hex.
func SHA256(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

// normalize lower-cases a thumbprint and drops ':' and ' ' separators.
func normalize(t string) string {
	return strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(strings.TrimSpace(t)))
}

// matches reports whether thumbprint t (SHA-1 or SHA-256, any case) names
// der.
func matches(t string, der []byte) bool {
	t = normalize(t)
	return t != "" && (t == Thumbprint(der) || t == SHA256(der))
}

// CertError is a refused server certificate: which one and why. It wraps
// the reason's sentinel (ErrUntrusted, ErrExpired, …).
type CertError struct {
	Thumbprint string // SHA-1, hex
	SHA256     string
	Subject    string
	// Rejected is the file the certificate was copied to (for
	// ErrUntrusted), "" otherwise.
	Rejected string
	// Detail says more about the reason (dates, URIs).
	Detail string
	Err    error
}

func (e *CertError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s (thumbprint %s, SHA-256 %s)", e.Err, e.Subject, e.Thumbprint, e.SHA256)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.Rejected != "" {
		fmt.Fprintf(&b, "; copied to %s; to trust it run: uamirror pki trust %s", e.Rejected, e.Thumbprint)
	}
	return b.String()
}

func (e *CertError) Unwrap() error { return e.Err }

// Verify decides whether a server certificate (DER) may be used: it must
// parse, be within its validity period, carry appURI as its URI SAN (when
// appURI is not empty: the ApplicationURI of the endpoint's
// ServerDescription), and be trusted: in trusted/certs, chaining to a CA
// in trusted/certs (with intermediates from issuers/certs), or named by
// one of pins (SHA-1 or SHA-256 thumbprints). An untrusted certificate is
// copied to rejected/certs. The error is a *CertError wrapping
// ErrUntrusted, ErrExpired, ErrNotYetValid or ErrURIMismatch, or wraps
// ErrInvalid. CRLs are not checked.
func (s *Store) Verify(der []byte, appURI string, pins []string) error {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ce := &CertError{Thumbprint: Thumbprint(der), SHA256: SHA256(der), Subject: subjectOf(cert)}
	now := s.now()
	switch {
	case now.After(cert.NotAfter):
		ce.Err, ce.Detail = ErrExpired, "not valid after "+cert.NotAfter.UTC().Format(time.RFC3339)
		return ce
	case now.Before(cert.NotBefore):
		ce.Err, ce.Detail = ErrNotYetValid, "not valid before "+cert.NotBefore.UTC().Format(time.RFC3339)
		return ce
	}
	if appURI != "" {
		uris := certURIs(cert)
		found := false
		for _, u := range uris {
			found = found || u == appURI
		}
		if !found {
			ce.Err = ErrURIMismatch
			ce.Detail = fmt.Sprintf("server announces ApplicationURI %q, certificate has URI %q", appURI, strings.Join(uris, ","))
			return ce
		}
	}
	for _, p := range pins {
		if matches(p, der) {
			return nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ok, err := s.trustedLocked(cert, der, now)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	path := filepath.Join(s.dir, DirRejected, fileName(cert, der))
	if err := writeFileAtomic(path, der, 0o600); err != nil {
		return fmt.Errorf("pki: saving rejected certificate: %w", err)
	}
	ce.Err, ce.Rejected = ErrUntrusted, path
	return ce
}

// trustedLocked reports whether cert is in trusted/ or chains to a CA
// there.
func (s *Store) trustedLocked(cert *x509.Certificate, der []byte, now time.Time) (bool, error) {
	trusted, err := readCerts(filepath.Join(s.dir, DirTrusted))
	if err != nil {
		return false, err
	}
	roots := x509.NewCertPool()
	nRoots := 0
	for _, t := range trusted {
		if string(t.der) == string(der) {
			return true, nil
		}
		if t.cert.IsCA {
			roots.AddCert(t.cert)
			nRoots++
		}
	}
	if nRoots == 0 {
		return false, nil
	}
	issuers, err := readCerts(filepath.Join(s.dir, DirIssuers))
	if err != nil {
		return false, err
	}
	inter := x509.NewCertPool()
	for _, i := range issuers {
		inter.AddCert(i.cert)
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil, nil
}

// storedCert is one certificate file of a folder.
type storedCert struct {
	path string
	der  []byte
	cert *x509.Certificate
}

// readCerts reads every certificate (.der, .cer, .crt, .pem) in dir;
// files that do not parse are skipped.
func readCerts(dir string) ([]storedCert, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	var out []storedCert
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".der", ".cer", ".crt", ".pem":
		default:
			continue
		}
		p := filepath.Join(dir, e.Name())
		der, cert, err := ReadCertificate(p)
		if err != nil {
			continue
		}
		out = append(out, storedCert{path: p, der: der, cert: cert})
	}
	return out, nil
}

// ReadCertificate reads a certificate file, DER or PEM.
func ReadCertificate(path string) ([]byte, *x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("%w: %s: PEM block %q, want CERTIFICATE", ErrInvalid, path, blk.Type)
		}
		b = blk.Bytes
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrInvalid, path, err)
	}
	return b, c, nil
}

// fileName is the name a certificate is stored under:
// "<common name> [<thumbprint>].der", as node-opcua and others do.
func fileName(c *x509.Certificate, der []byte) string {
	cn := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, c.Subject.CommonName)
	if cn == "" {
		cn = "cert"
	}
	return fmt.Sprintf("%s [%s].der", cn, Thumbprint(der))
}

func subjectOf(c *x509.Certificate) string {
	if s := c.Subject.String(); s != "" {
		return s
	}
	return "(no subject)"
}

func certURIs(c *x509.Certificate) []string {
	out := make([]string, len(c.URIs))
	for i, u := range c.URIs {
		out[i] = u.String()
	}
	return out
}

// writeFileAtomic writes data to path through a temporary file in the
// same folder.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// Kinds of store entries.
const (
	KindOwn      = "own"
	KindTrusted  = "trusted"
	KindRejected = "rejected"
	KindIssuer   = "issuer"
)

// Entry describes one certificate of the store.
type Entry struct {
	Kind       string
	Path       string
	Thumbprint string
	SHA256     string
	Subject    string
	URI        string
	IsCA       bool
	NotBefore  time.Time
	NotAfter   time.Time
}

// Mark is "expired", "expires soon" (within ExpiryWarning), "not yet
// valid" or "".
func (e Entry) Mark(now time.Time) string {
	return ExpiryMark(e.NotBefore, e.NotAfter, now)
}

// ExpiryMark classifies a validity period at now: "expired", "expires
// soon" (within ExpiryWarning), "not yet valid" or "".
func ExpiryMark(notBefore, notAfter, now time.Time) string {
	switch {
	case now.After(notAfter):
		return "expired"
	case now.Before(notBefore):
		return "not yet valid"
	case notAfter.Sub(now) < ExpiryWarning:
		return "expires soon"
	}
	return ""
}

func entryOf(kind string, sc storedCert) Entry {
	return Entry{Kind: kind, Path: sc.path, Thumbprint: Thumbprint(sc.der), SHA256: SHA256(sc.der),
		Subject: subjectOf(sc.cert), URI: strings.Join(certURIs(sc.cert), ","), IsCA: sc.cert.IsCA,
		NotBefore: sc.cert.NotBefore, NotAfter: sc.cert.NotAfter}
}

// List returns every certificate of the store: own, trusted, rejected,
// issuers, in that order, each folder sorted by subject.
func (s *Store) List() ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Entry
	for _, k := range []struct{ kind, dir string }{{KindOwn, DirOwnCerts}, {KindTrusted, DirTrusted},
		{KindRejected, DirRejected}, {KindIssuer, DirIssuers}} {
		cs, err := readCerts(filepath.Join(s.dir, k.dir))
		if err != nil {
			return nil, err
		}
		sort.Slice(cs, func(i, j int) bool { return subjectOf(cs[i].cert) < subjectOf(cs[j].cert) })
		for _, c := range cs {
			out = append(out, entryOf(k.kind, c))
		}
	}
	return out, nil
}

// Trust trusts a certificate: arg is a certificate file (DER or PEM,
// anywhere) or the SHA-1 or SHA-256 thumbprint of a certificate in
// rejected/certs, which is moved. A CA certificate given as a file goes to
// trusted/certs as well (it then trusts what it signs).
func (s *Store) Trust(arg string) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Stat(arg); err == nil {
		der, cert, err := ReadCertificate(arg)
		if err != nil {
			return Entry{}, err
		}
		dst := filepath.Join(s.dir, DirTrusted, fileName(cert, der))
		if err := writeFileAtomic(dst, der, 0o600); err != nil {
			return Entry{}, fmt.Errorf("pki: %w", err)
		}
		s.removeFromLocked(DirRejected, der)
		return entryOf(KindTrusted, storedCert{path: dst, der: der, cert: cert}), nil
	}
	return s.moveLocked(arg, DirRejected, DirTrusted, KindTrusted)
}

// Reject moves a trusted certificate (by SHA-1 or SHA-256 thumbprint) to
// rejected/certs.
func (s *Store) Reject(thumbprint string) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.moveLocked(thumbprint, DirTrusted, DirRejected, KindRejected)
}

// moveLocked moves the certificate with thumbprint t from folder from to
// folder to.
func (s *Store) moveLocked(t, from, to, kind string) (Entry, error) {
	cs, err := readCerts(filepath.Join(s.dir, from))
	if err != nil {
		return Entry{}, err
	}
	for _, c := range cs {
		if !matches(t, c.der) {
			continue
		}
		dst := filepath.Join(s.dir, to, fileName(c.cert, c.der))
		if err := writeFileAtomic(dst, c.der, 0o600); err != nil {
			return Entry{}, fmt.Errorf("pki: %w", err)
		}
		s.removeFromLocked(from, c.der)
		return entryOf(kind, storedCert{path: dst, der: c.der, cert: c.cert}), nil
	}
	return Entry{}, fmt.Errorf("%w: thumbprint %s in %s", ErrNotFound, t, filepath.Join(s.dir, from))
}

// removeFromLocked deletes every copy of der in folder dir.
func (s *Store) removeFromLocked(dir string, der []byte) {
	cs, _ := readCerts(filepath.Join(s.dir, dir))
	for _, c := range cs {
		if string(c.der) == string(der) {
			_ = os.Remove(c.path)
		}
	}
}

// Own is this application's instance certificate and key.
type Own struct {
	DER    []byte
	Cert   *x509.Certificate
	Key    *rsa.PrivateKey
	AppURI string // the certificate's URI SAN
}
