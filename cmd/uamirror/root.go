package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/uamirror/uamirror/redundancy"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// app holds what every command shares: the settings viper resolved from
// flags and UAMIRROR_* environment variables, and the logger built from
// them.
type app struct {
	v      *viper.Viper
	logger *zap.Logger
}

func newRootCmd() *cobra.Command {
	a := &app{v: viper.New()}
	a.v.SetEnvPrefix("UAMIRROR")
	a.v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	a.v.AutomaticEnv()

	root := &cobra.Command{
		Use:   "uamirror",
		Short: "Mirror process data between OPC UA servers, redundantly",
		Long: `uamirror subscribes to items on OPC UA servers and writes them to items on
other OPC UA servers (read, write and bidirectional mappings), in batches,
and keeps doing so through connection faults.

Start with 'uamirror demo', then write a config (see examples/) and check it
with 'uamirror validate FILE' before 'uamirror run --config FILE'.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd); err != nil {
				return &exitError{code: 2, err: err}
			}
			l, err := newLogger(a.v.GetString("log-format"), a.v.GetString("log-level"))
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			a.logger = l
			// A long-running mirror holds a large, steady heap (per-mapping
			// state) and churns small values: GC at 50 % growth keeps RSS
			// near 1.5× the live heap for a little CPU. GOGC overrides.
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(50)
			}
			// gopcua's server package logs through the standard library
			// logger; route it into zap, at debug level.
			if _, err := zap.RedirectStdLogAt(l.Named("gopcua"), zapcore.DebugLevel); err != nil {
				return err
			}
			return nil
		},
		PersistentPostRun: func(*cobra.Command, []string) {
			if a.logger != nil {
				_ = a.logger.Sync()
			}
		},
	}
	pf := root.PersistentFlags()
	pf.String("log-format", "auto", "log format: auto (console on a terminal, JSON otherwise), console or json")
	pf.String("log-level", "info", "log level: debug, info, warn or error")
	_ = a.v.BindPFlags(pf)

	root.AddCommand(commands(a)...)
	root.InitDefaultCompletionCmd() // now, so that bindEnv sees its flags
	bindEnv(root)
	return root
}

// commands is the command tree below the root: every command and
// subcommand of uamirror, in one place.
func commands(a *app) []*cobra.Command {
	pki := &cobra.Command{
		Use:   "pki",
		Short: "Certificates: the OPC UA application certificate and trust lists, the pair's TLS",
		Args:  cobra.NoArgs,
	}
	pki.AddCommand(
		newPKIListCmd(a),   // cmd_pki_store.go
		newPKITrustCmd(a),  // cmd_pki_store.go
		newPKIRejectCmd(a), // cmd_pki_store.go
		newPKICreateCmd(a), // cmd_pki_store.go
		newPKIInitPairCmd(a),
	)
	return []*cobra.Command{
		newVersionCmd(),
		newValidateCmd(a),
		newRunCmd(a),
		newMemberCmd(a, redundancy.RoleNode),    // cmd_node.go
		newMemberCmd(a, redundancy.RoleArbiter), // cmd_node.go
		newSwitchoverCmd(a),                     // cmd_pairctl.go
		newStatusCmd(a),                         // cmd_pairctl.go
		newEventsCmd(a),                         // cmd_pairctl.go
		newDrillCmd(a),                          // cmd_drill.go
		newMappingsCmd(a),                       // import, export, apply, list
		newBrowseCmd(a),
		newSimserverCmd(a),
		newDemoCmd(a),
		pki,
	}
}

// newLogger builds the process logger: console encoding on a terminal,
// JSON otherwise, or as the format flag says.
func newLogger(format, level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	switch format {
	case "auto":
		format = "json"
		if term.IsTerminal(int(os.Stderr.Fd())) {
			format = "console"
		}
	case "console", "json":
	default:
		return nil, fmt.Errorf("--log-format %q: want auto, console or json", format)
	}
	var cfg zap.Config
	if format == "console" {
		cfg = zap.NewDevelopmentConfig()
		cfg.EncoderConfig.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		cfg.DisableStacktrace = true
	} else {
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
		cfg.Sampling = nil
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.OutputPaths = []string{"stderr"}
	cfg.ErrorOutputPaths = []string{"stderr"}
	l, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("building logger: %w", err)
	}
	return l, nil
}
