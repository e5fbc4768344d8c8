package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/pki"
	"github.com/uamirror/uamirror/simserver"
	"github.com/uamirror/uamirror/test/harness"
)

// startSecSim starts an in-process simserver that is closed at the end of
// the test.
func startSecSim(t *testing.T, cfg simserver.Config) *simserver.Server {
	t.Helper()
	cfg.Logger = zap.NewNop()
	s, err := simserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// serverCert returns the certificate a server's endpoints present.
func serverCert(t *testing.T, endpoint string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	eps, err := opcua.GetEndpoints(ctx, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		if len(ep.ServerCertificate) > 0 {
			return ep.ServerCertificate
		}
	}
	t.Fatalf("%s presents no certificate", endpoint)
	return nil
}

// mirrorConfig is one mapping plc v0 → scada v0 with plc's security as
// given.
func mirrorConfig(t *testing.T, plc, scada, policy, mode string, pins ...string) *mapping.Config {
	t.Helper()
	var pinYAML string
	if len(pins) > 0 {
		pinYAML = fmt.Sprintf("\n    trusted_certificates: [%s]", strings.Join(pins, ", "))
	}
	yml := fmt.Sprintf(`servers:
  - name: plc
    endpoints: [%q]
    security_policy: %s
    security_mode: %s%s
  - name: scada
    endpoints: [%q]
engine:
  publishing_interval: 20ms
  retry_min: 20ms
  retry_max: 200ms
mappings:
  - source: {server: plc, node: "nsu=urn:uamirror:simserver;s=v0"}
    target: {server: scada, node: "nsu=urn:uamirror:simserver;s=v0"}
`, plc, policy, mode, pinYAML, scada)
	c, err := mapping.ParseYAML([]byte(yml), "test.yml")
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yml)
	}
	return c
}

// runEngine runs an engine until the end of the test.
func runEngine(t *testing.T, o bridge.Options) *bridge.Engine {
	t.Helper()
	if o.Logger == nil {
		o.Logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	e, err := bridge.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = e.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return e
}

func serverStats(e *bridge.Engine, name string) bridge.ServerStats {
	for _, s := range e.Stats().Servers {
		if s.Name == name {
			return s
		}
	}
	return bridge.ServerStats{}
}

// waitMirrored sets plc v0 to v and waits until scada's v0 has it.
func waitMirrored(t *testing.T, plc *simserver.Server, scada string, v float64) {
	t.Helper()
	plc.SetValue(0, v, time.Now())
	harness.Eventually(t, 15*time.Second, fmt.Sprintf("value %v mirrored to scada", v), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		dvs, err := harness.ReadValues(ctx, scada, []string{"nsu=urn:uamirror:simserver;s=v0"})
		return err == nil && len(dvs) == 1 && dvs[0].Value != nil && dvs[0].Value.Value() == v
	})
}

