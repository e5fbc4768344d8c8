package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Every flag of every command can also be set from the environment:
// --tls-cert from UAMIRROR_TLS_CERT, --data from UAMIRROR_DATA, and so on
// (envName). A flag given on the command line wins. A repeated flag
// (--member, --server-endpoint, --tls-pin, …) takes several values from
// one variable, separated by spaces or newlines (--tls-pin also by
// commas). An empty variable counts as unset. The flags in envSkip have
// no environment form.
//
// Besides the flags, UAMIRROR_TOKEN holds the admin API token itself (the
// operator commands; --token-file wins).

// envPrefix is the prefix of the environment form of every flag.
const envPrefix = "UAMIRROR_"

// envName returns the environment variable of flag name: UAMIRROR_ and the
// name in upper case with dashes as underscores.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// envSkip are the flags with no environment form, and why.
var envSkip = map[string]string{
	"help": "",
	// A variable left in a shell profile must never turn every switchover
	// into a forced one (a forced promotion of a lone survivor can make a
	// second writer when the other node is not really down).
	"force": "command line only: never from the environment",
}

// envSkipped reports whether flag name has no environment form.
func envSkipped(name string) bool {
	_, ok := envSkip[name]
	return ok
}

// envListSep splits the value of a repeated flag's variable.
func envListSep(flag string) func(rune) bool {
	return func(r rune) bool {
		return r == ' ' || r == '\n' || r == '\t' || r == '\r' || (flag == "tls-pin" && r == ',')
	}
}

// isRepeated reports whether f takes one value per occurrence.
func isRepeated(f *pflag.Flag) bool {
	_, ok := f.Value.(pflag.SliceValue)
	return ok
}

// applyEnv sets every flag of the running command (its own and those it
// inherits) that the command line did not set from its UAMIRROR_
// variable, as if it had been given; it is called before the command
// runs, so everything that reads flags sees the result.
func applyEnv(cmd *cobra.Command) error {
	var errs []error
	fs := cmd.Flags()
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || envSkipped(f.Name) {
			return
		}
		env := envName(f.Name)
		v := os.Getenv(env)
		if strings.TrimSpace(v) == "" {
			return
		}
		vals := []string{v}
		if isRepeated(f) {
			vals = strings.FieldsFunc(v, envListSep(f.Name))
		}
		for _, x := range vals {
			if err := fs.Set(f.Name, x); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q (--%s): %w", env, v, f.Name, err))
				return
			}
		}
	})
	return errors.Join(errs...)
}

// bindEnv names the environment form in the help text of every flag of
// cmd and its subcommands (" [$UAMIRROR_DATA]"), or says there is none.
func bindEnv(cmd *cobra.Command) {
	annotate := func(f *pflag.Flag) {
		if why, ok := envSkip[f.Name]; ok {
			if why != "" && !strings.Contains(f.Usage, why) {
				f.Usage += " (" + why + ")"
			}
			return
		}
		tag := "[$" + envName(f.Name) + "]"
		if !strings.Contains(f.Usage, tag) {
			f.Usage += " " + tag
		}
	}
	cmd.LocalNonPersistentFlags().VisitAll(annotate)
	cmd.PersistentFlags().VisitAll(annotate)
	for _, c := range cmd.Commands() {
		bindEnv(c)
	}
}
