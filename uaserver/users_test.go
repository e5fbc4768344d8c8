package uaserver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
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
