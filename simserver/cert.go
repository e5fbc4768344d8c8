package simserver

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"time"
)

// GenerateCertificate returns a self-signed RSA-2048 certificate (DER) and
// its key for an OPC UA application: the URI SAN is appURI (Part 6, 6.2.2
// requires it to match the ApplicationURI), hosts become IP or DNS SANs.
// Tests use it for client certificates too.
func GenerateCertificate(appURI string, hosts ...string) ([]byte, *rsa.PrivateKey, error) {
	uri, err := url.Parse(appURI)
	if err != nil || uri.Scheme == "" {
		return nil, nil, fmt.Errorf("application URI %q: not an absolute URI", appURI)
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
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "uamirror simserver", Organization: []string{"uamirror"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment |
			x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{uri},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating certificate: %w", err)
	}
	return der, key, nil
}

// loadCertificate reads a certificate and an RSA key, each PEM or DER,
// checks that they belong together and returns the certificate's first URI
// SAN ("" when it has none).
func loadCertificate(certFile, keyFile string) ([]byte, *rsa.PrivateKey, string, error) {
	certData, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, "", fmt.Errorf("reading certificate: %w", err)
	}
	if b, _ := pem.Decode(certData); b != nil {
		certData = b.Bytes
	}
	cert, err := x509.ParseCertificate(certData)
	if err != nil {
		return nil, nil, "", fmt.Errorf("parsing certificate %s: %w", certFile, err)
	}
	keyData, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, "", fmt.Errorf("reading key: %w", err)
	}
	if b, _ := pem.Decode(keyData); b != nil {
		keyData = b.Bytes
	}
	key, err := parseRSAKey(keyData)
	if err != nil {
		return nil, nil, "", fmt.Errorf("parsing key %s: %w", keyFile, err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, nil, "", fmt.Errorf("certificate %s and key %s do not match", certFile, keyFile)
	}
	uri := ""
	if len(cert.URIs) > 0 {
		uri = cert.URIs[0].String()
	}
	return certData, key, uri, nil
}

func parseRSAKey(der []byte) (*rsa.PrivateKey, error) {
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("neither PKCS#1 nor PKCS#8: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an RSA key (OPC UA security policies need RSA)")
	}
	return rk, nil
}
