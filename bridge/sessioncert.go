package bridge

import (
	"bytes"
	"context"
	"crypto/sha1" //nolint:gosec // OPC UA thumbprints are SHA-1 (Part 6, 6.2.3)
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"sync"
	_ "unsafe" // go:linkname, see clientMonitorSubscriptions

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/uasc"
)

// connectBound connects cl like Client.Connect. When bound is not nil,
// the password is encrypted only to that certificate: between
// CreateSession and ActivateSession it checks that the certificate of the
// CreateSession response is bound, byte for byte, and refuses (wrapping
// ErrServerNotVerified, without ActivateSession) otherwise.
//
// Why: gopcua v0.9.0 encrypts the password to the certificate of the
// CreateSession response (client.go, Session.serverCertificate), not to
// the endpoint's that clientOptions validated. On a None/None channel
// nothing ties the two: a man in the middle can show the validated
// certificate in GetEndpoints and its own in CreateSession, and decrypt
// the password (Part 4, 5.6.2: the client shall check that the
// serverCertificate is the one of the endpoint).
//
// bound is nil (plain Connect) on a secure channel: there the
// OpenSecureChannel request was encrypted to the validated certificate
// (clientOptions), so the CreateSession response comes, signed (and
// encrypted) with the channel's keys, from the holder of the validated
// key. It is also nil for an X.509 user token: gopcua signs the
// certificate of the response with the user key, a signature that
// reveals no secret and that no other server accepts (Part 4, 7.36.5).
//
// Client.Connect offers no hook between CreateSession and
// ActivateSession, so this does what it does, with public calls where
// gopcua has them: Dial, CreateSession (with the client's own session
// config), the check, ActivateSession, UpdateNamespaces, and the
// subscription publish loop (unexported: clientMonitorSubscriptions).
// Two things of Connect are left out: the client's state stays Closed
// (only gopcua's reconnect monitor reads it) and that monitor is not
// started; with auto-reconnect off it only stops the publish loop after
// a channel error, and the engine closes such a session itself
// (keep-alive, publish errors). stop ends the publish loop and waits for
// it: call it after Client.Close.
func connectBound(ctx context.Context, cl *opcua.Client, bound []byte) (stop func(), err error) {
	if bound == nil {
		return func() {}, cl.Connect(ctx)
	}
	scfg, err := clientSessionConfig(cl)
	if err != nil {
		return nil, err
	}
	if err := cl.Dial(ctx); err != nil {
		return nil, err
	}
	s, err := cl.CreateSession(ctx, scfg)
	if err == nil && s == nil {
		err = errors.New("create session: no response") // gopcua returns neither on a bad session signature
	}
	if err == nil {
		var got []byte
		if got, err = sessionCertificate(s); err == nil && !bytes.Equal(got, bound) {
			err = fmt.Errorf("refusing to send the password: %w: the CreateSession answer carries another certificate (%s) than the validated one (%s): "+
				"a man in the middle? ActivateSession not sent", ErrServerNotVerified, thumb(got), thumb(bound))
		}
	}
	if err == nil {
		err = cl.ActivateSession(ctx, s)
	}
	if err != nil {
		_ = cl.Close(ctx)
		return nil, err
	}
	mctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); clientMonitorSubscriptions(cl, mctx) }()
	stop = func() { cancel(); wg.Wait() }
	if err := cl.UpdateNamespaces(ctx); err != nil {
		_ = cl.Close(ctx)
		stop()
		return nil, err
	}
	return stop, nil
}

// clientMonitorSubscriptions is gopcua's publish loop, which Connect
// starts and which nothing else exports. A gopcua upgrade that renames
// it fails the build (link error), not silently.
//
//go:linkname clientMonitorSubscriptions github.com/gopcua/opcua.(*Client).monitorSubscriptions
func clientMonitorSubscriptions(c *opcua.Client, ctx context.Context) //nolint:revive // receiver first

// errClientLayout means gopcua's Client or Session no longer has the
// fields connectBound reads: no password is sent then.
var errClientLayout = errors.New("gopcua's Client or Session layout changed: cannot check the session's certificate, password not sent")

// clientSessionConfig returns the session config Connect would use
// (Client.cfg.session, unexported in v0.9.0; the options wrote it).
func clientSessionConfig(cl *opcua.Client) (*uasc.SessionConfig, error) {
	cfg := reflect.ValueOf(cl).Elem().FieldByName("cfg")
	if !cfg.IsValid() || cfg.Kind() != reflect.Pointer || cfg.IsNil() {
		return nil, errClientLayout
	}
	f := cfg.Elem().FieldByName("session")
	if !f.IsValid() || f.Type() != reflect.TypeOf((*uasc.SessionConfig)(nil)) || f.IsNil() {
		return nil, errClientLayout
	}
	return (*uasc.SessionConfig)(f.UnsafePointer()), nil
}

// sessionCertificate returns the certificate gopcua will encrypt the
// password to (Session.serverCertificate, unexported in v0.9.0).
func sessionCertificate(s *opcua.Session) ([]byte, error) {
	f := reflect.ValueOf(s).Elem().FieldByName("serverCertificate")
	if !f.IsValid() || f.Type() != reflect.TypeOf([]byte(nil)) {
		return nil, errClientLayout
	}
	return bytes.Clone(f.Bytes()), nil
}

func thumb(der []byte) string {
	if len(der) == 0 {
		return "none"
	}
	h := sha1.Sum(der) //nolint:gosec // OPC UA thumbprint
	return "thumbprint " + hex.EncodeToString(h[:])
}
