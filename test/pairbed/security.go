package pairbed

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/netlab"
)

// Security is a secured pair's TLS material (from `pki init-pair`) and
// admin token.
type Security struct {
	Dir       string // init-pair output: ca/, and a dir per member
	TokenFile string
	Token     string
	CA        *x509.CertPool
}

// newSecurity makes certificates for members a, b and arb at their
// addresses (lab IPs, or 127.0.0.1) and an admin token.
func newSecurity(t testing.TB, dir string, lab *netlab.Lab) *Security {
	t.Helper()
	sec := &Security{Dir: filepath.Join(dir, "pki"), TokenFile: filepath.Join(dir, "admin.token")}
	ip := func(host string) string {
		if lab != nil {
			return lab.IP(host)
		}
		return "127.0.0.1"
	}
	out, code := CLI(t, "pki", "init-pair", "--out", sec.Dir, "--member", "a="+ip(HostA), "--member", "b="+ip(HostB),
		"--arbiter", "arb="+ip(HostArb))
	if code != 0 {
		t.Fatalf("pki init-pair: exit %d\n%s", code, out)
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	sec.Token = hex.EncodeToString(b)
	if err := os.WriteFile(sec.TokenFile, []byte(sec.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(sec.Dir, "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	sec.CA = x509.NewCertPool()
	sec.CA.AppendCertsFromPEM(ca)
	return sec
}

// Args are member id's TLS and admin-token flags.
func (sec *Security) Args(id string) []string {
	d := filepath.Join(sec.Dir, id)
	return []string{"--tls-ca", filepath.Join(d, "ca.crt"), "--tls-cert", filepath.Join(d, id+".crt"),
		"--tls-key", filepath.Join(d, id+".key"), "--admin-token-file", sec.TokenFile}
}

// CLI runs the uamirror binary with args (in the test's network
// namespace) and returns its combined output and exit code.
func CLI(t testing.TB, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, harness.Binary(t), args...)
	cmd.Env = append(os.Environ(), "UAMIRROR_LOG_FORMAT=json")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("uamirror %v: %v", args, err)
	}
	return string(out), 0
}