// TestUntrustedServerThenTrust: a Basic256Sha256/SignAndEncrypt server
// whose certificate is unknown is refused (the error names the
// thumbprint and the command, the certificate lands in rejected/); after
// `uamirror pki trust THUMBPRINT` the next attempt connects and values
// flow, and the stats report the certificate in use.
func TestUntrustedServerThenTrust(t *testing.T) {
	plc := startSecSim(t, simserver.Config{Vars: 2, Type: "Double",
		Security: []simserver.SecurityPolicy{{Policy: "Basic256Sha256", Mode: ua.MessageSecurityModeSignAndEncrypt}}})
	scada := startSecSim(t, simserver.Config{Vars: 2, Type: "Double"})
	dir := t.TempDir()
	store, err := openPKI(dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	thumb := pki.Thumbprint(serverCert(t, plc.Endpoint()))
	cfg := mirrorConfig(t, plc.Endpoint(), scada.Endpoint(), "Basic256Sha256", "SignAndEncrypt")

	// The options function refuses with the sentinel.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = bridge.SecureClientOptions(store)(ctx, &cfg.Servers[0], plc.Endpoint())
	if !errors.Is(err, pki.ErrUntrusted) || !strings.Contains(err.Error(), thumb) ||
		!strings.Contains(err.Error(), "uamirror pki trust "+thumb) {
		t.Fatalf("untrusted server: %v", err)
	}
	rej, _ := filepath.Glob(filepath.Join(dir, pki.DirRejected, "*"+thumb+"*"))
	if len(rej) != 1 {
		t.Fatalf("rejected/ holds %v", rej)
	}

	e := runEngine(t, bridge.Options{Config: cfg, Security: store})
	harness.Eventually(t, 10*time.Second, "engine reports the untrusted certificate", func() bool {
		return strings.Contains(serverStats(e, "plc").LastError, "certificate not trusted") &&
			strings.Contains(serverStats(e, "plc").LastError, thumb)
	})
	if s := serverStats(e, "plc"); s.State == bridge.Connected {
		t.Fatal("connected to an untrusted server")
	}

	out, errOut, code := runCLI(t, "pki", "trust", thumb, "--pki", dir)
	if code != 0 || !strings.Contains(out, "trusted "+thumb) {
		t.Fatalf("pki trust: exit %d, %s %s", code, out, errOut)
	}
	harness.Eventually(t, 15*time.Second, "plc connected after trust", func() bool {
		return serverStats(e, "plc").State == bridge.Connected
	})
	waitMirrored(t, plc, scada.Endpoint(), 42.5)
	if c := serverStats(e, "plc").Certificate; c == nil || c.Thumbprint != thumb {
		t.Errorf("certificate in use: %+v, want %s", c, thumb)
	}
	if own := e.Stats().OwnCertificate; own == nil || own.NotAfter.Before(time.Now().AddDate(4, 0, 0)) {
		t.Errorf("own certificate: %+v", own)
	}
}

// TestSecurityPolicies mirrors through every policy and mode gopcua
// supports and simserver offers, with the server trusted by a pin in the
// config (as a pair replicates it).
func TestSecurityPolicies(t *testing.T) {
	var sec []simserver.SecurityPolicy
	cases := []struct{ policy, mode string }{
		{"Basic256Sha256", "Sign"}, {"Basic256Sha256", "SignAndEncrypt"},
		{"Aes128_Sha256_RsaOaep", "Sign"}, {"Aes128_Sha256_RsaOaep", "SignAndEncrypt"},
		{"Aes256_Sha256_RsaPss", "Sign"}, {"Aes256_Sha256_RsaPss", "SignAndEncrypt"},
	}
	for _, c := range cases {
		sec = append(sec, simserver.SecurityPolicy{Policy: c.policy, Mode: ua.MessageSecurityModeFromString(c.mode)})
	}
	plc := startSecSim(t, simserver.Config{Vars: 2, Type: "Double", Security: sec})
	scada := startSecSim(t, simserver.Config{Vars: 2, Type: "Double"})
	store, err := openPKI(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	pin := pki.SHA256(serverCert(t, plc.Endpoint()))
	for i, c := range cases {
		t.Run(c.policy+"/"+c.mode, func(t *testing.T) {
			cfg := mirrorConfig(t, plc.Endpoint(), scada.Endpoint(), c.policy, c.mode, pin)
			e := runEngine(t, bridge.Options{Config: cfg, Security: store})
			waitMirrored(t, plc, scada.Endpoint(), float64(100+i))
			if s := serverStats(e, "plc"); s.Certificate == nil {
				t.Errorf("no certificate in use reported: %+v", s)
			}
		})
	}
}

// TestServerCertificateRefusedReasons: a real connection to a server
// whose certificate is expired is refused with that reason even when the
// certificate is pinned; an ApplicationURI that differs from the
// certificate's URI is refused too.
func TestServerCertificateRefusedReasons(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	writeCert := func(name string, tmpl pki.CertTemplate) (string, string, []byte) {
		der, key, err := pki.GenerateCertificate(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		st, err := pki.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.SetOwn(der, key); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(st.Dir(), pki.DirOwnCerts, pki.OwnCertFile), filepath.Join(st.Dir(), pki.DirOwnPrivate, pki.OwnKeyFile), der
	}
	sec := []simserver.SecurityPolicy{{Policy: "Basic256Sha256", Mode: ua.MessageSecurityModeSignAndEncrypt}}
	store, err := openPKI(filepath.Join(dir, "client"), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		tmpl   pki.CertTemplate
		appURI string
		want   error
		msg    string
	}{
		{name: "expired", tmpl: pki.CertTemplate{AppURI: "urn:plc", NotBefore: now.AddDate(-2, 0, 0), NotAfter: now.Add(-time.Hour)},
			want: pki.ErrExpired, msg: "certificate expired"},
		// A certificate without the URI the server announces (simserver
		// announces Config.ApplicationURI when its certificate has none).
		{name: "uri mismatch", tmpl: pki.CertTemplate{}, appURI: "urn:some-other-plc",
			want: pki.ErrURIMismatch, msg: `announces ApplicationURI "urn:some-other-plc"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certFile, keyFile, der := writeCert(strings.ReplaceAll(tc.name, " ", "-"), tc.tmpl)
			plc := startSecSim(t, simserver.Config{Vars: 1, Type: "Double", Security: sec, CertFile: certFile, KeyFile: keyFile,
				ApplicationURI: tc.appURI})
			srv := mapping.Server{Name: "plc", Endpoints: []string{plc.Endpoint()}, SecurityPolicy: "Basic256Sha256",
				SecurityMode: "SignAndEncrypt", TrustedCertificates: []string{pki.Thumbprint(der)}}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := bridge.SecureClientOptions(store)(ctx, &srv, plc.Endpoint())
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v (%q)", err, tc.want, tc.msg)
			}
		})
	}
}
