package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/diagnostics/adminclient"
	"github.com/uamirror/uamirror/pki"
	"github.com/uamirror/uamirror/test/harness"
)

// httpGet returns the body of GET path on the admin API at base ("" when
// it fails).
func httpGet(base, path string) string {
	b, _ := adminclient.New(base, adminclient.Options{Timeout: 3 * time.Second}).GetRaw(context.Background(), path)
	return string(b)
}

// TestSecretsNeverShown runs a real pair (two node processes, debug
// logging) against a simserver that checks passwords, over
// Basic256Sha256/SignAndEncrypt, with one server entry logging in with the
// right password (from an env var) and one with a wrong one (from a
// file). The wrong one fails with a clear error; the right one mirrors;
// neither password appears in any log line, the admin API's answers or
// the metrics. The server's certificate expires in 10 days: the summary
// and the metrics warn about it.
func TestSecretsNeverShown(t *testing.T) {
	const (
		rightPW = "Corr3ct-H0rse-pw-71"
		wrongPW = "Wr0ng-Batt3ry-pw-13"
	)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rightFile, wrongFile := write("right.pw", rightPW), write("wrong.pw", wrongPW)

	// The PLC's certificate expires in 10 days.
	der, key, err := pki.GenerateCertificate(pki.CertTemplate{AppURI: "urn:test:plc", CommonName: "plc",
		Hosts: []string{"127.0.0.1"}, NotAfter: time.Now().Add(10 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	certStore, err := pki.Open(filepath.Join(dir, "plc-pki"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := certStore.SetOwn(der, key); err != nil {
		t.Fatal(err)
	}
	plc := harness.Start(t, "simserver", "--vars", "4", "--type", "Double", "--control",
		"--security", "Basic256Sha256:SignAndEncrypt", "--user", "alice:"+rightFile,
		"--cert", filepath.Join(certStore.Dir(), pki.DirOwnCerts, pki.OwnCertFile),
		"--key", filepath.Join(certStore.Dir(), pki.DirOwnPrivate, pki.OwnKeyFile))
	scada := harness.Start(t, "simserver", "--vars", "4", "--type", "Double")
	thumb := pki.Thumbprint(der)

	t.Setenv("UAMIRROR_E2E_PLC_PW", rightPW)
	yml := fmt.Sprintf(`servers:
  - name: plc_ok
    endpoints: [%[1]q]
    security_policy: Basic256Sha256
    security_mode: SignAndEncrypt
    trusted_certificates: [%[2]s]
    auth: {type: username, username: alice, password_env: UAMIRROR_E2E_PLC_PW}
  - name: plc_bad
    endpoints: [%[1]q]
    security_policy: Basic256Sha256
    security_mode: SignAndEncrypt
    trusted_certificates: [%[2]s]
    auth: {type: username, username: alice, password_file: %[3]q}
  - name: scada
    endpoints: [%[4]q]
engine: {publishing_interval: 50ms, retry_min: 50ms, retry_max: 500ms}
mappings:
  - source: {server: plc_ok, node: "nsu=urn:uamirror:simserver;s=v0"}
    target: {server: scada, node: "nsu=urn:uamirror:simserver;s=v0"}
  - source: {server: plc_bad, node: "nsu=urn:uamirror:simserver;s=v1"}
    target: {server: scada, node: "nsu=urn:uamirror:simserver;s=v1"}
`, plc.Ready("endpoint"), thumb, wrongFile, scada.Ready("endpoint"))
	cfg := write("mirror.yml", yml)

	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)) }
	admin := map[string]string{}
	var members []string
	for _, id := range []string{"a", "b"} {
		a := addr()
		admin[id] = "http://" + a
		members = append(members, fmt.Sprintf("id=%s,role=node,raft=%s,peer=%s,admin=%s", id, addr(), addr(), a))
	}
	nodes := map[string]*harness.Proc{}
	for _, id := range []string{"a", "b"} {
		args := []string{"--log-level", "debug", "node", "--config", cfg, "--id", id, "--data", filepath.Join(dir, id)}
		for _, m := range members {
			args = append(args, "--member", m)
		}
		nodes[id] = harness.Start(t, args...)
	}

	summary := func(id string) diagnostics.Summary {
		s, _ := adminclient.New(admin[id], adminclient.Options{Timeout: 3 * time.Second}).Summary(context.Background())
		return s
	}
	server := func(s diagnostics.Summary, name string) diagnostics.ServerSummary {
		for _, sv := range s.Servers {
			if sv.Name == name {
				return sv
			}
		}
		return diagnostics.ServerSummary{}
	}
	for _, id := range []string{"a", "b"} {
		harness.Eventually(t, 30*time.Second, "node "+id+": plc_ok connected, plc_bad refused", func() bool {
			s := summary(id)
			return server(s, "plc_ok").State == "connected" &&
				strings.Contains(server(s, "plc_bad").LastError, "server plc_bad: user alice rejected: ") &&
				strings.Contains(server(s, "plc_bad").LastError, "BadUserAccessDenied")
		})
	}
	if err := plc.Send("set 0 12.5"); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 20*time.Second, "plc_ok v0 mirrored", func() bool {
		dvs, err := harness.ReadValues(harness.Context(t), scada.Ready("endpoint"), []string{"nsu=urn:uamirror:simserver;s=v0"})
		return err == nil && dvs[0].Value != nil && dvs[0].Value.Value() == 12.5
	})

	// Expiry within 30 days: summary and metrics.
	s := summary("a")
	if c := server(s, "plc_ok").Certificate; c == nil || !c.ExpiresSoon || c.Warning != "expires soon" || c.Thumbprint != thumb {
		t.Errorf("summary certificate of plc_ok: %+v", c)
	}
	if s.OwnCertificate == nil || s.OwnCertificate.ExpiresSoon {
		t.Errorf("own certificate in the summary: %+v", s.OwnCertificate)
	}
	metrics := httpGet(admin["a"], "/metrics")
	for _, want := range []string{`uamirror_certificate_expires_soon{kind="server",server="plc_ok"} 1`,
		`uamirror_certificate_expires_soon{kind="own",server=""} 0`,
		`uamirror_certificate_expiry_seconds{kind="server",server="plc_ok"} 8639`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// … and in the status (API and `uamirror status`), as a warning.
	st, err := adminclient.New(admin["a"], adminclient.Options{}).Status(context.Background())
	if err != nil || st.Health == nil ||
		len(st.Health.Warnings) != 1 || !strings.Contains(st.Health.Warnings[0], "server plc_ok certificate "+thumb) ||
		!strings.Contains(st.Health.Warnings[0], "expires soon") {
		t.Errorf("status warnings: %v %+v", err, st.Health)
	}
	if out, err := exec.Command(harness.Binary(t), "status", "--node", admin["a"]).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "WARNING: server plc_ok certificate "+thumb) {
		t.Errorf("uamirror status: %v\n%s", err, out)
	}

	// Every text a user or a scraper can see, on both nodes, by source,
	// so that a finding (or a missing source) is named.
	var sources []source
	for _, id := range []string{"a", "b"} {
		for _, p := range []string{"/api/v1/status", "/api/v1/summary", "/api/v1/mappings", "/api/v1/pair",
			"/api/v1/events", "/metrics"} {
			body := httpGet(admin[id], p)
			if body == "" {
				t.Errorf("node %s: GET %s: empty", id, p)
			}
			sources = append(sources, source{"node " + id + " GET " + p, body})
		}
	}

	// Each node must have logged the refused login (the error that carries
	// the user's name, next to where a password could slip in).
	for _, id := range []string{"a", "b"} {
		harness.Eventually(t, 20*time.Second, "node "+id+"'s log has the refused login of plc_bad (\"user alice rejected\")", func() bool {
			return strings.Contains(nodes[id].Stderr.String(), "user alice rejected")
		})
	}
	// And the logs must be debug-level ones. A healthy node logs at debug
	// level only when something fails, so make it fail: stop the standby;
	// the active then logs each failed state push to it ("peer sync
	// failed", debug) until it steps down.
	active, standby := "a", "b"
	if sb, err := adminclient.New(admin["b"], adminclient.Options{Timeout: 3 * time.Second}).Status(context.Background()); err == nil && sb.Role == "active" {
		active, standby = "b", "a"
	}
	nodes[standby].Stop(10 * time.Second)
	const debugLine = `"level":"debug"`
	harness.Eventually(t, 20*time.Second, "a debug-level line in the nodes' logs (run with --log-level debug; the active "+
		active+" should log \"peer sync failed\" once the standby "+standby+" is stopped)", func() bool {
		return strings.Contains(nodes[active].Stderr.String(), debugLine) || strings.Contains(nodes[standby].Stderr.String(), debugLine)
	})
	nodes[active].Stop(10 * time.Second)
	for _, id := range []string{"a", "b"} {
		sources = append(sources, source{"node " + id + " log", nodes[id].Stderr.String()})
	}
	sources = append(sources, source{"plc simserver log", plc.Stderr.String()})

	n := 0
	for _, src := range sources {
		n += len(src.text)
		for _, pw := range []string{rightPW, wrongPW} {
			if i := strings.Index(src.text, pw); i >= 0 {
				t.Errorf("password %q shown in the %s: …%s…", pw, src.name, src.text[max(0, i-200):min(len(src.text), i+100)])
			}
		}
	}
	t.Logf("searched %d bytes of logs, API answers and metrics in %d sources", n, len(sources))
}

// source is a text the no-secrets test searches, and where it came from.
type source struct {
	name, text string
}
