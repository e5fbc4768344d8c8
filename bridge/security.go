package bridge

import (
	"context"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // OPC UA thumbprints are SHA-1 (Part 6, 6.2.3)
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/pki"
)

// Security is the certificate store secure sessions use (pki.Store
// satisfies it). Several supervisors call it at once: it must be safe for
// concurrent use.
type Security interface {
	// ApplicationCertificate returns this application's certificate
	// (DER), its key and its ApplicationURI (the certificate's URI SAN).
	ApplicationCertificate() (der []byte, key *rsa.PrivateKey, appURI string, err error)
	// VerifyServer decides whether a server certificate may be used:
	// trusted (or pinned by one of pins), within its validity period and
	// carrying appURI as its URI SAN. It returns nil or the reason.
	VerifyServer(der []byte, appURI string, pins []string) error
}

// certExpiryWarning is how long before NotAfter a server certificate in
// use is logged as expiring (the same 30 days as pki.ExpiryWarning).
const certExpiryWarning = 30 * 24 * time.Hour

// CertInfo describes a certificate in use.
type CertInfo struct {
	Thumbprint string // SHA-1, hex
	Subject    string
	NotBefore  time.Time
	NotAfter   time.Time
}

func certInfo(der []byte) *CertInfo {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil
	}
	h := sha1.Sum(der) //nolint:gosec // OPC UA thumbprint
	return &CertInfo{Thumbprint: hex.EncodeToString(h[:]), Subject: c.Subject.String(), NotBefore: c.NotBefore, NotAfter: c.NotAfter}
}

// ErrNoSecurity is returned for a server configured with a secure policy
// when the engine has no certificate store.
var ErrNoSecurity = errors.New("no certificate store configured")

// DefaultClientOptions returns the options of an engine without a
// certificate store: security None with the config's identity
// (anonymous, or username with the password read from password_env or
// password_file at connect time). A server configured with a secure
// policy gets ErrNoSecurity.
func DefaultClientOptions(ctx context.Context, srv *mapping.Server, endpoint string) ([]opcua.Option, error) {
	opts, _, _, err := clientOptions(ctx, srv, endpoint, nil)
	return opts, err
}

// SecureClientOptions returns a ClientOptionsFunc that uses sec for the
// servers configured with a secure policy. The engine uses the same logic
// itself when Options.Security is set (and then also reports the
// certificates in use in Stats).
func SecureClientOptions(sec Security) ClientOptionsFunc {
	return func(ctx context.Context, srv *mapping.Server, endpoint string) ([]opcua.Option, error) {
		opts, _, _, err := clientOptions(ctx, srv, endpoint, sec)
		return opts, err
	}
}

