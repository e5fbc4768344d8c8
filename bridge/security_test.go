package bridge

import (
	"errors"
	"strings"
	"testing"

	"github.com/gopcua/opcua/ua"
)

func TestCheckPasswordProtected(t *testing.T) {
	b256 := ua.SecurityPolicyURIBasic256Sha256
	none := ua.SecurityPolicyURINone
	ep := func(pol string, mode ua.MessageSecurityMode, toks ...*ua.UserTokenPolicy) *ua.EndpointDescription {
		return &ua.EndpointDescription{SecurityPolicyURI: pol, SecurityMode: mode, UserIdentityTokens: toks}
	}
	user := func(pol string) *ua.UserTokenPolicy {
		return &ua.UserTokenPolicy{TokenType: ua.UserTokenTypeUserName, SecurityPolicyURI: pol}
	}
	anon := &ua.UserTokenPolicy{TokenType: ua.UserTokenTypeAnonymous}
	for _, tc := range []struct {
		name string
		ep   *ua.EndpointDescription
		want string // "" ok, else part of the error
	}{
		{"None channel, encrypted token", ep(none, ua.MessageSecurityModeNone, anon, user(b256)), ""},
		{"None channel, token None", ep(none, ua.MessageSecurityModeNone, user(none)), "unencrypted"},
		{"None channel, token inherits None", ep(none, ua.MessageSecurityModeNone, user("")), "unencrypted"},
		{"Sign channel, token inherits", ep(b256, ua.MessageSecurityModeSign, user("")), ""},
		{"Sign channel, token None", ep(b256, ua.MessageSecurityModeSign, user(none)), "unencrypted"},
		{"SignAndEncrypt channel, token None", ep(b256, ua.MessageSecurityModeSignAndEncrypt, user(none)), ""},
		{"no user token", ep(b256, ua.MessageSecurityModeSign, anon), "offers no user name login"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPasswordProtected("plc", tc.ep)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if tc.want == "unencrypted" && !errors.Is(err, ErrPasswordInClear) {
				t.Errorf("not ErrPasswordInClear: %v", err)
			}
		})
	}
}
