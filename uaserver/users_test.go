package uaserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uapolicy"
)

func TestUsers(t *testing.T) {
	sec := []SecurityPolicy{{Policy: "Basic256Sha256", Mode: ua.MessageSecurityModeSignAndEncrypt},
		{Policy: "Aes256_Sha256_RsaPss", Mode: ua.MessageSecurityModeSign}}
	s := startServer(t, Config{Vars: 1, Security: sec, Users: map[string]string{"alice": "s3cret-pw"}})
	eps, err := opcua.GetEndpoints(testCtx(t), s.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	der, key, err := GenerateCertificate("urn:uamirror:test:client", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	dial := func(policy string, mode ua.MessageSecurityMode, auth opcua.Option, tok ua.UserTokenType) error {
		ep, err := opcua.SelectEndpoint(eps, policy, mode)
		if err != nil {
			t.Fatal(err)
		}
		c, err := opcua.NewClient(ep.EndpointURL, opcua.AutoReconnect(false), auth, opcua.SecurityFromEndpoint(ep, tok),
			opcua.Certificate(der), opcua.PrivateKey(key), opcua.ApplicationURI("urn:uamirror:test:client"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = c.Connect(ctx)
		_ = c.Close(ctx)
		return err
	}
	for _, p := range []struct {
		policy string
		mode   ua.MessageSecurityMode
	}{{"Basic256Sha256", ua.MessageSecurityModeSignAndEncrypt}, {"Aes256_Sha256_RsaPss", ua.MessageSecurityModeSign}} {
		t.Run(p.policy, func(t *testing.T) {
			if err := dial(p.policy, p.mode, opcua.AuthUsername("alice", "s3cret-pw"), ua.UserTokenTypeUserName); err != nil {
				t.Errorf("right password: %v", err)
			}
			if err := dial(p.policy, p.mode, opcua.AuthUsername("alice", "wrong"), ua.UserTokenTypeUserName); !errors.Is(err, ua.StatusBadUserAccessDenied) {
				t.Errorf("wrong password: %v, want BadUserAccessDenied", err)
			}
			if err := dial(p.policy, p.mode, opcua.AuthUsername("mallory", "s3cret-pw"), ua.UserTokenTypeUserName); !errors.Is(err, ua.StatusBadUserAccessDenied) {
				t.Errorf("unknown user: %v, want BadUserAccessDenied", err)
			}
			if err := dial(p.policy, p.mode, opcua.AuthAnonymous(), ua.UserTokenTypeAnonymous); err == nil {
				t.Error("anonymous session accepted")
			}
		})
	}
	if err := (Config{Users: map[string]string{"a": "b"}}).Validate(); err == nil {
		t.Error("Users without a secure endpoint validated")
	}
}

// TestCaller: a method learns who calls it — the user of a session
// activated with a password on a secure channel, with that user's roles;
// an anonymous session (allowed besides the users) is not authenticated.
// SecureOnly offers no None endpoint.
func TestCaller(t *testing.T) {
	sec := []SecurityPolicy{{Policy: "Basic256Sha256", Mode: ua.MessageSecurityModeSignAndEncrypt},
		{Policy: "Basic256Sha256", Mode: ua.MessageSecurityModeSign}}
	ext := &Extension{Call: func(ctx context.Context, _ *ua.CallMethodRequest) *ua.CallMethodResult {
		c := CallerFrom(ctx)
		out := c.User + "|" + c.SecurityMode.String()
		if c.HasRole("operator") {
			out += "|operator"
		}
		return &ua.CallMethodResult{StatusCode: ua.StatusOK, OutputArguments: []*ua.Variant{ua.MustVariant(out)}}
	}}
	s := startServer(t, Config{Vars: 1, Security: sec, SecureOnly: true, Extension: ext, AllowAnonymous: true,
		Users: map[string]string{"op": "op-password", "viewer": "v-password"}, Roles: map[string][]string{"op": {"operator"}}})
	ctx := testCtx(t)
	eps, err := opcua.GetEndpoints(ctx, s.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		if ep.SecurityMode == ua.MessageSecurityModeNone {
			t.Fatalf("SecureOnly server offers %s", ep.SecurityPolicyURI)
		}
	}
	// A None channel opens (gopcua's) but no session is activated on it.
	none, err := opcua.NewClient(s.Endpoint(), opcua.AutoReconnect(false), opcua.SecurityMode(ua.MessageSecurityModeNone))
	if err != nil {
		t.Fatal(err)
	}
	if err := none.Connect(ctx); !errors.Is(err, ua.StatusBadSecurityModeRejected) {
		t.Errorf("session on a None channel of a SecureOnly server: %v, want Bad_SecurityModeRejected", err)
	}
	_ = none.Close(ctx)
	der, key, err := GenerateCertificate("urn:uamirror:test:client", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	call := func(mode ua.MessageSecurityMode, auth opcua.Option, tok ua.UserTokenType) string {
		t.Helper()
		ep, err := opcua.SelectEndpoint(eps, "Basic256Sha256", mode)
		if err != nil {
			t.Fatal(err)
		}
		c := connect(t, ep.EndpointURL, auth, opcua.SecurityFromEndpoint(ep, tok),
			opcua.Certificate(der), opcua.PrivateKey(key), opcua.ApplicationURI("urn:uamirror:test:client"))
		res, err := c.Call(ctx, &ua.CallMethodRequest{ObjectID: ua.NewStringNodeID(s.NamespaceIndex(), "O"),
			MethodID: ua.NewStringNodeID(s.NamespaceIndex(), "M")})
		if err != nil || res.StatusCode != ua.StatusOK {
			t.Fatalf("Call: %v %v", err, res)
		}
		return res.OutputArguments[0].Value().(string)
	}
	for _, tc := range []struct {
		name string
		mode ua.MessageSecurityMode
		auth opcua.Option
		tok  ua.UserTokenType
		want string
	}{
		{"operator", ua.MessageSecurityModeSignAndEncrypt, opcua.AuthUsername("op", "op-password"), ua.UserTokenTypeUserName, "op|MessageSecurityModeSignAndEncrypt|operator"},
		{"operator, sign only", ua.MessageSecurityModeSign, opcua.AuthUsername("op", "op-password"), ua.UserTokenTypeUserName, "op|MessageSecurityModeSign|operator"},
		{"user without the role", ua.MessageSecurityModeSignAndEncrypt, opcua.AuthUsername("viewer", "v-password"), ua.UserTokenTypeUserName, "viewer|MessageSecurityModeSignAndEncrypt"},
		{"anonymous", ua.MessageSecurityModeSignAndEncrypt, opcua.AuthAnonymous(), ua.UserTokenTypeAnonymous, "|MessageSecurityModeSignAndEncrypt"},
	} {
		if got := call(tc.mode, tc.auth, tc.tok); got != tc.want {
			t.Errorf("%s: the method saw %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestPasswordNeedsEncryptionWithTheSessionNonce: a password in clear is
// refused (it crossed the network unencrypted), and so is one encrypted
// with a nonce that is not the session's current one (a captured token
// replayed); a correctly made token passes (TestUsers, through gopcua's
// client).
func TestPasswordNeedsEncryptionWithTheSessionNonce(t *testing.T) {
	sec := []SecurityPolicy{{Policy: "Basic256Sha256", Mode: ua.MessageSecurityModeSignAndEncrypt}}
	s := startServer(t, Config{Vars: 1, Security: sec, Users: map[string]string{"alice": "s3cret-pw"}})
	s.mu.Lock()
	gs := s.gs
	s.mu.Unlock()
	req := func(tok *ua.UserNameIdentityToken) *ua.ActivateSessionRequest {
		return &ua.ActivateSessionRequest{RequestHeader: &ua.RequestHeader{AuthenticationToken: ua.NewNumericNodeID(0, 4711)},
			UserIdentityToken: ua.NewExtensionObject(tok)}
	}
	if _, code := s.checkUser(gs, req(&ua.UserNameIdentityToken{UserName: "alice", Password: []byte("s3cret-pw")})); code != ua.StatusBadIdentityTokenInvalid {
		t.Errorf("password in clear: %v, want Bad_IdentityTokenInvalid", code)
	}
	alg, err := uapolicy.Asymmetric(ua.SecurityPolicyURIBasic256Sha256, nil, &s.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	nonce := bytes.Repeat([]byte{7}, serverNonceLen)
	plain := binary.LittleEndian.AppendUint32(nil, uint32(len("s3cret-pw")+len(nonce)))
	plain = append(append(plain, "s3cret-pw"...), nonce...)
	enc, err := alg.Encrypt(plain)
	if err != nil {
		t.Fatal(err)
	}
	tok := &ua.UserNameIdentityToken{UserName: "alice", Password: enc, EncryptionAlgorithm: "http://www.w3.org/2001/04/xmlenc#rsa-oaep"}
	if pw, n, err := s.decryptPassword(tok); err != nil || string(pw) != "s3cret-pw" || !bytes.Equal(n, nonce) {
		t.Fatalf("decrypt: %q %x %v", pw, n, err)
	}
	if _, code := s.checkUser(gs, req(tok)); code != ua.StatusBadIdentityTokenInvalid {
		t.Errorf("right password, nonce not the session's: %v, want Bad_IdentityTokenInvalid", code)
	}
}
