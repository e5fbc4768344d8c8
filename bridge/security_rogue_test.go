package bridge_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/pki"
	"github.com/uamirror/uamirror/test/nodeopcua"
)

// TestPasswordNotSentToRogueServer: a server at the configured endpoint
// whose certificate nobody validated (a rogue one, here node-opcua, which
// on its None endpoint takes the password encrypted to its own
// certificate and decrypts it) never gets the password of a username
// login over None/None: without a certificate store, and with a store
// that does not trust it, the connection is refused before a session
// exists. Once its certificate is pinned, the same login works (the
// server checks the password, so the test would show a leak as a
// successful session).
func TestPasswordNotSentToRogueServer(t *testing.T) {
	const password = "R0gue-Catches-Me"
	rogue := nodeopcua.Start(t, nodeopcua.Options{Vars: 1, Type: "Double", Security: true, Password: password})
	t.Setenv("UAMIRROR_TEST_ROGUE_PW", password)
	store, err := pki.Open(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.EnsureOwn("urn:uamirror:test:client", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eps, err := opcua.GetEndpoints(ctx, rogue.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	var rogueCert []byte
	for _, ep := range eps {
		if ep.SecurityMode == ua.MessageSecurityModeNone && len(ep.ServerCertificate) > 0 {
			rogueCert = ep.ServerCertificate
		}
	}
	if rogueCert == nil {
		t.Fatal("the None endpoint presents no certificate")
	}
	srv := func(pins ...string) *mapping.Server {
		return &mapping.Server{Name: "plc", Endpoints: []string{rogue.Endpoint()}, SecurityPolicy: "None", SecurityMode: "None",
			TrustedCertificates: pins, Auth: mapping.Auth{Type: "username", Username: "operator", PasswordEnv: "UAMIRROR_TEST_ROGUE_PW"}}
	}
	// login connects with the options and reports whether a session was
	// activated, i.e. the server had the password.
	login := func(opts []opcua.Option) error {
		c, err := opcua.NewClient(rogue.Endpoint(), append(opts, opcua.AutoReconnect(false), opcua.RequestTimeout(5*time.Second))...)
		if err != nil {
			return err
		}
		if err := c.Connect(ctx); err != nil {
			return err
		}
		return c.Close(ctx)
	}

	for _, tc := range []struct {
		name string
		opts func() ([]opcua.Option, error)
	}{
		{"no certificate store", func() ([]opcua.Option, error) { return bridge.DefaultClientOptions(ctx, srv(), rogue.Endpoint()) }},
		{"untrusted certificate", func() ([]opcua.Option, error) {
			return bridge.SecureClientOptions(store)(ctx, srv(), rogue.Endpoint())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := tc.opts()
			if !errors.Is(err, bridge.ErrServerNotVerified) {
				if err == nil && login(opts) == nil {
					t.Fatal("the password reached the rogue server: it activated a session with it")
				}
				t.Fatalf("got %v, want ErrServerNotVerified", err)
			}
			t.Logf("refused: %v", err)
		})
	}
	t.Run("pinned certificate", func(t *testing.T) {
		opts, err := bridge.SecureClientOptions(store)(ctx, srv(pki.Thumbprint(rogueCert)), rogue.Endpoint())
		if err != nil {
			t.Fatal(err)
		}
		if err := login(opts); err != nil {
			t.Fatalf("login to the trusted server: %v", err)
		}
	})
}
