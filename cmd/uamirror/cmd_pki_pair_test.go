package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/viper"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/redundancy"
)

// TestPKIInitPair: init-pair writes a CA and a certificate and key per
// member (keys 0600, CA key only in ca/), prints what to copy where, and
// the files make a member's TLS settings that load (pins included);
// usage errors exit 2, a second run into the same directory exits 1.
func TestPKIInitPair(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	out, errOut, code := runCLI(t, "pki", "init-pair", "--out", dir, "--member", "a=127.0.0.1,node-a",
		"--member", "id=b,role=node,raft=10.0.0.2:7001,peer=10.0.0.2:7101", "--arbiter", "arb=10.0.0.3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"ca.key", "never copy it to a node", "copy " + filepath.Join(dir, "a"), "--tls-cert b.crt", "sha256 "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"ca/ca.crt", "ca/ca.key", "a/a.crt", "a/a.key", "a/ca.crt", "b/b.key", "arb/arb.crt"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".key") && st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", f, st.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "ca.key")); err == nil {
		t.Error("the CA key is in a member's directory")
	}

	// The files load as a node's TLS settings (through viper: env too).
	fp := strings.TrimSuffix(strings.Fields(out[strings.Index(out, "sha256 ")+7:])[0], ",")
	a := &app{v: viper.New()}
	a.v.SetEnvPrefix("UAMIRROR")
	a.v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	a.v.AutomaticEnv()
	t.Setenv("UAMIRROR_TLS_CA", filepath.Join(dir, "a", "ca.crt"))
	cmd := newMemberCmd(a, redundancy.RoleNode)
	if err := cmd.ParseFlags([]string{"--tls-cert", filepath.Join(dir, "a", "a.crt"), "--tls-key", filepath.Join(dir, "a", "a.key"), "--tls-pin", fp, "--tls-pin", "sha256:" + fp}); err != nil {
		t.Fatal(err)
	}
	sec, err := loadSecurity(a, cmd, []redundancy.Member{{ID: "a"}, {ID: "b"}, {ID: "arb"}})
	if err != nil {
		t.Fatal(err)
	}
	if sec.pair == nil || sec.adminTLS == nil || sec.admin.Verify == nil || sec.admin.ForwardTLS == nil {
		t.Fatalf("TLS settings incomplete: %+v", sec)
	}
	raw := sec.pair.Cert.Certificate
	if id, err := sec.admin.Verify(raw); err != nil || id != "a" {
		t.Errorf("a's own certificate: %q, %v", id, err)
	}

	if _, errOut, code := runCLI(t, "pki", "init-pair", "--out", dir, "--member", "a=h", "--member", "b=h"); code != 1 || !strings.Contains(errOut, "never overwrites") {
		t.Errorf("second run into %s: exit %d: %s", dir, code, errOut)
	}
	if _, _, code := runCLI(t, "pki", "init-pair", "--out", t.TempDir(), "--member", "a=h"); code != 2 {
		t.Errorf("one member: exit %d, want 2", code)
	}
	if _, _, code := runCLI(t, "pki", "init-pair", "--out", t.TempDir(), "--member", "a", "--member", "b=h"); code != 2 {
		t.Errorf("member without host: exit %d, want 2", code)
	}
}

// TestUAFailoverOffWithAuth: the OPC UA endpoint, which authenticates no
// user, cannot switch the pair over while the admin API wants credentials.
func TestUAFailoverOffWithAuth(t *testing.T) {
	var open memberSecurity
	var p diagnostics.UAPair = (*redundancy.Node)(nil)
	if uaPairFor(p, open) != p {
		t.Error("without admin auth the OPC UA endpoint should get the pair itself")
	}
	withToken := memberSecurity{admin: diagnostics.AdminAuth{Token: []byte("0123456789abcdef")}}
	if err := uaPairFor(p, withToken).Switchover(t.Context(), "", false); !errors.Is(err, errUAFailoverOff) {
		t.Errorf("Failover with admin auth on: %v", err)
	}
}
