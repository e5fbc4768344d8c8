package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/uamirror/uamirror/mapping"
)

func newValidateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check config files and print every error with file:line",
		Long: `validate parses each config file strictly (unknown keys are errors) and
checks it as a whole: unknown servers, invalid node ids, two mappings writing
one target, loops, bad ranges. It prints every error, one per line, as
file:line: field: message (value "…"), and exits 1 if there was any.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			for _, path := range args {
				cfg, err := loadConfig(path)
				if err != nil {
					bad += printConfigErrors(cmd, err)
					continue
				}
				for _, w := range cfg.Warnings() {
					fmt.Fprintln(cmd.ErrOrStderr(), w)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d servers, %d mappings, hash %.12s)\n",
					path, len(cfg.Servers), len(cfg.Mappings), cfg.Hash())
			}
			if bad > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d error(s)", bad)}
			}
			return nil
		},
	}
}

// loadConfig reads and validates a config file, reporting every problem
// in one run. Errors are mapping.Errors where they concern the content.
func loadConfig(path string) (*mapping.Config, error) {
	return mapping.LoadAndValidate(path)
}

// printConfigErrors prints each error of a config on its own line to
// stderr and returns how many there were.
func printConfigErrors(cmd *cobra.Command, err error) int {
	var es mapping.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			fmt.Fprintln(cmd.ErrOrStderr(), e.Error())
		}
		return len(es)
	}
	fmt.Fprintln(cmd.ErrOrStderr(), err.Error())
	return 1
}
