package main

import (
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
)

func newRunCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the mirror engine on a config file (a single node)",
		Long: `run loads and validates the config (a bad file never starts), connects to every
server, subscribes to the mapped sources and writes the targets until
interrupted (SIGINT/SIGTERM).

` + pkiNote,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := a.v.GetString("config")
			if path == "" {
				return &exitError{code: 2, err: errNoConfig}
			}
			cfg, err := loadConfig(path)
			if err != nil {
				printConfigErrors(cmd, err)
				return &exitError{code: 1, err: errBadConfig}
			}
			var sec bridge.Security
			if dir, given := pkiDir(a, cmd, defaultPKIDir); given || needsPKI(cfg) {
				st, err := openPKI(dir, a.logger)
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				sec = st
			}
			eng, err := bridge.New(bridge.Options{Config: cfg, Logger: a.logger,
				Gate: bridge.NewManualGate(true, 0), Security: sec})
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			a.logger.Info("starting", zap.String("config", path), zap.Int("servers", len(cfg.Servers)),
				zap.Int("mappings", len(cfg.Mappings)), zap.String("hash", cfg.Hash()))
			return eng.Run(cmd.Context())
		},
	}
	cmd.Flags().StringP("config", "c", "", "config file (YAML; see examples/mirror.yml)")
	_ = a.v.BindPFlag("config", cmd.Flags().Lookup("config"))
	addPKIFlag(cmd, defaultPKIDir)
	return cmd
}
