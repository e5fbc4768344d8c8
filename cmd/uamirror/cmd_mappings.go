package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/diagnostics/adminclient"
	"github.com/uamirror/uamirror/mapping"
)

func newMappingsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mappings",
		Short: "Mappings: import and export (CSV ⇄ YAML), apply to a pair, list the running ones",
	}
	var into, out string
	var impConfirm bool
	var impShare float64
	imp := &cobra.Command{
		Use:   "import CSV",
		Short: "Read mappings from CSV and write them as YAML",
		Long: `import reads mappings from a CSV file (header documented in mapping/CSV.md),
gives every row without an id a new UUID, and writes YAML. With --into CONFIG
the mappings replace those of that config file, which is written back only
if the result validates (a bad import never replaces a good config); the
file's comments and layout outside its mappings are kept. An import that
would remove every mapping of the file (a header-only CSV) or more than
--max-remove-share of them needs --confirm.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var (
				raw  []byte
				base *mapping.Config
				err  error
			)
			if into != "" {
				if raw, err = os.ReadFile(into); err != nil {
					return &exitError{code: 2, err: err}
				}
				if base, err = mapping.ParseAndValidate(raw, into); err != nil {
					printConfigErrors(cmd, err)
					return &exitError{code: 1, err: fmt.Errorf("%s is not a valid config; nothing imported", into)}
				}
			}
			f, err := os.Open(args[0])
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			defer f.Close()
			var keep []mapping.Mapping
			if base != nil {
				keep = base.Mappings
			}
			ms, err := mapping.ReadCSVInto(f, args[0], keep)
			if err != nil {
				printConfigErrors(cmd, err)
				return &exitError{code: 1}
			}
			target := out
			if into == "" {
				data, err := mapping.MarshalYAML(&mapping.Config{Mappings: ms})
				if err != nil {
					return err
				}
				return writeOut(cmd, target, data)
			}
			next := *base
			next.Mappings = ms
			if err := next.Validate(); err != nil {
				printConfigErrors(cmd, err)
				return &exitError{code: 1, err: fmt.Errorf("the imported mappings do not validate against %s; it is unchanged", into)}
			}
			if !impConfirm {
				if err := mapping.CheckRemoval(base, &next, impShare); err != nil {
					return &exitError{code: 1, err: fmt.Errorf("%w; %s is unchanged (confirm with --confirm)", err, into)}
				}
			}
			data, err := mapping.ReplaceMappingsYAML(raw, ms)
			if err != nil {
				return err
			}
			if _, err := mapping.ParseAndValidate(data, into); err != nil {
				printConfigErrors(cmd, err)
				return &exitError{code: 1, err: fmt.Errorf("the merged config does not validate; %s is unchanged", into)}
			}
			if target == "" {
				target = into
			}
			return writeOut(cmd, target, data)
		},
	}
	imp.Flags().StringVar(&into, "into", "", "config file whose mappings are replaced (validated first)")
	imp.Flags().StringVarP(&out, "output", "o", "", "output file (default stdout, or the --into file)")
	imp.Flags().BoolVar(&impConfirm, "confirm", false, "allow an import that removes every mapping of the --into file, or more than --max-remove-share of them")
	imp.Flags().Float64Var(&impShare, "max-remove-share", mapping.DefaultMaxRemoveShare, "share of the --into file's mappings an import may remove without --confirm (0 < x ≤ 1)")

	var exOut, exFormat string
	exp := &cobra.Command{
		Use:   "export [CONFIG]",
		Short: "Write the mappings as CSV: of a config file, or of the pair's running config",
		Long: `export writes the mappings of CONFIG as CSV. Without CONFIG it asks a node's
admin API (--node) for the pair's replicated config, the one that runs;
--format yaml writes that whole config instead of its mappings.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if exFormat != "csv" && exFormat != "yaml" {
				return &exitError{code: exitUsage, err: fmt.Errorf("--format %q: want csv or yaml", exFormat)}
			}
			var cfg *mapping.Config
			if len(args) == 1 {
				c, err := mapping.Load(args[0])
				if err != nil {
					printConfigErrors(cmd, err)
					return &exitError{code: 1}
				}
				cfg = c
			} else {
				node := nodeURL(cmd)
				view, err := adminClient(cmd.Context(), node).Config(cmd.Context())
				if err != nil {
					return exitFor(err)
				}
				if exFormat == "yaml" {
					return writeOut(cmd, exOut, []byte(view.YAML))
				}
				c, err := mapping.ParseYAML([]byte(view.YAML), node+"/api/v1/config")
				if err != nil {
					return &exitError{code: exitFailed, err: fmt.Errorf("the node's config does not parse: %w", err)}
				}
				cfg = c
			}
			if exFormat == "yaml" {
				data, err := mapping.MarshalYAML(cfg)
				if err != nil {
					return err
				}
				return writeOut(cmd, exOut, data)
			}
			var buf bytes.Buffer
			if err := mapping.WriteCSV(&buf, cfg.Mappings); err != nil {
				return err
			}
			return writeOut(cmd, exOut, buf.Bytes())
		},
	}
	exp.Flags().StringVar(&exFormat, "format", "csv", "csv (the mappings) or yaml (the whole config)")
	nodeFlag(exp, a)
	exp.Flags().StringVarP(&exOut, "output", "o", "", "output file (default stdout)")
	var confirm bool
	var share float64
	apply := &cobra.Command{
		Use:   "apply CONFIG",
		Short: "Replace the pair's mirror config (on the active node; replicated)",
		Long: `apply validates CONFIG locally and sends it to a node's admin API. The active
node replicates it to the standby; a standby refuses it and names the active.
A file that does not validate, or that the engine cannot be built from,
changes nothing on either node. The standby switches to the new config
first; the active follows once the standby reports it READY.

An apply that removes every running mapping (an empty "mappings: []") or
more than --max-remove-share of them is refused unless --confirm.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := loadConfig(args[0]); err != nil {
				printConfigErrors(cmd, err)
				return &exitError{code: 1, err: errBadConfig}
			}
			if share <= 0 || share > 1 {
				return &exitError{code: exitUsage, err: fmt.Errorf("--max-remove-share %g: want 0 < x ≤ 1", share)}
			}
			d, err := applyMappingsWith(cmd.Context(), nodeURL(cmd), args[0],
				adminclient.ApplyParams{Confirm: confirm, MaxRemoveShare: share})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "applied: %s\n", d)
			return nil
		},
	}
	nodeFlag(apply, a)
	apply.Flags().BoolVar(&confirm, "confirm", false, "allow an apply that removes every running mapping, or more than --max-remove-share of them")
	apply.Flags().Float64Var(&share, "max-remove-share", mapping.DefaultMaxRemoveShare, "share of the running mappings an apply may remove without --confirm (0 < x ≤ 1)")
	cmd.AddCommand(imp, exp, apply, newMappingsListCmd(a))
	return cmd
}

func newMappingsListCmd(a *app) *cobra.Command {
	var state, server, output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the running mappings and their state (from a node's admin API)",
		Long: `list asks a node's admin API (GET /api/v1/mappings) for the state of every
mapping flow its engine runs: state and reason, last value and its type,
source timestamp and the last value written. A "both" mapping has two flows
(forward and reverse). Filter with --state (ok, held, bad, quarantined,
pending, disabled; comma-separated for several) and --server (flows from or
to that server).

  uamirror mappings list --state bad,quarantined
  uamirror mappings list --server scada -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return &exitError{code: exitUsage, err: fmt.Errorf("--output %q: want table or json", output)}
			}
			items, err := fetchMappings(cmd.Context(), nodeURL(cmd), state, server)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(items)
			}
			return printMappings(cmd.OutOrStdout(), items)
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only flows in this state (ok, held, bad, quarantined, pending, disabled; comma-separated)")
	cmd.Flags().StringVar(&server, "server", "", "only flows from or to this server")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	nodeFlag(cmd, a)
	return cmd
}

