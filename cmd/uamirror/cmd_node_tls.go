package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/pki"
	"github.com/uamirror/uamirror/redundancy"
)

// securityFlagNames are the node's and arbiter's TLS and admin-auth
// flags; each is bound to viper (env UAMIRROR_TLS_CA, …) when the command
// runs (binding at construction would let the arbiter's flags shadow the
// node's: both commands share one viper).
var securityFlagNames = []string{"tls-ca", "tls-cert", "tls-key",
	"admin-tls-cert", "admin-tls-key", "admin-token-file", "admin-insecure", "pair-insecure"}

func addSecurityFlags(fl *pflag.FlagSet) {
	fl.String("tls-ca", "", "pair CA certificate (PEM): members whose certificates it signed may join (raft, peer link, admin)")
	fl.String("tls-cert", "", "this member's certificate (PEM; from 'uamirror pki init-pair'): turns on mutual TLS for raft and the peer link")
	fl.String("tls-key", "", "this member's private key (PEM); it never leaves this machine")
	fl.StringArray("tls-pin", nil, "trust a member certificate by its SHA-256 `fingerprint` instead of (or besides) the CA (repeat)")
	fl.String("admin-tls-cert", "", "admin API certificate (PEM; default: --tls-cert when given)")
	fl.String("admin-tls-key", "", "admin API private key (PEM; default: --tls-key)")
	fl.String("admin-token-file", "", "file holding the bearer token that commands (switchover, mapping changes) and non-local reads need")
	fl.Bool("admin-insecure", false, "serve the admin API on a non-loopback address without authentication (not recommended)")
	fl.Bool("pair-insecure", false, "run raft and the peer link as plain TCP on non-loopback addresses (anyone who reaches them can take the pair over; not recommended)")
}

// memberSecurity is what the security flags resolve to.
type memberSecurity struct {
	pair     *redundancy.PairTLS // nil: plain TCP
	admin    diagnostics.AdminAuth
	adminTLS *tls.Config // nil: plain http
	insecure bool
	// pairInsecure: plain TCP for raft and the peer link even off
	// loopback (--pair-insecure).
	pairInsecure bool
}

// loadSecurity reads the security flags (through viper) and the files
// they name.
func loadSecurity(a *app, cmd *cobra.Command, members []redundancy.Member) (memberSecurity, error) {
	var s memberSecurity
	for _, name := range securityFlagNames {
		_ = a.v.BindPFlag(name, cmd.Flags().Lookup(name))
	}
	get := a.v.GetString
	caFile, certFile, keyFile := get("tls-ca"), get("tls-cert"), get("tls-key")
	s.insecure = a.v.GetBool("admin-insecure")
	s.pairInsecure = a.v.GetBool("pair-insecure")
	if (certFile == "") != (keyFile == "") {
		return s, errors.New("--tls-cert and --tls-key go together")
	}
	var roots *x509.CertPool
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return s, fmt.Errorf("--tls-ca: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(b) {
			return s, fmt.Errorf("--tls-ca %s: no PEM certificate in it", caFile)
		}
	}
	var pins [][sha256.Size]byte
	// viper turns a repeated string flag into one comma-joined string;
	// read the flag itself (UAMIRROR_TLS_PIN, comma- or space-separated,
	// arrives through it: env.go).
	pinList, _ := cmd.Flags().GetStringArray("tls-pin")
	for _, p := range pinList {
		pin, err := pki.ParsePairPin(p)
		if err != nil {
			return s, fmt.Errorf("--tls-pin: %w", err)
		}
		pins = append(pins, pin)
	}
	if certFile != "" {
		if roots == nil && len(pins) == 0 {
			return s, errors.New("--tls-cert needs --tls-ca or --tls-pin: which members to trust")
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return s, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		ids := make([]string, len(members))
		for i, m := range members {
			ids[i] = m.ID
		}
		v := &pki.PairVerifier{Roots: roots, Pins: pins, Members: ids}
		s.pair = &redundancy.PairTLS{Cert: cert, Verifier: v}
		s.admin.Verify = v.Verify
		s.admin.ForwardTLS = s.pair.ClientConfig
	} else if roots != nil || len(pins) > 0 {
		return s, errors.New("--tls-ca/--tls-pin without --tls-cert: give this member's certificate and key too")
	}
	if f := get("admin-token-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return s, fmt.Errorf("--admin-token-file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < 16 {
			return s, fmt.Errorf("--admin-token-file %s: the token must be at least 16 characters (e.g. `openssl rand -hex 32`)", f)
		}
		s.admin.Token = []byte(tok)
	}
	acert, akey := get("admin-tls-cert"), get("admin-tls-key")
	if (acert == "") != (akey == "") {
		return s, errors.New("--admin-tls-cert and --admin-tls-key go together")
	}
	if acert == "" && s.pair != nil {
		acert, akey = certFile, keyFile
	}
	if acert != "" {
		cert, err := tls.LoadX509KeyPair(acert, akey)
		if err != nil {
			return s, fmt.Errorf("--admin-tls-cert/--admin-tls-key: %w", err)
		}
		// A client certificate is asked for, not verified here: the admin
		// API verifies it per request and answers a JSON 403 (see
		// diagnostics/auth.go).
		s.adminTLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert}
		if s.admin.ForwardTLS == nil {
			s.admin.ForwardTLS = func(string) *tls.Config { return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots} }
		}
	}
	return s, nil
}

// errUAFailoverOff: the OPC UA endpoint authenticates no user, so while
// the admin API requires credentials for a switchover, its Failover
// method would be an open side door: it is refused.
var errUAFailoverOff = errors.New("the Failover method is off while the admin API requires authentication " +
	"(the OPC UA endpoint authenticates no user): switch over through the admin API with the token or a client certificate")

// guardedUAPair is the pair as the OPC UA endpoint sees it when the admin
// API is authenticated: readable, not switchable.
type guardedUAPair struct{ diagnostics.UAPair }

func (guardedUAPair) Switchover(context.Context, string, bool) error { return errUAFailoverOff }

// uaPairFor returns the pair for the OPC UA endpoint.
func uaPairFor(p diagnostics.UAPair, s memberSecurity) diagnostics.UAPair {
	if len(s.admin.Token) > 0 || s.admin.Verify != nil {
		return guardedUAPair{p}
	}
	return p
}
