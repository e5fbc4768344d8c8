package main

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/pki"
)

// TestPKICommands: create, list (with marks), trust by thumbprint and by
// file, reject, and the errors for unknown thumbprints; UAMIRROR_PKI
// selects the store when --pki is not given.
func TestPKICommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	out, errOut, code := runCLI(t, "pki", "create", "--pki", dir, "--app-uri", "urn:test:me", "--host", "mirror1.example,10.0.0.5")
	if code != 0 || !strings.Contains(out, "uri=urn:test:me") {
		t.Fatalf("create: exit %d %s %s", code, out, errOut)
	}
	_, cert, err := pki.ReadCertificate(filepath.Join(dir, pki.DirOwnCerts, pki.OwnCertFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.DNSNames) != 1 || cert.DNSNames[0] != "mirror1.example" || len(cert.IPAddresses) != 1 {
		t.Errorf("SANs %v %v", cert.DNSNames, cert.IPAddresses)
	}
	if fi, err := os.Stat(filepath.Join(dir, pki.DirOwnPrivate, pki.OwnKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v %v", fi.Mode(), err)
	}

	// Two refused servers: one expiring in 10 days, one already expired.
	st, err := pki.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	soon, _, _ := pki.GenerateCertificate(pki.CertTemplate{AppURI: "urn:plc:soon", CommonName: "plc soon", NotAfter: time.Now().Add(10 * 24 * time.Hour)})
	old, _, _ := pki.GenerateCertificate(pki.CertTemplate{AppURI: "urn:plc:old", CommonName: "plc old",
		NotBefore: time.Now().AddDate(-1, 0, 0), NotAfter: time.Now().Add(-time.Hour)})
	if err := st.Verify(soon, "urn:plc:soon", nil); !errors.Is(err, pki.ErrUntrusted) {
		t.Fatal(err)
	}
	oldFile := filepath.Join(t.TempDir(), "old.der")
	if err := os.WriteFile(oldFile, old, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Setenv("UAMIRROR_PKI", dir)
	out, _, code = runCLI(t, "pki", "list")
	if code != 0 {
		t.Fatalf("list: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "KIND") {
		t.Fatalf("list:\n%s", out)
	}
	if !strings.HasPrefix(lines[1], "own") || !strings.Contains(lines[1], "urn:test:me") {
		t.Errorf("own line: %s", lines[1])
	}
	if !strings.HasPrefix(lines[2], "rejected") || !strings.Contains(lines[2], pki.Thumbprint(soon)) ||
		!strings.Contains(lines[2], "expires soon") {
		t.Errorf("rejected line: %s", lines[2])
	}

	out, _, code = runCLI(t, "pki", "trust", strings.ToUpper(pki.Thumbprint(soon)))
	if code != 0 || !strings.Contains(out, "trusted "+pki.Thumbprint(soon)) {
		t.Fatalf("trust: exit %d %s", code, out)
	}
	if err := st.Verify(soon, "urn:plc:soon", nil); err != nil {
		t.Errorf("after trust: %v", err)
	}
	if _, _, code = runCLI(t, "pki", "trust", oldFile); code != 0 {
		t.Fatalf("trust file: exit %d", code)
	}
	out, _, _ = runCLI(t, "pki", "list")
	if !strings.Contains(out, "expired") || strings.Count(out, "trusted") != 2 {
		t.Errorf("list after trust:\n%s", out)
	}

	out, _, code = runCLI(t, "pki", "reject", pki.SHA256(soon))
	if code != 0 || !strings.Contains(out, "rejected "+pki.Thumbprint(soon)) {
		t.Fatalf("reject: exit %d %s", code, out)
	}
	if err := st.Verify(soon, "urn:plc:soon", nil); !errors.Is(err, pki.ErrUntrusted) {
		t.Errorf("after reject: %v", err)
	}
	if _, errOut, code := runCLI(t, "pki", "reject", "00112233445566778899aabbccddeeff00112233"); code != 2 ||
		!strings.Contains(errOut, "no such certificate") {
		t.Errorf("reject unknown: exit %d %s", code, errOut)
	}
	if _, _, code := runCLI(t, "pki", "trust", "nonsense"); code != 2 {
		t.Errorf("trust unknown: exit %d", code)
	}

	// Renew: a new certificate replaces the old one.
	before := cert.Raw
	if _, _, code := runCLI(t, "pki", "create", "--app-uri", "urn:test:me"); code != 0 {
		t.Fatal("renew failed")
	}
	der, _, _ := pki.ReadCertificate(filepath.Join(dir, pki.DirOwnCerts, pki.OwnCertFile))
	if string(der) == string(before) {
		t.Error("create did not renew the certificate")
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		t.Error(err)
	}
}
