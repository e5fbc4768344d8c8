package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/drill"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/redundancy"
)

// newDrillCmd is `uamirror drill`: a planned switchover measured from the
// targets' own view (package drill).
func newDrillCmd(a *app) *cobra.Command {
	o := drill.Default()
	var output string
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "A planned switchover, measured from the targets: gap and anomalies per target server",
		Long: `drill samples a share of the mapped targets on every target server (its own
OPC UA subscription, fast publishing), asks the pair for a planned
switchover, samples on for --settle and prints per target server the gap
(the longest time without a new value across the handover, by the target
server's clock) and every Bad/Uncertain or default value, value older than
the one before it, and duplicate. It is refused (exit 4) when the standby
is not READY, and exits 1 when the verdict is FAIL.

The target servers are sampled with security None and anonymously.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cl := adminClient(ctx, nodeURL(cmd))
			st, err := cl.Status(ctx)
			if err != nil {
				return exitFor(err)
			}
			if why := drillRefusal(st); why != "" {
				return &exitError{code: exitNotReady, err: fmt.Errorf("drill refused: %s: %w", why, redundancy.ErrStandbyNotReady)}
			}
			view, err := cl.Config(ctx)
			if err != nil {
				return exitFor(err)
			}
			cfg, err := mapping.ParseYAML([]byte(view.YAML), "pair config")
			if err != nil {
				return &exitError{code: exitFailed, err: fmt.Errorf("the pair's config: %w", err)}
			}
			o.Logger = a.logger.Named("drill")
			res, err := drill.Run(ctx, cfg, o, func(ctx context.Context) error {
				_, err := cl.Switchover(ctx, diagnostics.SwitchoverRequest{})
				return err
			})
			if errors.Is(err, redundancy.ErrStandbyNotReady) {
				return &exitError{code: exitNotReady, err: err}
			}
			if err != nil {
				return exitFor(err)
			}
			after, err := cl.Status(ctx)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "WARNING: status after the drill:", err)
			}
			rec := drillRecord(res, st.Active, after)
			for _, u := range drillNodes(nodeURL(cmd), st) {
				if err := adminClient(ctx, u).Do(ctx, http.MethodPost, "/api/v1/drill", mustJSON(rec), nil); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "WARNING: journaling the drill on %s: %v\n", u, err)
				}
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else if err := res.WriteTable(out); err != nil {
				return err
			}
			if !res.Pass {
				return &exitError{code: exitFailed, err: errors.New("drill FAIL")}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Float64Var(&o.Share, "share", o.Share, "share of the mapped targets sampled per target server, (0, 1]")
	f.DurationVar(&o.PublishingInterval, "publishing-interval", o.PublishingInterval, "publishing interval of the sampling subscriptions")
	f.DurationVar(&o.Lead, "lead", o.Lead, "sampling before the switchover")
	f.DurationVar(&o.Settle, "settle", o.Settle, "sampling after the switchover answered")
	f.DurationVar(&o.MaxGap, "max-gap", o.MaxGap, "the longest gap that passes")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	nodeFlag(cmd, a)
	return cmd
}

// drillRefusal says why the pair seen in st cannot be drilled ("": it
// can): a drill is a planned switchover and needs a READY standby.
func drillRefusal(st redundancy.Status) string {
	switch {
	case st.Role == redundancy.PairActive && !st.StandbyReady:
		return "the standby is not READY"
	case st.Role == redundancy.PairStandby && !st.Ready:
		return fmt.Sprintf("standby %s is not READY (%s)", st.Node, st.NotReady)
	case st.Role != redundancy.PairActive && st.Role != redundancy.PairStandby:
		return fmt.Sprintf("node %s is %s, not a member of a running pair", st.Node, st.Role)
	}
	return ""
}

// drillRecord is the journal record of a drill: from the active before,
// to the active after (under its epoch), per target the figures.
func drillRecord(res drill.Result, from string, after redundancy.Status) redundancy.DrillRecord {
	rec := redundancy.DrillRecord{Time: res.End, Switch: res.Switch, From: from, To: after.Active, Epoch: after.Epoch, Pass: res.Pass}
	for _, t := range res.Targets {
		dt := redundancy.DrillTarget{Server: t.Server, UsualMS: ms(t.Usual), Sampled: t.Sampled,
			Anomalies: t.Anomalies(), Pass: t.Pass, Error: t.Err}
		if t.Err == "" && !t.NoChange {
			g := ms(t.Gap)
			dt.GapMS = &g
		}
		rec.Targets = append(rec.Targets, dt)
	}
	return rec
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	return b
}

// drillNodes are the admin APIs a drill is journaled on: the node asked
// and every other bridge node of the pair (same scheme), each once.
func drillNodes(node string, st redundancy.Status) []string {
	out := []string{node}
	u, err := url.Parse(node)
	if err != nil {
		return out
	}
	for _, m := range st.Members {
		if m.Role != redundancy.RoleNode || m.Admin == "" || m.Admin == u.Host {
			continue
		}
		out = append(out, u.Scheme+"://"+m.Admin)
	}
	return out
}
