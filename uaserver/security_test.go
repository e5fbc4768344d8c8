package uaserver

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
)

// secureClient connects to s over the endpoint with policy and mode, with
// a fresh client certificate.
func secureClient(t *testing.T, s *Server, policy string, mode ua.MessageSecurityMode) *opcua.Client {
	t.Helper()
	eps, err := opcua.GetEndpoints(testCtx(t), s.Endpoint())
	if err != nil {
		t.Fatalf("GetEndpoints: %v", err)
	}
	ep, err := opcua.SelectEndpoint(eps, policy, mode)
	if err != nil {
		t.Fatalf("SelectEndpoint: %v", err)
	}
	der, key, err := GenerateCertificate("urn:uamirror:test:client", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return connect(t, ep.EndpointURL,
		opcua.SecurityFromEndpoint(ep, ua.UserTokenTypeAnonymous),
		opcua.Certificate(der), opcua.PrivateKey(key), opcua.ApplicationURI("urn:uamirror:test:client"))
}

func TestSecureEndpoints(t *testing.T) {
	sec, err := ParseSecurity("Basic256Sha256")
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Config{Vars: len(typeList), Security: sec})

	eps, err := opcua.GetEndpoints(testCtx(t), s.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	modes := map[ua.MessageSecurityMode]bool{}
	for _, ep := range eps {
		if ep.EndpointURL != s.Endpoint() {
			t.Errorf("endpoint URL %s, want %s", ep.EndpointURL, s.Endpoint())
		}
		cert, err := x509.ParseCertificate(ep.ServerCertificate)
		if err != nil {
			t.Fatalf("server certificate: %v", err)
		}
		if len(cert.URIs) != 1 || cert.URIs[0].String() != ep.Server.ApplicationURI {
			t.Errorf("certificate URIs %v, application URI %s", cert.URIs, ep.Server.ApplicationURI)
		}
		modes[ep.SecurityMode] = true
	}
	if len(eps) != 3 || !modes[ua.MessageSecurityModeNone] || !modes[ua.MessageSecurityModeSign] ||
		!modes[ua.MessageSecurityModeSignAndEncrypt] {
		t.Errorf("%d endpoints, modes %v; want None, Sign and SignAndEncrypt", len(eps), modes)
	}

	for _, mode := range []ua.MessageSecurityMode{ua.MessageSecurityModeSignAndEncrypt, ua.MessageSecurityModeSign} {
		t.Run(mode.String(), func(t *testing.T) {
			col := newCollector(t)
			c := secureClient(t, s, "Basic256Sha256", mode)
			if got := read(t, c, ua.AttributeIDValue, s.NodeID(10))[0]; got.Value.Value() != ValueFor(TypeDouble, 10, 0) {
				t.Errorf("read %v", got.Value.Value())
			}
			if code := write(t, c, valueWrite(s.NodeID(11), "secret", time.Now(), ua.StatusGood))[0]; code != ua.StatusOK {
				t.Errorf("write: %v", code)
			}
			subscribe(t, c, col, 20*time.Millisecond, s.NodeID(11))
			waitFor(t, 10*time.Second, "notification over the secure channel", func() bool {
				dv := col.last(0)
				return dv != nil && dv.Value.Value() == "secret"
			})
		})
	}
}

func TestCertificateFromFiles(t *testing.T) {
	const uri = "urn:uamirror:test:fromfile"
	der, key, err := GenerateCertificate(uri, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	pk8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk8}), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Config{Vars: 1, CertFile: certFile, KeyFile: keyFile,
		Security: []SecurityPolicy{{Policy: "Basic256Sha256", Mode: ua.MessageSecurityModeSignAndEncrypt}}})
	eps, err := opcua.GetEndpoints(testCtx(t), s.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		if !bytes.Equal(ep.ServerCertificate, der) || ep.Server.ApplicationURI != uri {
			t.Errorf("endpoint %s %s: not our certificate or application URI %s", ep.SecurityPolicyURI, ep.SecurityMode, ep.Server.ApplicationURI)
		}
	}
	c := secureClient(t, s, "Basic256Sha256", ua.MessageSecurityModeSignAndEncrypt)
	read(t, c, ua.AttributeIDValue, s.NodeID(0))

	// A key that is not the certificate's is refused.
	_, other, err := GenerateCertificate(uri)
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(dir, "other.pem")
	if err := os.WriteFile(otherFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Bytes: x509.MarshalPKCS1PrivateKey(other)}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{CertFile: certFile, KeyFile: otherFile}); err == nil {
		t.Error("New accepted a key that does not match the certificate")
	}
}
