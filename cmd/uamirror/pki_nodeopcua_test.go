package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/pki"
	"github.com/uamirror/uamirror/simserver"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/nodeopcua"
)

// TestSecurityAgainstNodeOPCUA mirrors into node-opcua over every policy
// both sides support, Sign and SignAndEncrypt, logging in as a user whose
// password comes from an env var. node-opcua accepts only client
// certificates in its trust list (no auto-accept): ours is put there, a
// stranger's is refused. Its own certificate is trusted by a pin.
func TestSecurityAgainstNodeOPCUA(t *testing.T) {
	store, err := openPKI(filepath.Join(t.TempDir(), "pki"), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ownDER, _, _, err := store.ApplicationCertificate()
	if err != nil {
		t.Fatal(err)
	}
	const password = "n0de-Secret-Pw"
	no := nodeopcua.Start(t, nodeopcua.Options{Vars: 4, Type: "Double", Security: true, Aes: true,
		NoAutoAccept: true, TrustedClientCerts: [][]byte{ownDER}, Password: password})
	sim := startSecSim(t, simserver.Config{Vars: 4, Type: "Double"})
	t.Setenv("UAMIRROR_TEST_NODE_PW", password)
	pin := pki.Thumbprint(serverCert(t, no.Endpoint()))
	nsu := fmt.Sprintf("nsu=%s;s=v0", no.Namespace())

	config := func(policy, mode string) *mapping.Config {
		yml := fmt.Sprintf(`servers:
  - name: sim
    endpoints: [%q]
  - name: node
    endpoints: [%q]
    security_policy: %s
    security_mode: %s
    trusted_certificates: [%s]
    auth: {type: username, username: operator, password_env: UAMIRROR_TEST_NODE_PW}
engine: {publishing_interval: 20ms, retry_min: 20ms, retry_max: 300ms}
mappings:
  - source: {server: sim, node: "nsu=urn:uamirror:simserver;s=v0"}
    target: {server: node, node: %q}
`, sim.Endpoint(), no.Endpoint(), policy, mode, pin, nsu)
		c, err := mapping.ParseYAML([]byte(yml), "node.yml")
		if err == nil {
			err = c.Validate()
		}
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	cases := []struct{ policy, mode string }{
		{"Basic256Sha256", "Sign"}, {"Basic256Sha256", "SignAndEncrypt"},
		{"Aes128_Sha256_RsaOaep", "Sign"}, {"Aes128_Sha256_RsaOaep", "SignAndEncrypt"},
		{"Aes256_Sha256_RsaPss", "Sign"}, {"Aes256_Sha256_RsaPss", "SignAndEncrypt"},
	}
	for i, c := range cases {
		t.Run(c.policy+"/"+c.mode, func(t *testing.T) {
			e := runEngine(t, bridge.Options{Config: config(c.policy, c.mode), Security: store})
			v := float64(1000 + i)
			sim.SetValue(0, v, time.Now())
			harness.Eventually(t, 20*time.Second, fmt.Sprintf("value %v mirrored into node-opcua", v), func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				dvs, err := harness.ReadValues(ctx, no.Endpoint(), []string{nsu})
				return err == nil && len(dvs) == 1 && dvs[0].Value != nil && dvs[0].Value.Value() == v
			})
			if s := serverStats(e, "node"); s.Certificate == nil || s.Certificate.Thumbprint != pin {
				t.Errorf("certificate in use %+v, want %s", s.Certificate, pin)
			}
		})
	}

	t.Run("client certificate not trusted by node-opcua", func(t *testing.T) {
		stranger, err := openPKI(filepath.Join(t.TempDir(), "pki"), zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		cfg := config("Basic256Sha256", "SignAndEncrypt")
		opts, err := bridge.SecureClientOptions(stranger)(harness.Context(t), &cfg.Servers[1], no.Endpoint())
		if err != nil {
			t.Fatal(err)
		}
		err = connectOnce(no.Endpoint(), opts)
		if err == nil {
			t.Fatal("node-opcua accepted an untrusted client certificate")
		}
		t.Logf("refused as expected: %v", err)
	})

	t.Run("wrong password", func(t *testing.T) {
		t.Setenv("UAMIRROR_TEST_NODE_PW", "not-the-password")
		e := runEngine(t, bridge.Options{Config: config("Basic256Sha256", "SignAndEncrypt"), Security: store})
		harness.Eventually(t, 20*time.Second, "user rejected error", func() bool {
			return strings.Contains(serverStats(e, "node").LastError, "server node: user operator rejected: ")
		})
		msg := serverStats(e, "node").LastError
		if strings.Contains(msg, "not-the-password") || strings.Contains(msg, password) {
			t.Fatalf("error shows a password: %s", msg)
		}
		t.Logf("error: %s", msg)
	})
}

// connectOnce opens and closes one session with opts.
func connectOnce(endpoint string, opts []opcuaOption) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := newClient(endpoint, opts)
	if err != nil {
		return err
	}
	err = c.Connect(ctx)
	_ = c.Close(ctx)
	if err == nil {
		return nil
	}
	if errors.Is(err, ua.StatusBadSecurityChecksFailed) || errors.Is(err, ua.StatusBadCertificateUntrusted) {
		return fmt.Errorf("refused by the server: %w", err)
	}
	return err
}

type opcuaOption = opcua.Option

func newClient(endpoint string, opts []opcua.Option) (*opcua.Client, error) {
	return opcua.NewClient(endpoint, append(opts, opcua.AutoReconnect(false))...)
}

// TestX509UserTokenAgainstNodeOPCUA logs in to node-opcua with an X.509
// user certificate it trusts, and is refused with one it does not.
func TestX509UserTokenAgainstNodeOPCUA(t *testing.T) {
	dir := t.TempDir()
	store, err := openPKI(filepath.Join(dir, "pki"), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	writeUser := func(name string) (string, string, []byte) {
		der, key, err := pki.GenerateCertificate(pki.CertTemplate{CommonName: name})
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
	goodCert, goodKey, goodDER := writeUser("operator")
	badCert, badKey, _ := writeUser("stranger")
	ownDER, _, _, _ := store.ApplicationCertificate()
	no := nodeopcua.Start(t, nodeopcua.Options{Vars: 4, Type: "Double", Security: true, NoAutoAccept: true,
		TrustedClientCerts: [][]byte{ownDER}, TrustedUserCerts: [][]byte{goodDER}, DenyAnonymous: true})
	sim := startSecSim(t, simserver.Config{Vars: 4, Type: "Double"})
	pin := pki.Thumbprint(serverCert(t, no.Endpoint()))
	nsu := fmt.Sprintf("nsu=%s;s=v1", no.Namespace())
	config := func(cert, key string) *mapping.Config {
		c, err := mapping.ParseYAML([]byte(fmt.Sprintf(`servers:
  - name: node
    endpoints: [%q]
    security_policy: Basic256Sha256
    security_mode: SignAndEncrypt
    trusted_certificates: [%s]
    auth: {type: certificate, cert_file: %q, key_file: %q}
  - name: sim
    endpoints: [%q]
engine: {publishing_interval: 20ms, retry_min: 20ms, retry_max: 300ms}
mappings:
  - source: {server: sim, node: "nsu=urn:uamirror:simserver;s=v1"}
    target: {server: node, node: %q}
`, no.Endpoint(), pin, cert, key, sim.Endpoint(), nsu)), "x509.yml")
		if err == nil {
			err = c.Validate()
		}
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("trusted user certificate", func(t *testing.T) {
		e := runEngine(t, bridge.Options{Config: config(goodCert, goodKey), Security: store})
		harness.Eventually(t, 20*time.Second, "session with the X.509 user token", func() bool {
			return serverStats(e, "node").State == bridge.Connected
		})
		sim.SetValue(1, 77.25, time.Now())
		harness.Eventually(t, 20*time.Second, "value written into node-opcua", func() bool {
			// node-opcua refuses anonymous sessions here: the engine's
			// confirmed write (node-opcua answered Good) is the proof.
			for _, m := range e.Snapshot() {
				if m.Written != nil && m.Written.Value() == 77.25 {
					return true
				}
			}
			return false
		})
	})
	t.Run("untrusted user certificate", func(t *testing.T) {
		e := runEngine(t, bridge.Options{Config: config(badCert, badKey), Security: store})
		harness.Eventually(t, 20*time.Second, "user certificate rejected", func() bool {
			return strings.Contains(serverStats(e, "node").LastError, "user certificate "+badCert+" rejected")
		})
		t.Logf("error: %s", serverStats(e, "node").LastError)
	})
}
