package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/uamirror/uamirror/mapping"
)

func init() { extraCommands = append(extraCommands, newMappingsCmd) }

func newMappingsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mappings",
		Short: "Import and export item mappings (CSV ⇄ YAML)",
	}
	var into, out string
	imp := &cobra.Command{
		Use:   "import CSV",
		Short: "Read mappings from CSV and write them as YAML",
		Long: `import reads mappings from a CSV file (header documented in mapping/CSV.md),
gives every row without an id a new UUID, and writes YAML. With --into CONFIG
the mappings replace those of that config file, which is written back only
if the result validates (a bad import never replaces a good config).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			defer f.Close()
			ms, err := mapping.ReadCSV(f, args[0])
			if err != nil {
				printConfigErrors(cmd, err)
				return &exitError{code: 1}
			}
			mapping.AssignIDs(ms)
			cfg := &mapping.Config{Mappings: ms}
			target := out
			if into != "" {
				base, err := loadConfig(into)
				if err != nil {
					printConfigErrors(cmd, err)
					return &exitError{code: 1, err: fmt.Errorf("%s is not a valid config; nothing imported", into)}
				}
				base.Mappings = ms
				if err := base.Validate(); err != nil {
					printConfigErrors(cmd, err)
					return &exitError{code: 1, err: fmt.Errorf("the imported mappings do not validate against %s; it is unchanged", into)}
				}
				cfg = base
				if target == "" {
					target = into
				}
			}
			data, err := mapping.MarshalYAML(cfg)
			if err != nil {
				return err
			}
			return writeOut(cmd, target, data)
		},
	}
	imp.Flags().StringVar(&into, "into", "", "config file whose mappings are replaced (validated first)")
	imp.Flags().StringVarP(&out, "output", "o", "", "output file (default stdout, or the --into file)")

	var exOut string
	exp := &cobra.Command{
		Use:   "export CONFIG",
		Short: "Write the mappings of a config file as CSV",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := mapping.Load(args[0])
			if err != nil {
				printConfigErrors(cmd, err)
				return &exitError{code: 1}
			}
			var buf bytes.Buffer
			if err := mapping.WriteCSV(&buf, cfg.Mappings); err != nil {
				return err
			}
			return writeOut(cmd, exOut, buf.Bytes())
		},
	}
	exp.Flags().StringVarP(&exOut, "output", "o", "", "output file (default stdout)")
	apply := &cobra.Command{
		Use:   "apply CONFIG",
		Short: "Replace the pair's mirror config (on the active node; replicated)",
		Long: `apply validates CONFIG locally and sends it to a node's admin API. The active
node replicates it to the standby; a standby refuses it and names the active.
A file that does not validate changes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := loadConfig(args[0]); err != nil {
				printConfigErrors(cmd, err)
				return &exitError{code: 1, err: errBadConfig}
			}
			d, err := applyMappings(cmd.Context(), nodeURL(cmd), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "applied: %s\n", d)
			return nil
		},
	}
	nodeFlag(apply, a)
	cmd.AddCommand(imp, exp, apply)
	return cmd
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
