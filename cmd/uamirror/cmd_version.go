package main

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/uamirror/uamirror/diagnostics/adminclient"
	"github.com/uamirror/uamirror/redundancy"
)

// softwareVersion is the version a member announces: main.version, with
// the commit it was built from when the build did not set one.
func softwareVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			if dirty {
				rev += "+dirty"
			}
			return "dev-" + rev
		}
	}
	return version
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the pair protocols and the OPC UA stack in use",
		Long: `Prints the software version, the pair protocols it speaks (a member runs
beside members whose protocol window overlaps its own: the previous release,
N−1; see docs/UPGRADE.md) and the OPC UA stack.`,
		Args: cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			stack := "unknown"
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, d := range bi.Deps {
					if d.Path == "github.com/gopcua/opcua" {
						stack = d.Version
					}
				}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "uamirror %s (gopcua %s)\n", softwareVersion(), stack)
			fmt.Fprintf(out, "pair protocol %d (runs beside protocols %d–%d; a member announcing no version speaks %d)\n",
				redundancy.ProtocolVersion, redundancy.MinProtocolVersion, redundancy.ProtocolVersion, redundancy.LegacyProtocol)
		},
	}
}

// memberVersionProbe asks a member's admin API (its status) for the
// version it announces, with the credentials the admin API forwards
// commands with. A member whose status carries no version is a release
// from before the negotiation: the zero VersionInfo.
func memberVersionProbe(sec memberSecurity) func(ctx context.Context, m redundancy.Member) (redundancy.VersionInfo, error) {
	return func(ctx context.Context, m redundancy.Member) (redundancy.VersionInfo, error) {
		if m.Admin == "" {
			return redundancy.VersionInfo{}, fmt.Errorf("member %s has no admin address", m.ID)
		}
		// A transport per probe (every few seconds), closed after it: no
		// idle connection stays behind in a shared one.
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		o := adminclient.Options{HTTPClient: &http.Client{Transport: tr}, Token: string(sec.admin.Token)}
		if sec.admin.ForwardTLS != nil {
			tr.TLSClientConfig, o.HTTPS = sec.admin.ForwardTLS(m.ID), true
		}
		st, err := adminclient.New(m.Admin, o).Status(ctx)
		if err != nil {
			return redundancy.VersionInfo{}, fmt.Errorf("version of member %s: %w", m.ID, err)
		}
		return st.Version, nil
	}
}