// clientOptions selects the endpoint matching the server's policy and
// mode, verifies the certificate it presents and returns the options
// that make gopcua use exactly that certificate, plus what it knows of
// that certificate (nil for security None), and the certificate the
// session must present for the password to be sent (bound; see
// connectBound): the validated one for a username over security None,
// else nil.
//
// gopcua validates no peer certificate. The endpoint description's
// ServerCertificate is verified here and handed to gopcua through
// SecurityFromEndpoint (uasc Config.RemoteCertificate and Thumbprint):
// the OpenSecureChannel request is encrypted to that certificate's key
// and names it by thumbprint, so only the holder of the verified key can
// learn the client nonce and derive the channel's keys. (gopcua then
// replaces RemoteCertificate with the SenderCertificate of the OPN
// response without comparing, uasc/secure_channel.go:477-485 in v0.9.0; a
// different sender cannot complete the channel, because it lacks the
// client nonce.)
func clientOptions(ctx context.Context, srv *mapping.Server, endpoint string, sec Security) (opts []opcua.Option, info *CertInfo, bound []byte, err error) {
	pol, mode := srv.SecurityPolicy, srv.SecurityMode
	if pol == "" {
		pol = "None"
	}
	if mode == "" {
		mode = "None"
	}
	secure := pol != "None" || mode != "None"
	if secure && sec == nil {
		return nil, nil, nil, fmt.Errorf("server %s: security %s/%s: %w (start with --pki)", srv.Name, pol, mode, ErrNoSecurity)
	}
	eps, err := opcua.GetEndpoints(ctx, endpoint)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("get endpoints: %w", err)
	}
	polURI, msMode := ua.FormatSecurityPolicyURI(pol), ua.MessageSecurityModeFromString(mode)
	var ep *ua.EndpointDescription
	for _, e := range eps {
		if e.SecurityPolicyURI == polURI && e.SecurityMode == msMode {
			ep = e
			break
		}
	}
	if ep == nil {
		var offered []string
		for _, e := range eps {
			offered = append(offered, fmt.Sprintf("%s/%s", shortPolicy(e.SecurityPolicyURI), shortMode(e.SecurityMode)))
		}
		return nil, nil, nil, fmt.Errorf("server %s: no endpoint with security %s/%s (offered: %v)", srv.Name, pol, mode, offered)
	}
	serverURI := ""
	if ep.Server != nil {
		serverURI = ep.Server.ApplicationURI
	}
	if secure {
		der, key, appURI, err := sec.ApplicationCertificate()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("server %s: own certificate: %w", srv.Name, err)
		}
		if err := sec.VerifyServer(ep.ServerCertificate, serverURI, srv.TrustedCertificates); err != nil {
			return nil, nil, nil, fmt.Errorf("server %s: server certificate refused: %w", srv.Name, err)
		}
		info = certInfo(ep.ServerCertificate)
		opts = append(opts, opcua.Certificate(der), opcua.PrivateKey(key))
		if appURI != "" {
			opts = append(opts, opcua.ApplicationURI(appURI))
		}
	}
	tokenType := ua.UserTokenTypeAnonymous
	if srv.Auth.Type == "username" {
		tokenType = ua.UserTokenTypeUserName
		if err := checkPasswordProtected(srv.Name, ep); err != nil {
			return nil, nil, nil, err
		}
		if !secure {
			// The channel authenticates no one: the password is encrypted
			// to the certificate the server presents, so that certificate
			// must be one we trust, or whoever answers at the endpoint
			// decrypts it (a secure channel checked it above).
			if err := verifyBeforePassword(srv, ep, serverURI, sec); err != nil {
				return nil, nil, nil, err
			}
			info = certInfo(ep.ServerCertificate)
			bound = ep.ServerCertificate
		}
		pw, err := readPassword(srv)
		if err != nil {
			return nil, nil, nil, err
		}
		opts = append(opts, opcua.AuthUsername(srv.Auth.Username, pw))
	} else if srv.Auth.Type == "certificate" {
		// An X.509 user token (Part 4, 7.36.5): gopcua signs it with the
		// user key (client.go ActivateSession, NewUserTokenSignature).
		tokenType = ua.UserTokenTypeCertificate
		if !offersToken(ep, tokenType) {
			return nil, nil, nil, fmt.Errorf("server %s: the %s/%s endpoint offers no X.509 user login", srv.Name,
				shortPolicy(ep.SecurityPolicyURI), shortMode(ep.SecurityMode))
		}
		der, key, err := pki.ReadKeyPair(srv.Auth.CertFile, srv.Auth.KeyFile)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("server %s: user certificate: %w", srv.Name, err)
		}
		opts = append(opts, opcua.AuthCertificate(der), opcua.AuthPrivateKey(key))
	} else {
		opts = append(opts, opcua.AuthAnonymous())
	}
	opts = append(opts, opcua.SecurityFromEndpoint(ep, tokenType))
	return opts, info, bound, nil
}

// ErrPasswordInClear is returned instead of sending a password the
// endpoint would carry unencrypted.
var ErrPasswordInClear = errors.New("the password would cross the network unencrypted")

