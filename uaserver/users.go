package uaserver

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"reflect"
	"slices"
	"sync"
	"unsafe"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uapolicy"
	"github.com/gopcua/opcua/uasc"
	"go.uber.org/zap"
)

// User names, password checks (Config.Users) and who calls a method.
// gopcua's server accepts any identity (its ActivateSession checks only
// the client signature). Our ActivateSession handler runs first: with
// Users set it checks the token (a password must be encrypted to the
// server's certificate with the session's current server nonce, so a
// captured token cannot be replayed), then gopcua's handler runs, and
// the session's identity and the secure channel it was activated on are
// recorded for Call (Caller).
//
// gopcua's handler is a method of SessionService, whose only field, the
// server, is unexported, and the handler table keeps the first handler
// registered: to check first and then delegate, we build the
// SessionService from the server pointer. sessionServiceLayoutOK guards
// the assumption; a gopcua upgrade that changes the struct fails New.
// The channel's security mode and the session's nonce are unexported in
// gopcua; they are read by reflection and, when they cannot be read, the
// check fails closed (no authenticated caller, password refused).

// sessionServiceLayoutOK reports whether server.SessionService is still
// one pointer (the *server.Server).
func sessionServiceLayoutOK() bool {
	return unsafe.Sizeof(server.SessionService{}) == unsafe.Sizeof((*server.Server)(nil))
}

// gopcuaSessionService returns gopcua's SessionService for gs.
func gopcuaSessionService(gs *server.Server) *server.SessionService {
	p := gs
	return (*server.SessionService)(unsafe.Pointer(&p)) //nolint:gosec // see sessionServiceLayoutOK
}

// Caller is who called a method: the user of the session (Part 4, 5.6.3)
// and the security of the channel the call came on.
type Caller struct {
	// User is the user name of a UserName token; "" for anonymous.
	User string
	// Roles are Config.Roles[User].
	Roles []string
	// SecurityMode is the mode of the secure channel the call came on
	// (ua.MessageSecurityModeInvalid when it cannot be told).
	SecurityMode ua.MessageSecurityMode
}

// Authenticated reports whether the caller proved a configured identity
// on the channel it activated its session on, and that channel signs.
func (c Caller) Authenticated() bool {
	return c.User != "" && (c.SecurityMode == ua.MessageSecurityModeSign ||
		c.SecurityMode == ua.MessageSecurityModeSignAndEncrypt)
}

// HasRole reports whether an authenticated caller has role.
func (c Caller) HasRole(role string) bool {
	return c.Authenticated() && slices.Contains(c.Roles, role)
}

type callerKey struct{}

// CallerFrom returns the caller of the method call whose context ctx is
// (Extension.Call); anonymous when ctx carries none.
func CallerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// sessionUser is what ActivateSession recorded for a session.
type sessionUser struct {
	user string
	sc   *uasc.SecureChannel // the channel the session was activated on
}

// sessionUsers maps authentication tokens to their session's user.
type sessionUsers struct {
	mu sync.Mutex
	m  map[string]sessionUser
}

// channelMode returns the security mode of sc, read from gopcua's
// unexported configuration; Invalid when it cannot be read.
func channelMode(sc *uasc.SecureChannel) ua.MessageSecurityMode {
	if sc == nil {
		return ua.MessageSecurityModeInvalid
	}
	v := reflect.ValueOf(sc).Elem().FieldByName("cfg")
	if !v.IsValid() || v.Kind() != reflect.Pointer || v.IsNil() {
		return ua.MessageSecurityModeInvalid
	}
	m := v.Elem().FieldByName("SecurityMode")
	if !m.IsValid() || m.Kind() != reflect.Uint32 {
		return ua.MessageSecurityModeInvalid
	}
	return ua.MessageSecurityMode(m.Uint())
}

// sessionNonce returns the server nonce gopcua last sent the session of
// hdr (nil when it cannot be read).
func sessionNonce(gs *server.Server, hdr *ua.RequestHeader) []byte {
	sess := gs.Session(hdr)
	if sess == nil {
		return nil
	}
	v := reflect.ValueOf(sess).Elem().FieldByName("serverNonce")
	if !v.IsValid() || v.Kind() != reflect.Slice || v.Type().Elem().Kind() != reflect.Uint8 {
		return nil
	}
	return bytes.Clone(v.Bytes())
}

// registerUserCheck installs the ActivateSession handler that checks user
// names and passwords (with Config.Users) and records who each session
// is.
func (s *Server) registerUserCheck(gs *server.Server) {
	inner := gopcuaSessionService(gs).ActivateSession
	gs.RegisterHandler(id.ActivateSessionRequest_Encoding_DefaultBinary, s.guard("ActivateSession",
		func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
			req, ok := r.(*ua.ActivateSessionRequest)
			if !ok {
				return fault(r, ua.StatusBadRequestTypeInvalid), nil
			}
			if m := channelMode(sc); s.cfg.SecureOnly && m != ua.MessageSecurityModeSign && m != ua.MessageSecurityModeSignAndEncrypt {
				// gopcua opens a None channel whatever the endpoints say.
				s.log.Info("session refused: secure endpoints only", zap.String("channel", m.String()))
				return fault(r, ua.StatusBadSecurityModeRejected), nil
			}
			user := ""
			if len(s.cfg.Users) > 0 {
				var code ua.StatusCode
				if user, code = s.checkUser(gs, req); code != ua.StatusOK {
					return fault(r, code), nil
				}
			}
			// gopcua replaces the nonce: read it before, check after.
			resp, err := inner(sc, r, reqID)
			if err != nil || resp == nil {
				return resp, err
			}
			if _, ok := resp.(*ua.ActivateSessionResponse); ok && req.RequestHeader != nil {
				s.recordUser(gs, req.RequestHeader.AuthenticationToken, sessionUser{user: user, sc: sc})
			}
			return resp, nil
		}))
}

