package pki

// `uamirror pki init-pair`: a CA for the pair and a certificate for each
// member, in one step.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// PairMemberSpec is one member for InitPair.
type PairMemberSpec struct {
	ID string
	// Hosts are the DNS names and IP addresses the member is reached at
	// (its certificate's SANs).
	Hosts []string
}

// PairFiles is where InitPair wrote what.
type PairFiles struct {
	// CACert and CAKey are the pair CA; the key stays with the operator
	// (it signs new member certificates) and is never copied to a node.
	CACert, CAKey string
	// Members maps a member id to its directory, which holds ca.crt,
	// <id>.crt and <id>.key: copy the directory to that member.
	Members map[string]PairMemberFiles
}

// PairMemberFiles are one member's files.
type PairMemberFiles struct {
	Dir, CA, Cert, Key string
}

// ErrPairExists: InitPair does not overwrite an existing pair PKI.
var ErrPairExists = errors.New("file exists (init-pair never overwrites keys; choose another --out)")

// InitPair creates in dir a pair CA (dir/ca/) and, for each member, an
// ECDSA P-256 key and a certificate signed by the CA (dir/<id>/) with the
// member's hosts as SANs and urn:uamirror:member:<id> as URI SAN, valid
// for validity. Keys are written 0600 and never overwritten.
func InitPair(dir string, members []PairMemberSpec, validity time.Duration) (PairFiles, error) {
	out := PairFiles{Members: map[string]PairMemberFiles{}}
	if len(members) == 0 {
		return out, errors.New("no members")
	}
	seen := map[string]bool{}
	for _, m := range members {
		if m.ID == "" || seen[m.ID] || filepath.Base(m.ID) != m.ID || m.ID == "ca" {
			return out, fmt.Errorf("member id %q: empty, duplicate, \"ca\" or not a plain name", m.ID)
		}
		seen[m.ID] = true
	}
	now := time.Now().Add(-5 * time.Minute) // tolerate small clock skew between members
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return out, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "uamirror pair CA", Organization: []string{"uamirror"}},
		NotBefore: now, NotAfter: now.Add(validity + 24*time.Hour), IsCA: true, BasicConstraintsValid: true,
		MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return out, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	out.CACert, out.CAKey = filepath.Join(dir, "ca", "ca.crt"), filepath.Join(dir, "ca", "ca.key")
	if err := writePEM(out.CAKey, "EC PRIVATE KEY", marshalKey(caKey), 0o600); err != nil {
		return out, err
	}
	if err := writePEM(out.CACert, "CERTIFICATE", caDER, 0o644); err != nil {
		return out, err
	}
	for _, m := range members {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return out, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(), Subject: pkix.Name{CommonName: m.ID, Organization: []string{"uamirror pair"}},
			NotBefore: now, NotAfter: now.Add(validity), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			URIs:        []*url.URL{{Scheme: "urn", Opaque: "uamirror:member:" + m.ID}},
		}
		for _, h := range m.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else if h != "" {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return out, fmt.Errorf("member %s: %w", m.ID, err)
		}
		mdir := filepath.Join(dir, m.ID)
		f := PairMemberFiles{Dir: mdir, CA: filepath.Join(mdir, "ca.crt"), Cert: filepath.Join(mdir, m.ID+".crt"), Key: filepath.Join(mdir, m.ID+".key")}
		if err := writePEM(f.Key, "EC PRIVATE KEY", marshalKey(key), 0o600); err != nil {
			return out, err
		}
		if err := writePEM(f.Cert, "CERTIFICATE", der, 0o644); err != nil {
			return out, err
		}
		if err := writePEM(f.CA, "CERTIFICATE", caDER, 0o644); err != nil {
			return out, err
		}
		out.Members[m.ID] = f
	}
	return out, nil
}

func serial() *big.Int {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return s
}

func marshalKey(k *ecdsa.PrivateKey) []byte {
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		panic(err) // a P-256 key always marshals
	}
	return b
}

// writePEM creates path (never overwriting) with mode and its directory
// with 0700 (it may hold a key).
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s: %w", path, ErrPairExists)
		}
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
