package main

import (
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/uamirror/uamirror/pki"
)

func newPKIInitPairCmd(*app) *cobra.Command {
	var out string
	var members, arbiters []string
	var days int
	cmd := &cobra.Command{
		Use:   "init-pair",
		Short: "Create the pair's CA and a TLS certificate and key for each member",
		Long: `init-pair creates a CA for the pair and, for each member, an ECDSA P-256 key
and a certificate signed by it, with the member's hosts as subject alternative
names and urn:uamirror:member:<id> as its identity:

  uamirror pki init-pair --out pair-pki \
    --member a=10.0.0.1,node-a.plant --member b=10.0.0.2 --arbiter arb=10.0.0.3

--member and --arbiter also take the node's own --member syntax
(id=a,role=node,raft=10.0.0.1:7001,…): the hosts are then those of its
addresses.

It writes DIR/ca/ (ca.crt, and ca.key, which stays with you: it signs
new certificates and is never copied to a node) and DIR/<id>/ (ca.crt,
<id>.crt, <id>.key) for each member: copy that directory to that member
only. Keys are written 0600; existing files are never overwritten.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return &exitError{code: exitUsage, err: fmt.Errorf("--out DIR is required")}
			}
			var specs []pki.PairMemberSpec
			for _, s := range append(slices.Clone(members), arbiters...) {
				sp, err := parsePKIMember(s)
				if err != nil {
					return &exitError{code: exitUsage, err: err}
				}
				specs = append(specs, sp)
			}
			if len(members) != 2 {
				return &exitError{code: exitUsage, err: fmt.Errorf("a pair has 2 nodes: give --member twice (got %d)", len(members))}
			}
			files, err := pki.InitPair(out, specs, time.Duration(days)*24*time.Hour)
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "pair CA:  %s\n          %s  (keep it here, offline if you can: never copy it to a node)\n\n", files.CACert, files.CAKey)
			for _, sp := range specs {
				f := files.Members[sp.ID]
				fp := ""
				if b, err := os.ReadFile(f.Cert); err == nil {
					fp = certFingerprint(b)
				}
				fmt.Fprintf(w, "member %s (hosts %s): copy %s/ to %s, then start it with\n", sp.ID, strings.Join(sp.Hosts, ","), f.Dir, sp.ID)
				fmt.Fprintf(w, "  --tls-ca %s --tls-cert %s --tls-key %s\n", filepath.Base(f.CA), filepath.Base(f.Cert), filepath.Base(f.Key))
				if fp != "" {
					fmt.Fprintf(w, "  (certificate sha256 %s, for --tls-pin)\n", fp)
				}
			}
			fmt.Fprintln(w, "\nAdmin API token (commands need it): e.g.  openssl rand -hex 32 > admin.token; chmod 600 admin.token")
			fmt.Fprintln(w, "and --admin-token-file admin.token on each member and for `uamirror switchover --token-file`.")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&out, "out", "", "directory to create the files in")
	fl.StringArrayVar(&members, "member", nil, "a bridge `node`: ID=HOST[,HOST…] or the node's id=…,raft=…,peer=…,admin=… syntax (twice)")
	fl.StringArrayVar(&arbiters, "arbiter", nil, "the `arbiter`: ID=HOST[,HOST…] (optional)")
	fl.IntVar(&days, "days", 825, "validity of the member certificates in days")
	return cmd
}

// parsePKIMember parses ID=HOST[,HOST…] or the node's --member syntax.
func parsePKIMember(s string) (pki.PairMemberSpec, error) {
	if strings.Contains(s, "id=") {
		m, err := parseMember(s)
		if err != nil {
			return pki.PairMemberSpec{}, err
		}
		sp := pki.PairMemberSpec{ID: m.ID}
		for _, a := range []string{m.Raft, m.Peer, m.Admin} {
			if h, _, err := net.SplitHostPort(a); err == nil && h != "" && !slices.Contains(sp.Hosts, h) {
				sp.Hosts = append(sp.Hosts, h)
			}
		}
		return sp, validPKIMember(sp, s)
	}
	id, hosts, ok := strings.Cut(s, "=")
	if !ok {
		return pki.PairMemberSpec{}, fmt.Errorf("member %q: want ID=HOST[,HOST…]", s)
	}
	sp := pki.PairMemberSpec{ID: strings.TrimSpace(id)}
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			sp.Hosts = append(sp.Hosts, h)
		}
	}
	return sp, validPKIMember(sp, s)
}

func validPKIMember(sp pki.PairMemberSpec, s string) error {
	if sp.ID == "" || len(sp.Hosts) == 0 {
		return fmt.Errorf("member %q: needs an id and at least one host", s)
	}
	return nil
}

// certFingerprint returns the SHA-256 fingerprint of a PEM certificate.
func certFingerprint(pemBytes []byte) string {
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		return ""
	}
	return pki.PairFingerprint(b.Bytes)
}
