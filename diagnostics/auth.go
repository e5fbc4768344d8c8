package diagnostics

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sort"
	"strings"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/redundancy"
)

// AdminAuth says who may call the admin API. The zero value is no
// authentication (every call allowed, as before authentication existed).
//
// With a token or a certificate verifier set:
//   - a command (any method but GET and HEAD) needs a valid bearer token
//     or a client certificate the verifier accepts;
//   - a read needs the same, except from a loopback address;
//   - a refused call answers JSON 401 (no credentials) or 403 (credentials
//     not accepted) and is logged with method, path, remote address and
//     reason, never with the credential.
type AdminAuth struct {
	// Token is the bearer token (empty: no token accepted).
	Token []byte
	// Verify authenticates a client certificate chain (leaf first, DER)
	// and returns who it names; nil: certificates are not accepted. The
	// listener asks for a certificate but does not verify it: this does,
	// so that a bad certificate gets a JSON 403 and a log line rather than
	// a bare TLS alert.
	Verify func(rawCerts [][]byte) (string, error)
	// ForwardTLS returns the client TLS config for forwarding a command
	// to member id's admin API (https); nil: forward over plain http.
	ForwardTLS func(id string) *tls.Config
}

func (au AdminAuth) enabled() bool { return len(au.Token) > 0 || au.Verify != nil }

// authState is an Admin's AdminAuth with the token's hash.
type authState struct {
	AdminAuth
	tokenSum []byte // SHA-256 of Token: compared in constant time at a fixed length
}

// SetAuth sets the admin API's authentication. Call it before Serve.
func (a *Admin) SetAuth(au AdminAuth) {
	a.auth = authState{AdminAuth: au}
	if len(au.Token) > 0 {
		sum := sha256.Sum256(au.Token)
		a.auth.tokenSum = sum[:]
	}
}

// guard enforces a.auth in front of next.
func (a *Admin) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.auth.enabled() {
			next.ServeHTTP(w, r)
			return
		}
		code, reason := a.authorize(r)
		if code == 0 {
			next.ServeHTTP(w, r)
			return
		}
		a.log.Warn("admin request refused", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.String("remote", r.RemoteAddr), zap.Int("status", code), zap.String("reason", reason))
		if rr, ok := a.pair.(refusalRecorder); ok {
			rr.RecordRefusal("admin API", r.RemoteAddr, r.Method+" "+r.URL.Path+": "+reason)
		}
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="uamirror"`)
		}
		writeJSON(w, code, apiError{Error: http.StatusText(code) + ": " + reason})
	})
}

// authorize returns 0 when r may proceed, else the status and the reason
// (which never contains the credential).
func (a *Admin) authorize(r *http.Request) (int, string) {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	// A token, when sent, must be right (even where none is needed).
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return http.StatusUnauthorized, "Authorization header is not a bearer token"
		}
		if len(a.auth.tokenSum) == 0 {
			return http.StatusForbidden, "this node accepts no token (use a client certificate)"
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if subtle.ConstantTimeCompare(sum[:], a.auth.tokenSum) != 1 {
			return http.StatusForbidden, "token not accepted"
		}
		return 0, ""
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if a.auth.Verify == nil {
			return http.StatusForbidden, "this node accepts no client certificates (use the token)"
		}
		raw := make([][]byte, len(r.TLS.PeerCertificates))
		for i, c := range r.TLS.PeerCertificates {
			raw[i] = c.Raw
		}
		if _, err := a.auth.Verify(raw); err != nil {
			return http.StatusForbidden, "client certificate not accepted: " + err.Error()
		}
		return 0, ""
	}
	if read && isLoopback(r.RemoteAddr) {
		return 0, ""
	}
	if read {
		return http.StatusUnauthorized, "reads from a non-loopback address need a bearer token or a client certificate"
	}
	return http.StatusUnauthorized, "commands need a bearer token (Authorization: Bearer …) or a client certificate of the pair"
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// forwardTarget returns the URL base and client for forwarding a request
// to member id's admin API at admin (host:port), and a func to release
// the client.
func (a *Admin) forwardTarget(id, admin string) (string, *http.Client, func()) {
	admin = strings.TrimPrefix(strings.TrimPrefix(admin, "http://"), "https://")
	if a.auth.ForwardTLS == nil {
		return "http://" + admin, a.client, func() {}
	}
	tr := &http.Transport{TLSClientConfig: a.auth.ForwardTLS(id)}
	return "https://" + admin, &http.Client{Timeout: a.client.Timeout, Transport: tr}, tr.CloseIdleConnections
}

// refusalRecorder is the optional capability of a Pair to journal a
// refused request beside its refused connections (redundancy.Node has
// it; the journal is rate-limited there).
type refusalRecorder interface {
	RecordRefusal(source, remote, reason string)
}

// securityEvents is the optional capability of a Pair to report the
// connections it refused (redundancy.Node has it).
type securityEvents interface {
	SecurityEvents() []redundancy.Event
}

// events returns the switchover journal merged with the pair's refusal
// journal (when the pair keeps one), by time.
func (a *Admin) events() []redundancy.Event {
	evs := a.pair.Events()
	var sec []redundancy.Event
	if se, ok := a.pair.(securityEvents); ok {
		sec = se.SecurityEvents()
	}
	if a.drills != nil {
		sec = append(sec, a.drills.Events()...) // kind drill (drill.go)
	}
	if len(sec) == 0 {
		return evs
	}
	out := append(append(make([]redundancy.Event, 0, len(evs)+len(sec)), evs...), sec...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// ErrInsecureAdmin: the admin API would serve a non-loopback address
// without authentication.
var ErrInsecureAdmin = errors.New("refusing to serve the admin API on a non-loopback address without authentication: " +
	"give --admin-token-file (and/or the pair's --tls-* for client certificates), or --admin-insecure to serve it open anyway")

// CheckAdminBind returns ErrInsecureAdmin when addr (host:port) is not a
// loopback address and the admin API has no authentication, unless
// insecure is set.
func CheckAdminBind(addr string, au AdminAuth, insecure bool) error {
	if insecure || au.enabled() {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return ErrInsecureAdmin
}