// fetchMappings reads every page of GET /api/v1/mappings.
func fetchMappings(ctx context.Context, node, state, server string) ([]diagnostics.MappingItem, error) {
	items := []diagnostics.MappingItem{}
	c := adminClient(ctx, node)
	for page := 1; ; page++ {
		res, err := c.Mappings(ctx, adminclient.MappingQuery{State: state, Server: server, Page: page, PerPage: 1000})
		var ae *adminclient.APIError
		if errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest {
			return nil, &exitError{code: exitUsage, err: err}
		}
		if err != nil {
			return nil, exitFor(err)
		}
		items = append(items, res.Items...)
		if page >= res.Pages || len(res.Items) == 0 {
			return items, nil
		}
	}
}

// printMappings prints mapping flows as a table.
func printMappings(w io.Writer, items []diagnostics.MappingItem) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tID\tFLOW\tSTATE\tVALUE\tTYPE\tSOURCE TIME\tWRITTEN\tREASON")
	for _, it := range items {
		flow := it.From + " → " + it.To
		if it.Reverse {
			flow += " (rev)"
		}
		state := it.State
		if it.HeldSince != nil {
			state += fmt.Sprintf(" %.0fs", it.HeldForS) // held, with its age
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.Index, it.ID, flow, state,
			cell(it.Value), dash(it.Type), stamp(it.SourceTimestamp), cell(it.Written), dash(it.Reason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d flows\n", len(items))
	return err
}

// cell renders a JSON value on one short line.
func cell(v any) string {
	if v == nil {
		return "-"
	}
	var s string
	if str, ok := v.(string); ok {
		s = strconv.Quote(str)
	} else {
		b, _ := json.Marshal(v)
		s = string(b)
	}
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05.000")
}

// applyMappingsWith sends a mapping file to a node (PUT
// /api/v1/mappings) with the operator's choices.
func applyMappingsWith(ctx context.Context, node, path string, p adminclient.ApplyParams) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &exitError{code: exitUsage, err: err}
	}
	delta, err := adminClient(ctx, node).ApplyMappingsWith(ctx, path, b, p)
	if err != nil {
		return "", exitFor(err)
	}
	return delta, nil
}

// writeOut writes data to path atomically (temp file + rename), or to
// stdout when path is empty.
func writeOut(cmd *cobra.Command, path string, data []byte) error {
	if path == "" {
		_, err := cmd.OutOrStdout().Write(data)
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
