package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/diagnostics/adminclient"
	"github.com/uamirror/uamirror/redundancy"
)

// Exit codes of the operator commands, for scripts.
const (
	exitOK       = 0
	exitFailed   = 1 // the node refused or the request failed
	exitUsage    = 2
	exitNoNode   = 3 // the node could not be reached
	exitNotReady = 4 // standby not ready (switchover without --force)
	// exitUnauthorized = 5 (cmd_pairctl_auth.go): the node refused the credentials
)

const defaultNode = "http://127.0.0.1:7201"

func nodeFlag(cmd *cobra.Command, a *app) {
	cmd.Flags().String("node", defaultNode, "admin API of the node to ask (URL)")
	addCredFlags(cmd) // cmd_pairctl_auth.go
}

// nodeURL is --node (or UAMIRROR_NODE, see env.go), else the local default.
func nodeURL(cmd *cobra.Command) string {
	if v, _ := cmd.Flags().GetString("node"); v != "" {
		return v
	}
	return defaultNode
}

// adminClient returns the admin API client of node with the command's
// credentials (addCredFlags).
func adminClient(ctx context.Context, node string) *adminclient.Client {
	c := credsFrom(ctx)
	return adminclient.New(node, adminclient.Options{HTTPClient: c.client, Token: c.token, HTTPS: c.tls})
}

// exitFor gives an admin API error its exit code: 3 when the node could
// not be reached, 5 when it refused the credentials, 2 for a bad --node,
// else 1.
func exitFor(err error) error {
	var ae *adminclient.APIError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, adminclient.ErrUnreachable):
		return &exitError{code: exitNoNode, err: err}
	case errors.Is(err, adminclient.ErrUnauthorized) && errors.As(err, &ae):
		return &exitError{code: exitUnauthorized, err: fmt.Errorf("node %s: %w (see --token-file, --cert)", ae.Node, err)}
	case errors.Is(err, adminclient.ErrBadURL):
		return &exitError{code: exitUsage, err: err}
	}
	return &exitError{code: exitFailed, err: err}
}

func newSwitchoverCmd(a *app) *cobra.Command {
	var to string
	var force bool
	cmd := &cobra.Command{
		Use:   "switchover",
		Short: "Hand the active role to the standby (through any node)",
		Long: `switchover asks the pair to make the standby active. Any node accepts it and
forwards it to the active. It is refused while the standby is not READY
(exit 4) unless --force. With two members and the active gone (no quorum),
--force on the survivor promotes it alone — only when the other node is
really down.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := adminClient(cmd.Context(), nodeURL(cmd)).Switchover(cmd.Context(), diagnostics.SwitchoverRequest{To: to, Force: force})
			if errors.Is(err, redundancy.ErrStandbyNotReady) {
				return &exitError{code: exitNotReady, err: err}
			}
			if err != nil {
				return exitFor(err)
			}
			if res.Warning != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "WARNING:", res.Warning)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "switchover done")
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "node to make active (default: the other node)")
	cmd.Flags().BoolVar(&force, "force", false, "switch even if the standby is not READY, or promote a lone survivor")
	nodeFlag(cmd, a)
	return cmd
}

func newStatusCmd(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the pair: members, who is active, servers, readiness",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := adminClient(cmd.Context(), nodeURL(cmd)).Status(cmd.Context())
			if err != nil {
				return exitFor(err)
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	nodeFlag(cmd, a)
	return cmd
}

func printStatus(w io.Writer, st redundancy.Status) {
	fmt.Fprintf(w, "node %s: %s   active: %s   epoch: %d   policy: %s   ready: %v\n",
		st.Node, strings.ToUpper(string(st.Role)), st.Active, st.Epoch, st.Policy, st.Ready)
	if st.LocalDiff != "" {
		fmt.Fprintln(w, "WARNING:", st.LocalDiff)
	}
	if strings.HasPrefix(st.PairSecurity, "INSECURE") {
		fmt.Fprintln(w, "WARNING: pair", st.PairSecurity)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tROLE\tRAFT\tADMIN\tLINK\tVERSION")
	for _, m := range st.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Role, m.Raft, m.Admin, m.Link, memberVersion(m.Version))
	}
	tw.Flush()
	printVersions(w, st)
	if st.Health != nil {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVER\tSTATE\tSERVICELEVEL\tENDPOINT")
		for _, s := range st.Health.Servers {
			state := "up"
			if !s.Up {
				state = "DOWN"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", s.Name, state, s.ServiceLevel, s.Endpoint)
		}
		tw.Flush()
	}
	switch {
	case st.NotReady != "":
		fmt.Fprintln(w, "not ready:", st.NotReady)
	case st.Health != nil && !st.Health.Ready && st.Health.Reason != "":
		fmt.Fprintln(w, "not ready:", st.Health.Reason)
	}
	if st.DataDir != "" && st.DataDir != st.NotReady {
		fmt.Fprintln(w, "WARNING:", st.DataDir)
	}
	if st.Health != nil {
		for _, wn := range st.Health.Warnings {
			fmt.Fprintln(w, "WARNING:", wn)
		}
	}
	if st.Role == redundancy.PairActive {
		fmt.Fprintf(w, "standby ready: %v\n", st.StandbyReady)
	}
}

func newEventsCmd(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show the switchover journal",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			events, err := adminClient(cmd.Context(), nodeURL(cmd)).Events(cmd.Context())
			if err != nil {
				return exitFor(err)
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(events)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tFROM\tTO\tEPOCH\tREASON\tGAP\tDETAIL")
			for _, e := range events {
				gap := "-"
				if e.GapMS != nil {
					gap = fmt.Sprintf("%.0f ms", *e.GapMS)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), e.From, e.To, e.Epoch, e.Reason, gap, e.Detail)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	nodeFlag(cmd, a)
	return cmd
}

// memberVersion is a member's version for the status table.
func memberVersion(v redundancy.MemberVersion) string {
	switch {
	case v.Source == "unknown" || v.Source == "" && v.Protocol == 0:
		return "? (not heard yet)"
	case v.MinProtocol == v.Protocol:
		return fmt.Sprintf("%s protocol %d", v.Version, v.Protocol)
	}
	return fmt.Sprintf("%s protocol %d-%d", v.Version, v.MinProtocol, v.Protocol)
}

// printVersions prints the pair protocol line and a refused version.
func printVersions(w io.Writer, st redundancy.Status) {
	if st.Version.Protocol == 0 {
		fmt.Fprintln(w, "pair protocol: not announced (this node runs v0.1.0 or older)")
		return
	}
	line := fmt.Sprintf("pair protocol: %d (this node %s)", st.PairProtocol, st.Version)
	if st.PairProtocol < st.Version.Protocol {
		line += "; mixed versions: new records wait until every member is upgraded"
	}
	fmt.Fprintln(w, line)
	if st.VersionProblem != "" {
		fmt.Fprintln(w, "WARNING:", st.VersionProblem)
	}
}
