package main

import "github.com/spf13/cobra"

func init() {
	extraCommands = append(extraCommands, newPKICmd)
}

// pkiSubcommands are the `uamirror pki` subcommands, registered by the files
// that define them in their init (the OPC UA certificate store commands and
// the pair's TLS commands live in separate files).
var pkiSubcommands []func(*app) *cobra.Command

func newPKICmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pki",
		Short: "Certificates: the OPC UA application certificate and trust lists, the pair's TLS",
		Args:  cobra.NoArgs,
	}
	for _, c := range pkiSubcommands {
		cmd.AddCommand(c(a))
	}
	return cmd
}
