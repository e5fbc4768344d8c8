package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

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

func init() {
	extraCommands = append(extraCommands, newSwitchoverCmd, newStatusCmd, newEventsCmd)
}

func nodeFlag(cmd *cobra.Command, a *app) {
	cmd.Flags().String("node", defaultNode, "admin API of the node to ask (URL; env UAMIRROR_NODE)")
	addCredFlags(cmd) // cmd_pairctl_auth.go
}

// nodeURL is --node if given, else $UAMIRROR_NODE, else the local default.
// (Several commands share the flag name, so it is read per command rather
// than through one viper key.)
func nodeURL(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("node"); f != nil && f.Changed {
		return f.Value.String()
	}
	if v := os.Getenv("UAMIRROR_NODE"); v != "" {
		return v
	}
	return defaultNode
}

// call does one admin API request and decodes the JSON answer into out.
// A non-2xx answer becomes an error carrying the node's message.
func call(ctx context.Context, node, method, path string, body []byte, out any) (int, error) {
	creds := credsFrom(ctx)
	if !strings.HasPrefix(node, "http://") && !strings.HasPrefix(node, "https://") {
		if creds.tls {
			node = "https://" + node
		} else {
			node = "http://" + node
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(node, "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, &exitError{code: exitUsage, err: err}
	}
	if creds.token != "" {
		req.Header.Set("Authorization", "Bearer "+creds.token)
	}
	res, err := creds.client.Do(req)
	if err != nil {
		return 0, &exitError{code: exitNoNode, err: fmt.Errorf("node %s: %w", node, err)}
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if res.StatusCode/100 != 2 {
		var e struct {
			Error  string   `json:"error"`
			Errors []string `json:"errors"`
		}
		_ = json.Unmarshal(data, &e)
		msg := e.Error
		if msg == "" {
			msg = strings.TrimSpace(string(data))
		}
		for _, s := range e.Errors {
			msg += "\n  " + s
		}
		if res.StatusCode == http.StatusUnauthorized || (res.StatusCode == http.StatusForbidden && strings.HasPrefix(msg, "Forbidden: ")) {
			return res.StatusCode, &exitError{code: exitUnauthorized, err: fmt.Errorf("node %s: %s (see --token-file, --cert)", node, msg)}
		}
		return res.StatusCode, fmt.Errorf("%s", msg)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return res.StatusCode, fmt.Errorf("node answer: %w", err)
		}
	}
	return res.StatusCode, nil
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
			body, _ := json.Marshal(map[string]any{"to": to, "force": force})
			var res struct {
				Warning string            `json:"warning"`
				Status  redundancy.Status `json:"status"`
			}
			code, err := call(cmd.Context(), nodeURL(cmd), http.MethodPost, "/api/v1/switchover", body, &res)
			if err != nil {
				if code == http.StatusConflict && strings.Contains(err.Error(), "not ready") {
					return &exitError{code: exitNotReady, err: err}
				}
				if _, ok := err.(*exitError); ok {
					return err
				}
				return &exitError{code: exitFailed, err: err}
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
			var st redundancy.Status
			if _, err := call(cmd.Context(), nodeURL(cmd), http.MethodGet, "/api/v1/status", nil, &st); err != nil {
				if _, ok := err.(*exitError); ok {
					return err
				}
				return &exitError{code: exitFailed, err: err}
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
		st.Node, strings.ToUpper(st.Role), st.Active, st.Epoch, st.Policy, st.Ready)
	if st.LocalDiff != "" {
		fmt.Fprintln(w, "WARNING:", st.LocalDiff)
	}
	if strings.HasPrefix(st.PairSecurity, "INSECURE") {
		fmt.Fprintln(w, "WARNING: pair", st.PairSecurity)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tROLE\tRAFT\tADMIN\tLINK")
	for _, m := range st.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.ID, m.Role, m.Raft, m.Admin, m.Link)
	}
	tw.Flush()
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
	if st.Role == "active" {
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
			var res struct {
				Events []redundancy.Event `json:"events"`
			}
			if _, err := call(cmd.Context(), nodeURL(cmd), http.MethodGet, "/api/v1/events", nil, &res); err != nil {
				if _, ok := err.(*exitError); ok {
					return err
				}
				return &exitError{code: exitFailed, err: err}
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res.Events)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tFROM\tTO\tEPOCH\tREASON\tGAP\tDETAIL")
			for _, e := range res.Events {
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

// applyMappings sends a mapping file to a node (PUT /api/v1/mappings).
func applyMappings(ctx context.Context, node, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &exitError{code: exitUsage, err: err}
	}
	var res struct {
		Delta string `json:"delta"`
	}
	if _, err := call(ctx, node, http.MethodPut, "/api/v1/mappings?file="+url.QueryEscape(path), b, &res); err != nil {
		if _, ok := err.(*exitError); ok {
			return "", err
		}
		return "", &exitError{code: exitFailed, err: err}
	}
	return res.Delta, nil
}
