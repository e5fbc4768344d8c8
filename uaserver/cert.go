package uaserver

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/uamirror/uamirror/pki"
)

// GenerateCertificate returns a self-signed RSA-2048 certificate (DER) and
// its key for an OPC UA application: the URI SAN is appURI (Part 6, 6.2.2
// requires it to match the ApplicationURI), hosts become IP or DNS SANs.
// Tests use it for client certificates too.
func GenerateCertificate(appURI string, hosts ...string) ([]byte, *rsa.PrivateKey, error) {
	if appURI == "" {
		return nil, nil, fmt.Errorf("application URI %q: not an absolute URI", appURI)
	}
	return pki.GenerateCertificate(pki.CertTemplate{AppURI: appURI, Hosts: hosts, CommonName: "uamirror",
		NotAfter: time.Now().AddDate(10, 0, 0)})
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

// certificateURI checks that key belongs to the certificate der and
// returns the certificate's first URI SAN ("" when it has none).
func certificateURI(der []byte, key *rsa.PrivateKey) (string, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", fmt.Errorf("parsing certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || key == nil || !pub.Equal(&key.PublicKey) {
		return "", errors.New("certificate and key do not match")
	}
	if len(cert.URIs) > 0 {
		return cert.URIs[0].String(), nil
	}
	return "", nil
}
