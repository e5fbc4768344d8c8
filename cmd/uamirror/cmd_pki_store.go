package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gopcua/opcua"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/pki"
)

// defaultPKIDir is the OPC UA certificate store of `run`, `demo` and
// `pki …` when neither --pki nor UAMIRROR_PKI is given; a pair node uses
// <--data>/pki.
const defaultPKIDir = "pki"

// addPKIFlag adds --pki to cmd. It is bound to viper (UAMIRROR_PKI) when
// the command runs, not here: several commands have the flag, and viper
// keeps one flag per key.
func addPKIFlag(cmd *cobra.Command, def string) {
	cmd.Flags().String("pki", "", "OPC UA certificate store folder (default "+def+")")
}

// pkiDir returns the --pki folder of the running command (flag, then
// UAMIRROR_PKI), or def; given says whether the user named one.
func pkiDir(a *app, cmd *cobra.Command, def string) (dir string, given bool) {
	if f := cmd.Flags().Lookup("pki"); f != nil {
		_ = a.v.BindPFlag("pki", f)
	}
	if d := a.v.GetString("pki"); d != "" {
		return d, true
	}
	return def, false
}

// defaultAppURI is the ApplicationURI of a certificate created without
// --app-uri: urn:<hostname>:uamirror.
func defaultAppURI() (uri string, hosts []string) {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	return "urn:" + h + ":uamirror", []string{h, "localhost", "127.0.0.1"}
}

// openPKI opens the store in dir and loads the own certificate, creating
// it on first start.
func openPKI(dir string, log *zap.Logger) (*pki.Store, error) {
	st, err := pki.Open(dir)
	if err != nil {
		return nil, err
	}
	uri, hosts := defaultAppURI()
	own, created, err := st.EnsureOwn(uri, hosts)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("created the application certificate", zap.String("pki", dir),
			zap.String("thumbprint", pki.Thumbprint(own.DER)), zap.String("application_uri", own.AppURI),
			zap.String("not_after", own.Cert.NotAfter.UTC().Format(time.RFC3339)))
	}
	if m := pki.ExpiryMark(own.Cert.NotBefore, own.Cert.NotAfter, time.Now()); m != "" {
		log.Warn("application certificate "+m+"; renew it with `uamirror pki create`", zap.String("pki", dir),
			zap.String("not_after", own.Cert.NotAfter.UTC().Format(time.RFC3339)))
	}
	return st, nil
}

// needsPKI reports whether a config has a server with a secure policy.
func needsPKI(c *mapping.Config) bool {
	for _, s := range c.Servers {
		if (s.SecurityPolicy != "" && s.SecurityPolicy != "None") || (s.SecurityMode != "" && s.SecurityMode != "None") {
			return true
		}
	}
	return false
}

// storeFor opens the store of a `pki …` subcommand.
func storeFor(a *app, cmd *cobra.Command) (*pki.Store, error) {
	dir, _ := pkiDir(a, cmd, defaultPKIDir)
	st, err := pki.Open(dir)
	if err != nil {
		return nil, &exitError{code: 1, err: err}
	}
	return st, nil
}

func newPKIListCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the OPC UA certificates: own, trusted, rejected, issuers",
		Long: `list prints every certificate of the store with its SHA-1 thumbprint (as OPC
UA tools show it), not-after date, a mark (expired, expires soon: within 30
days, not yet valid), subject and application URI.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := storeFor(a, cmd)
			if err != nil {
				return err
			}
			es, err := st.List()
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "KIND\tTHUMBPRINT\tNOT AFTER\tMARK\tSUBJECT\tURI")
			now := time.Now()
			for _, e := range es {
				kind := e.Kind
				if e.IsCA {
					kind += " (CA)"
				}
				mark := e.Mark(now)
				if mark == "" {
					mark = "-"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", kind, e.Thumbprint, e.NotAfter.UTC().Format("2006-01-02"),
					mark, e.Subject, e.URI)
			}
			return w.Flush()
		},
	}
	addPKIFlag(cmd, defaultPKIDir)
	return cmd
}

func newPKITrustCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust FILE|THUMBPRINT",
		Short: "Trust a server certificate (or a CA): a file, or a rejected certificate by thumbprint",
		Long: `trust moves a certificate from rejected/ to trusted/ by its SHA-1 or SHA-256