// ErrServerNotVerified is returned instead of sending a password to a
// server whose certificate did not pass validation.
var ErrServerNotVerified = errors.New("the password is sent only to a server whose certificate passed validation")

// verifyBeforePassword validates the certificate a None/None endpoint
// presents before a password is encrypted to it. Without a certificate
// store nothing can be validated: refused.
//
// gopcua v0.9.0 encrypts the password to the certificate of the
// CreateSession response (client.go, Session.serverCertificate), which a
// None channel does not bind to the endpoint's: connectBound checks that
// it is this validated one before ActivateSession.
func verifyBeforePassword(srv *mapping.Server, ep *ua.EndpointDescription, serverURI string, sec Security) error {
	if sec == nil {
		return fmt.Errorf("server %s: refusing to send the password of user %s over security None: %w, and there is no certificate store "+
			"to validate it (start with --pki and trust the server's certificate, or pin it in trusted_certificates; better: security_mode SignAndEncrypt)",
			srv.Name, srv.Auth.Username, ErrServerNotVerified)
	}
	if err := sec.VerifyServer(ep.ServerCertificate, serverURI, srv.TrustedCertificates); err != nil {
		return fmt.Errorf("server %s: refusing to send the password of user %s: %w: the certificate it presents was refused: %w",
			srv.Name, srv.Auth.Username, ErrServerNotVerified, err)
	}
	return nil
}

// checkPasswordProtected refuses an endpoint on which the password would
// travel in clear text: its first UserName token policy (the one gopcua's
// SecurityFromEndpoint takes) encrypts with policy None and the channel
// does not encrypt either (Part 4, 7.41: the token's SecurityPolicyUri,
// or the endpoint's when empty).
func checkPasswordProtected(name string, ep *ua.EndpointDescription) error {
	for _, t := range ep.UserIdentityTokens {
		if t.TokenType != ua.UserTokenTypeUserName {
			continue
		}
		pol := t.SecurityPolicyURI
		if pol == "" {
			pol = ep.SecurityPolicyURI
		}
		if pol == ua.SecurityPolicyURINone && ep.SecurityMode != ua.MessageSecurityModeSignAndEncrypt {
			return fmt.Errorf("server %s: %w (user token policy None on a %s/%s endpoint); use security_mode SignAndEncrypt",
				name, ErrPasswordInClear, shortPolicy(ep.SecurityPolicyURI), shortMode(ep.SecurityMode))
		}
		return nil
	}
	return fmt.Errorf("server %s: the %s/%s endpoint offers no user name login", name,
		shortPolicy(ep.SecurityPolicyURI), shortMode(ep.SecurityMode))
}

func offersToken(ep *ua.EndpointDescription, tt ua.UserTokenType) bool {
	for _, t := range ep.UserIdentityTokens {
		if t.TokenType == tt {
			return true
		}
	}
	return false
}

func shortPolicy(uri string) string {
	if len(uri) > len(ua.SecurityPolicyURIPrefix) && uri[:len(ua.SecurityPolicyURIPrefix)] == ua.SecurityPolicyURIPrefix {
		return uri[len(ua.SecurityPolicyURIPrefix):]
	}
	return uri
}

func shortMode(m ua.MessageSecurityMode) string {
	switch m {
	case ua.MessageSecurityModeNone:
		return "None"
	case ua.MessageSecurityModeSign:
		return "Sign"
	case ua.MessageSecurityModeSignAndEncrypt:
		return "SignAndEncrypt"
	}
	return m.String()
}

// userRejected reports whether err says the server refused the user
// identity (Part 4, 5.6.3: ActivateSession).
func userRejected(err error) bool {
	return errors.Is(err, ua.StatusBadUserAccessDenied) || errors.Is(err, ua.StatusBadIdentityTokenRejected) ||
		errors.Is(err, ua.StatusBadIdentityTokenInvalid)
}
