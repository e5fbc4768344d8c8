package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// exitUnauthorized: the node refused the credentials (401 or 403 from
// its authentication; see the README's "Securing the pair").
const exitUnauthorized = 5

// adminCreds are an operator command's credentials for the admin API.
type adminCreds struct {
	client *http.Client
	token  string
	tls    bool // --cacert or --cert given: a --node without scheme is https
}

type adminCredsKey struct{}

// addCredFlags adds the admin API credential flags to an operator command
// and, before it runs, resolves them into the command's context, where
// call finds them.
func addCredFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.String("token-file", "", "file holding the admin API bearer token (or the token itself in $UAMIRROR_TOKEN)")
	fl.String("cacert", "", "CA certificate (PEM) to verify an https --node (default: the system roots)")
	fl.String("cert", "", "client certificate (PEM) for the admin API")
	fl.String("key", "", "client certificate key (PEM)")
	prev := cmd.PreRunE
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if prev != nil {
			if err := prev(cmd, args); err != nil {
				return err
			}
		}
		c, err := loadCreds(cmd)
		if err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		cmd.SetContext(context.WithValue(cmd.Context(), adminCredsKey{}, c))
		return nil
	}
}

// flagString returns the string flag name (set on the command line or
// from its UAMIRROR_ variable, see env.go).
func flagString(cmd *cobra.Command, name string) string {
	v, _ := cmd.Flags().GetString(name)
	return v
}

func loadCreds(cmd *cobra.Command) (*adminCreds, error) {
	c := &adminCreds{token: strings.TrimSpace(os.Getenv("UAMIRROR_TOKEN"))}
	if f := flagString(cmd, "token-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		c.token = strings.TrimSpace(string(b))
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	custom := false
	if f := flagString(cmd, "cacert"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", f)
		}
		custom = true
	}
	cert, key := flagString(cmd, "cert"), flagString(cmd, "key")
	if (cert == "") != (key == "") {
		return nil, errors.New("--cert and --key go together")
	}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		tc.Certificates = []tls.Certificate{kp}
		custom = true
	}
	c.client = http.DefaultClient
	c.tls = custom
	if custom {
		c.client = &http.Client{Transport: &http.Transport{TLSClientConfig: tc, TLSHandshakeTimeout: 10 * time.Second}}
	}
	return c, nil
}

// credsFrom returns the credentials addCredFlags put in ctx (none: the
// default client, no token).
func credsFrom(ctx context.Context) *adminCreds {
	if c, ok := ctx.Value(adminCredsKey{}).(*adminCreds); ok && c != nil {
		return c
	}
	return &adminCreds{client: http.DefaultClient}
}
