package main

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/pki"
)

// opcuaOperator is the OPC UA user name that may call Failover; its
// password is the admin token.
const opcuaOperator = "operator"

func addOPCUAFlags(fl *pflag.FlagSet) {
	fl.Bool("opcua-insecure", false, "serve --opcua on a non-loopback address without security: anyone who reaches it may call Failover (not recommended)")
}

// opcuaConfig returns the security part of the --opcua endpoint's
// config (issue 12.4). With an admin token the endpoint is secured: only
// Sign and SignAndEncrypt endpoints with the member's OPC UA certificate
// (<data>/opcua/, created at first start with the URI
// urn:uamirror:pair:<id>), anonymous sessions may read, and Failover
// needs the user "operator" with the admin token as password. Without a
// token a non-loopback address is refused unless --opcua-insecure.
func opcuaConfig(a *app, cmd *cobra.Command, f pairFlags, sec memberSecurity, log *zap.Logger) (diagnostics.UAServerConfig, error) {
	_ = a.v.BindPFlag("opcua-insecure", cmd.Flags().Lookup("opcua-insecure"))
	cfg := diagnostics.UAServerConfig{Addr: f.opcua, Version: softwareVersion(), Insecure: a.v.GetBool("opcua-insecure")}
	host, _, err := net.SplitHostPort(f.opcua)
	if err != nil {
		return cfg, fmt.Errorf("--opcua %s: %w", f.opcua, err)
	}
	if len(sec.admin.Token) == 0 {
		if cfg.Insecure {
			log.Warn("--opcua-insecure: the OPC UA endpoint has no security; anyone who reaches it may call Failover",
				zap.String("opcua", f.opcua))
		}
		return cfg, nil
	}
	hosts := []string{"127.0.0.1", "localhost"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		hosts = append(hosts, host)
	}
	der, key, err := opcuaCertificate(f.data, diagnostics.UAServerURIPrefix+f.id, hosts, log)
	if err != nil {
		return cfg, fmt.Errorf("--opcua certificate: %w", err)
	}
	cfg.Security = &diagnostics.UASecurity{Certificate: der, Key: key,
		Operators: map[string]string{opcuaOperator: string(sec.admin.Token)}}
	return cfg, nil
}

// opcuaCertificate loads the endpoint's certificate from <data>/opcua, or
// creates it there (in memory only when there is no data directory).
func opcuaCertificate(data, uri string, hosts []string, log *zap.Logger) ([]byte, *rsa.PrivateKey, error) {
	gen := func() ([]byte, *rsa.PrivateKey, error) {
		return pki.GenerateCertificate(pki.CertTemplate{AppURI: uri, Hosts: hosts, CommonName: "uamirror " + uri,
			NotAfter: time.Now().AddDate(5, 0, 0)})
	}
	if data == "" {
		log.Warn("no --data: the OPC UA endpoint's certificate is new at every start")
		return gen()
	}
	dir := filepath.Join(data, "opcua")
	certFile, keyFile := filepath.Join(dir, "server.der"), filepath.Join(dir, "server.key")
	der, key, err := pki.ReadKeyPair(certFile, keyFile)
	if err == nil {
		return der, key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	if der, key, err = gen(); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(certFile, der, 0o644); err != nil {
		return nil, nil, err
	}
	log.Info("created the OPC UA endpoint's certificate", zap.String("file", certFile),
		zap.String("thumbprint", pki.Thumbprint(der)), zap.String("application_uri", uri))
	return der, key, nil
}