thumbprint (the one a refused connection logs), or copies a certificate file
(DER or PEM; a CA certificate then trusts every server it signs). It acts on
this node's store only: to trust a server on both nodes of a pair, pin it in
the config (servers[].trusted_certificates). A running engine uses it at its
next connection attempt.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := storeFor(a, cmd)
			if err != nil {
				return err
			}
			e, err := st.Trust(args[0])
			if err != nil {
				code := 1
				if errors.Is(err, pki.ErrNotFound) || errors.Is(err, pki.ErrInvalid) {
					code = 2
				}
				return &exitError{code: code, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "trusted %s %s (%s)\n", e.Thumbprint, e.Subject, e.Path)
			return nil
		},
	}
	addPKIFlag(cmd, defaultPKIDir)
	return cmd
}

func newPKIRejectCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reject THUMBPRINT",
		Short: "Stop trusting a certificate: move it from trusted/ to rejected/",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := storeFor(a, cmd)
			if err != nil {
				return err
			}
			e, err := st.Reject(args[0])
			if err != nil {
				code := 1
				if errors.Is(err, pki.ErrNotFound) {
					code = 2
				}
				return &exitError{code: code, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rejected %s %s (%s)\n", e.Thumbprint, e.Subject, e.Path)
			return nil
		},
	}
	addPKIFlag(cmd, defaultPKIDir)
	return cmd
}

func newPKICreateCmd(a *app) *cobra.Command {
	var (
		appURI string
		hosts  []string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create or renew this application's OPC UA certificate",
		Long: `create writes a new self-signed application instance certificate (RSA 2048,
SHA-256, five years, URI SAN = --app-uri) and key (mode 0600) into own/,
replacing any previous one. Servers that trusted the old certificate must
be given the new one (own/certs/uamirror.der).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := storeFor(a, cmd)
			if err != nil {
				return err
			}
			defURI, defHosts := defaultAppURI()
			if appURI == "" {
				appURI = defURI
			}
			if len(hosts) == 0 {
				hosts = defHosts
			}
			own, err := st.CreateOwn(appURI, hosts)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %s %s uri=%s not-after=%s\n", pki.Thumbprint(own.DER),
				own.Cert.Subject, own.AppURI, own.Cert.NotAfter.UTC().Format("2006-01-02"))
			return nil
		},
	}
	cmd.Flags().StringVar(&appURI, "app-uri", "", "ApplicationURI (URI SAN; default urn:<hostname>:uamirror)")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "`host` names and IPs for the SANs (repeat; default hostname, localhost, 127.0.0.1)")
	addPKIFlag(cmd, defaultPKIDir)
	return cmd
}

// pkiNote is appended to the long help of the commands that connect.
var pkiNote = strings.TrimSpace(`
Servers with a security policy other than None use the OPC UA certificate
store in --pki (default ./pki; for a pair node <--data>/pki). The own
certificate is created there on first start; a server certificate that is
not trusted is refused, copied to rejected/ and logged with the command that
trusts it.`)

// demoPin returns the SHA-1 thumbprint of the certificate a demo server
// presents, to pin it in the demo's config.
func demoPin(ctx context.Context, endpoint string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	eps, err := opcua.GetEndpoints(ctx, endpoint)
	if err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	for _, ep := range eps {
		if len(ep.ServerCertificate) > 0 {
			return pki.Thumbprint(ep.ServerCertificate), nil
		}
	}
	return "", fmt.Errorf("demo: %s presents no certificate", endpoint)
}
