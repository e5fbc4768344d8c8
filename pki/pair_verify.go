package pki

// The pair's TLS identities: which certificates may act as a member of a
// redundant pair. (This file belongs to the pair's TLS; the OPC UA
// application certificates live in the rest of the package.)

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// PairMemberURIPrefix starts the URI SAN that names a pair member in its
// certificate: urn:uamirror:member:<id>.
const PairMemberURIPrefix = "urn:uamirror:member:"

// Errors of PairVerifier.Verify, matched with errors.Is. Their text is
// what the refusal journal shows: it never contains key material.
var (
	// ErrPairNoCertificate: the peer sent no certificate.
	ErrPairNoCertificate = errors.New("no client certificate")
	// ErrPairUntrusted: the certificate neither chains to the pair CA
	// nor matches a pinned fingerprint.
	ErrPairUntrusted = errors.New("certificate not trusted by the pair (not signed by the pair CA, not pinned)")
	// ErrPairUnknownMember: trusted, but it names no configured member.
	ErrPairUnknownMember = errors.New("certificate names no member of the pair")
	// ErrPairWrongMember: it names a member, but not the one expected.
	ErrPairWrongMember = errors.New("certificate names another member")
)

// PairVerifier decides whether a certificate chain authenticates a member
// of the pair: the leaf chains to Roots (the pair CA) or its SHA-256
// fingerprint is in Pins, AND the identity it carries (its URI SAN
// urn:uamirror:member:<id>, and nothing else) is one of Members. The
// subject CN is never an identity: with a CA shared with other systems,
// any certificate with CN "a" would otherwise be member a.
// Hostnames are not checked: the member identity is what is authorised,
// and a dialer checks it against the member it meant to reach.
//
// A PairVerifier is read-only after construction and safe for concurrent
// use.
type PairVerifier struct {
	// Roots is the pair CA (nil: pins only).
	Roots *x509.CertPool
	// Pins are SHA-256 fingerprints of trusted leaf certificates.
	Pins [][sha256.Size]byte
	// Members are the ids a certificate may name.
	Members []string
	// Now returns the time to verify at (nil: time.Now).
	Now func() time.Time
}

// Verify returns the member id the chain (leaf first, DER) authenticates.
func (v *PairVerifier) Verify(rawCerts [][]byte) (string, error) {
	if len(rawCerts) == 0 {
		return "", ErrPairNoCertificate
	}
	certs := make([]*x509.Certificate, 0, len(rawCerts))
	for _, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return "", fmt.Errorf("%w: unparsable certificate: %v", ErrPairUntrusted, err)
		}
		certs = append(certs, c)
	}
	leaf := certs[0]
	trusted := false
	fp := sha256.Sum256(leaf.Raw)
	if slices.Contains(v.Pins, fp) {
		trusted = true
		now := time.Now()
		if v.Now != nil {
			now = v.Now()
		}
		if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
			return "", fmt.Errorf("%w: pinned certificate %q expired or not yet valid", ErrPairUntrusted, leaf.Subject.CommonName)
		}
	} else if v.Roots != nil {
		opts := x509.VerifyOptions{Roots: v.Roots, Intermediates: x509.NewCertPool(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
		if v.Now != nil {
			opts.CurrentTime = v.Now()
		}
		for _, c := range certs[1:] {
			opts.Intermediates.AddCert(c)
		}
		if _, err := leaf.Verify(opts); err != nil {
			return "", fmt.Errorf("%w: %q: %v", ErrPairUntrusted, leaf.Subject.CommonName, err)
		}
		trusted = true
	}
	if !trusted {
		return "", fmt.Errorf("%w: %q (sha256 %s)", ErrPairUntrusted, leaf.Subject.CommonName, hex.EncodeToString(fp[:]))
	}
	id := PairMemberID(leaf)
	if id == "" {
		return "", fmt.Errorf("%w: %q carries no URI SAN %s<id> (the subject CN is not an identity)",
			ErrPairUnknownMember, leaf.Subject.CommonName, PairMemberURIPrefix)
	}
	if !slices.Contains(v.Members, id) {
		return "", fmt.Errorf("%w: it names %q (members: %s)", ErrPairUnknownMember, id, strings.Join(v.Members, ", "))
	}
	return id, nil
}

// VerifyMember is Verify that also requires the chain to name member want.
func (v *PairVerifier) VerifyMember(rawCerts [][]byte, want string) error {
	id, err := v.Verify(rawCerts)
	if err != nil {
		return err
	}
	if id != want {
		return fmt.Errorf("%w: it names %q, expected %q", ErrPairWrongMember, id, want)
	}
	return nil
}

// PairMemberID returns the member id a certificate names: its URI SAN
// urn:uamirror:member:<id>, or "" when it has none. The subject CN is not
// consulted. A certificate with two such URIs names no member ("").
func PairMemberID(c *x509.Certificate) string {
	id := ""
	for _, u := range c.URIs {
		if s := u.String(); strings.HasPrefix(s, PairMemberURIPrefix) {
			if id != "" {
				return ""
			}
			id = strings.TrimPrefix(s, PairMemberURIPrefix)
		}
	}
	return id
}

// PairFingerprint returns the SHA-256 fingerprint of a DER certificate as
// lower-case hex (the form --tls-pin takes).
func PairFingerprint(der []byte) string {
	fp := sha256.Sum256(der)
	return hex.EncodeToString(fp[:])
}

// ParsePairPin parses a SHA-256 fingerprint: 64 hex digits, optionally
// prefixed with "sha256:" and separated by colons.
func ParsePairPin(s string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	h := strings.ReplaceAll(strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:"), ":", "")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return out, fmt.Errorf("pin %q: want a SHA-256 fingerprint (64 hex digits)", s)
	}
	copy(out[:], b)
	return out, nil
}
