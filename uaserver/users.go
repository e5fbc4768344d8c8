package uaserver

import (
	"crypto/subtle"
	"encoding/binary"
	"unsafe"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uapolicy"
	"github.com/gopcua/opcua/uasc"
	"go.uber.org/zap"
)

// User names and password checks (Config.Users). gopcua's server accepts
// any identity (its ActivateSession checks only the client signature).
// With Users set, the server offers UserName tokens and our
// ActivateSession handler checks the token before gopcua's runs.
//
// gopcua's handler is a method of SessionService, whose only field, the
// server, is unexported, and the handler table keeps the first handler
// registered: to check first and then delegate, we build the
// SessionService from the server pointer. sessionServiceLayoutOK guards
// the assumption; a gopcua upgrade that changes the struct fails New.

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

// registerUserCheck installs the ActivateSession handler that checks user
// names and passwords.
func (s *Server) registerUserCheck(gs *server.Server) {
	inner := gopcuaSessionService(gs).ActivateSession
	gs.RegisterHandler(id.ActivateSessionRequest_Encoding_DefaultBinary, s.guard("ActivateSession",
		func(sc *uasc.SecureChannel, r ua.Request, reqID uint32) (ua.Response, error) {
			req, ok := r.(*ua.ActivateSessionRequest)
			if !ok {
				return fault(r, ua.StatusBadRequestTypeInvalid), nil
			}
			if code := s.checkUser(req); code != ua.StatusOK {
				return fault(r, code), nil
			}
			return inner(sc, r, reqID)
		}))
}

// checkUser checks the identity token of req against Config.Users. The
// password is never logged.
func (s *Server) checkUser(req *ua.ActivateSessionRequest) ua.StatusCode {
	if req.UserIdentityToken == nil {
		return ua.StatusBadIdentityTokenInvalid
	}
	tok, ok := req.UserIdentityToken.Value.(*ua.UserNameIdentityToken)
	if !ok {
		// Anonymous and other tokens are refused while users are configured.
		s.log.Info("session refused: not a user name token")
		return ua.StatusBadIdentityTokenRejected
	}
	want, known := s.cfg.Users[tok.UserName]
	pw, err := s.decryptPassword(tok)
	if err != nil {
		s.log.Info("session refused: password undecodable", zap.String("user", tok.UserName), zap.Error(err))
		return ua.StatusBadIdentityTokenInvalid
	}
	if !known || subtle.ConstantTimeCompare(pw, []byte(want)) != 1 {
		s.log.Info("session refused: wrong user name or password", zap.String("user", tok.UserName))
		return ua.StatusBadUserAccessDenied
	}
	return ua.StatusOK
}

// decryptPassword returns a token's password: plain when the token is not
// encrypted, else decrypted with the server's key (Part 4, 7.36.2.2:
// length, password, server nonce). The nonce is not checked: gopcua keeps
// it in unexported session state.
func (s *Server) decryptPassword(tok *ua.UserNameIdentityToken) ([]byte, error) {
	if tok.EncryptionAlgorithm == "" {
		return tok.Password, nil
	}
	policy := ""
	switch tok.EncryptionAlgorithm {
	case "http://www.w3.org/2001/04/xmlenc#rsa-oaep":
		policy = ua.SecurityPolicyURIBasic256Sha256
	case "http://opcfoundation.org/UA/security/rsa-oaep-sha2-256":
		policy = ua.SecurityPolicyURIAes256Sha256RsaPss
	case "http://www.w3.org/2001/04/xmlenc#rsa-1_5":
		policy = ua.SecurityPolicyURIBasic128Rsa15
	default:
		return nil, ua.StatusBadIdentityTokenInvalid
	}
	if s.key == nil {
		return nil, ua.StatusBadIdentityTokenInvalid
	}
	alg, err := uapolicy.Asymmetric(policy, s.key, &s.key.PublicKey)
	if err != nil {
		return nil, err
	}
	plain, err := alg.Decrypt(tok.Password)
	if err != nil {
		return nil, err
	}
	if len(plain) < 4 {
		return nil, ua.StatusBadIdentityTokenInvalid
	}
	n := int(binary.LittleEndian.Uint32(plain))
	if n > len(plain)-4 || n < serverNonceLen {
		return nil, ua.StatusBadIdentityTokenInvalid
	}
	return plain[4 : 4+n-serverNonceLen], nil
}

// serverNonceLen is the length of gopcua's server nonces
// (server/session_service.go: sessionNonceLength).
const serverNonceLen = 32