// recordUser remembers the user of the session tok, and forgets the
// sessions that are gone.
func (s *Server) recordUser(gs *server.Server, tok *ua.NodeID, u sessionUser) {
	s.users.mu.Lock()
	defer s.users.mu.Unlock()
	if s.users.m == nil {
		s.users.m = map[string]sessionUser{}
	}
	for k := range s.users.m {
		t, err := ua.ParseNodeID(k)
		if err != nil || gs.Session(&ua.RequestHeader{AuthenticationToken: t}) == nil {
			delete(s.users.m, k)
		}
	}
	s.users.m[tok.String()] = u
}

// caller returns who sends a request with header hdr on channel sc: the
// user its session was activated with, if that was on this channel.
func (s *Server) caller(sc *uasc.SecureChannel, hdr *ua.RequestHeader) Caller {
	c := Caller{SecurityMode: channelMode(sc)}
	if hdr == nil || hdr.AuthenticationToken == nil {
		return c
	}
	s.users.mu.Lock()
	u, ok := s.users.m[hdr.AuthenticationToken.String()]
	s.users.mu.Unlock()
	if ok && u.sc == sc && u.user != "" {
		c.User, c.Roles = u.user, slices.Clone(s.cfg.Roles[u.user])
	}
	return c
}

// checkUser checks the identity token of req against Config.Users and
// returns the user name ("" for an accepted anonymous token). The
// password is never logged.
func (s *Server) checkUser(gs *server.Server, req *ua.ActivateSessionRequest) (string, ua.StatusCode) {
	if req.UserIdentityToken == nil {
		return "", ua.StatusBadIdentityTokenInvalid
	}
	if _, ok := req.UserIdentityToken.Value.(*ua.AnonymousIdentityToken); ok && s.cfg.AllowAnonymous {
		return "", ua.StatusOK
	}
	tok, ok := req.UserIdentityToken.Value.(*ua.UserNameIdentityToken)
	if !ok {
		// Other tokens are refused while users are configured.
		s.log.Info("session refused: not a user name token")
		return "", ua.StatusBadIdentityTokenRejected
	}
	want, known := s.cfg.Users[tok.UserName]
	pw, nonce, err := s.decryptPassword(tok)
	if err != nil {
		s.log.Info("session refused: password undecodable", zap.String("user", tok.UserName), zap.Error(err))
		return "", ua.StatusBadIdentityTokenInvalid
	}
	if cur := sessionNonce(gs, req.RequestHeader); len(cur) == 0 || subtle.ConstantTimeCompare(nonce, cur) != 1 {
		s.log.Info("session refused: password token not made with the session's nonce (replayed?)", zap.String("user", tok.UserName))
		return "", ua.StatusBadIdentityTokenInvalid
	}
	if !known || subtle.ConstantTimeCompare(pw, []byte(want)) != 1 {
		s.log.Info("session refused: wrong user name or password", zap.String("user", tok.UserName))
		return "", ua.StatusBadUserAccessDenied
	}
	return tok.UserName, ua.StatusOK
}

// decryptPassword returns a token's password and the server nonce it was
// encrypted with (Part 4, 7.36.2.2: length, password, server nonce). A
// password that is not encrypted is refused: it would have crossed the
// network in clear on a channel that does not encrypt.
func (s *Server) decryptPassword(tok *ua.UserNameIdentityToken) (pw, nonce []byte, err error) {
	policy := ""
	switch tok.EncryptionAlgorithm {
	case "http://www.w3.org/2001/04/xmlenc#rsa-oaep":
		policy = ua.SecurityPolicyURIBasic256Sha256
	case "http://opcfoundation.org/UA/security/rsa-oaep-sha2-256":
		policy = ua.SecurityPolicyURIAes256Sha256RsaPss
	case "http://www.w3.org/2001/04/xmlenc#rsa-1_5":
		policy = ua.SecurityPolicyURIBasic128Rsa15
	default:
		return nil, nil, ua.StatusBadIdentityTokenInvalid
	}
	if s.key == nil {
		return nil, nil, ua.StatusBadIdentityTokenInvalid
	}
	alg, err := uapolicy.Asymmetric(policy, s.key, &s.key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	plain, err := alg.Decrypt(tok.Password)
	if err != nil {
		return nil, nil, err
	}
	if len(plain) < 4 {
		return nil, nil, ua.StatusBadIdentityTokenInvalid
	}
	n := int(binary.LittleEndian.Uint32(plain))
	if n > len(plain)-4 || n < serverNonceLen {
		return nil, nil, ua.StatusBadIdentityTokenInvalid
	}
	return plain[4 : 4+n-serverNonceLen], plain[4+n-serverNonceLen : 4+n], nil
}

// serverNonceLen is the length of gopcua's server nonces
// (server/session_service.go: sessionNonceLength).
const serverNonceLen = 32
