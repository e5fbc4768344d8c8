package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// walk calls fn for cmd and every command below it.
func walk(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, c := range cmd.Commands() {
		walk(c, fn)
	}
}

// commandPaths returns the path (without "uamirror") of every command.
func commandPaths(t *testing.T) [][]string {
	t.Helper()
	var paths [][]string
	walk(newRootCmd(), func(c *cobra.Command) {
		if c.Name() == "help" {
			return
		}
		paths = append(paths, strings.Fields(strings.TrimPrefix(c.CommandPath(), "uamirror")))
	})
	if len(paths) < 20 {
		t.Fatalf("found %d commands, want every command (≥ 20)", len(paths))
	}
	return paths
}

// envSample is a value the environment gives a flag of type typ, and what
// the flag then reads as.
func envSample(t *testing.T, f *pflag.Flag) (env, want string) {
	t.Helper()
	switch f.Value.Type() {
	case "string":
		return "from-env", "from-env"
	case "bool":
		return "true", "true"
	case "duration":
		return "7s", "7s"
	case "int", "uint", "int64", "uint64":
		return "7", "7"
	case "float64":
		return "7.5", "7.5"
	case "stringArray", "stringSlice":
		return "one=1 two=2\nthree=3", "[one=1,two=2,three=3]"
	}
	t.Fatalf("--%s: no sample value for flag type %s (add one)", f.Name, f.Value.Type())
	return "", ""
}

// argName matches an argument name that reads right in help: a word or a
// pattern like NAME=URL, not a type name of pflag nor a sentence.
var argName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_=.:-]*$`)

// TestEveryFlagHasItsEnvForm walks every command's flags: each has its
// UAMIRROR_ variable named in the help, the variable sets the flag, and
// the help's argument name reads right.
func TestEveryFlagHasItsEnvForm(t *testing.T) {
	for _, path := range commandPaths(t) {
		t.Run(strings.Join(append([]string{"uamirror"}, path...), "_"), func(t *testing.T) {
			help, _, code := runCLI(t, append(path, "--help")...)
			if code != 0 {
				t.Fatalf("--help: exit %d", code)
			}
			cmd, _, err := newRootCmd().Find(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.ParseFlags(nil); err != nil { // merges the inherited flags
				t.Fatal(err)
			}
			cmd.Flags().VisitAll(func(f *pflag.Flag) {
				if f.Name == "help" || f.Hidden {
					return
				}
				env := envName(f.Name)
				if why, skipped := envSkip[f.Name]; skipped {
					if !strings.Contains(help, why) || strings.Contains(help, "[$"+env+"]") {
						t.Errorf("--%s has no environment form: the help must say so (%q) and name no variable:\n%s", f.Name, why, help)
					}
					t.Setenv(env, "true") // must be ignored
					return
				}
				if !strings.Contains(help, "--"+f.Name) || !strings.Contains(help, "[$"+env+"]") {
					t.Errorf("--%s: the help does not show it with [$%s]:\n%s", f.Name, env, help)
				}
				name, usage := pflag.UnquoteUsage(f)
				if strings.Contains(usage, "`") {
					t.Errorf("--%s: a backquote left in its help %q (pflag takes the first quoted word as the argument name)", f.Name, usage)
				}
				if name != "" && (!argName.MatchString(name) || name == "stringArray" || name == "stringSlice" || name == "strings") {
					t.Errorf("--%s: argument name %q does not read as one (name it with `NAME` in the usage)", f.Name, name)
				}
				val, _ := envSample(t, f)
				t.Setenv(env, val)
			})
			if err := applyEnv(cmd); err != nil {
				t.Fatalf("applyEnv: %v", err)
			}
			cmd.Flags().VisitAll(func(f *pflag.Flag) {
				if f.Name == "help" || f.Hidden {
					return
				}
				if envSkipped(f.Name) {
					if f.Changed {
						t.Errorf("--%s was set from %s, which it must ignore", f.Name, envName(f.Name))
					}
					return
				}
				_, want := envSample(t, f)
				if got := f.Value.String(); got != want || !f.Changed {
					t.Errorf("--%s from %s: reads %q (changed %v), want %q", f.Name, envName(f.Name), got, f.Changed, want)
				}
			})
		})
	}
}

// TestCommandLineBeatsEnv: a flag on the command line wins over its
// variable; an empty variable counts as unset; a bad value is an error
// naming the variable.
func TestCommandLineBeatsEnv(t *testing.T) {
	cmd, _, err := newRootCmd().Find([]string{"node"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags([]string{"--id", "cli"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("UAMIRROR_ID", "env")
	t.Setenv("UAMIRROR_DATA", "")
	if err := applyEnv(cmd); err != nil {
		t.Fatal(err)
	}
	if v, _ := cmd.Flags().GetString("id"); v != "cli" {
		t.Errorf("--id = %q, want the command line's %q", v, "cli")
	}
	if cmd.Flags().Changed("data") {
		t.Errorf("an empty UAMIRROR_DATA set --data")
	}
	t.Setenv("UAMIRROR_HEARTBEAT", "soon")
	_, stderr, code := runCLI(t, "node")
	if code != 2 || !strings.Contains(stderr, "UAMIRROR_HEARTBEAT") {
		t.Errorf("bad UAMIRROR_HEARTBEAT: exit %d, stderr %q; want 2 naming the variable", code, stderr)
	}
}

// TestNodeReadsItsFlagsFromEnv runs `node` with --id and --member from
// the environment only: the command sees them (and refuses the id that is
// not a member, before opening anything).
func TestNodeReadsItsFlagsFromEnv(t *testing.T) {
	t.Setenv("UAMIRROR_ID", "zz")
	t.Setenv("UAMIRROR_MEMBER", "id=a,role=node,raft=127.0.0.1:1,peer=127.0.0.1:2,admin=127.0.0.1:3\nid=b,role=node,raft=127.0.0.1:4,peer=127.0.0.1:5,admin=127.0.0.1:6")
	t.Setenv("UAMIRROR_DATA", t.TempDir())
	_, stderr, code := runCLI(t, "node")
	if code != 2 || !strings.Contains(stderr, `--id "zz" is not one of the --member ids`) {
		t.Errorf("exit %d, stderr %q; want 2 and the id refused", code, stderr)
	}
}

// TestHelpListsSubcommands: a command's help lists every subcommand.
func TestHelpListsSubcommands(t *testing.T) {
	for _, tc := range []struct {
		path []string
		subs []string
	}{
		{[]string{"mappings"}, []string{"import", "export", "apply", "list"}},
		{[]string{"pki"}, []string{"list", "trust", "reject", "create", "init-pair"}},
		{nil, []string{"run", "validate", "node", "arbiter", "switchover", "status", "events", "mappings", "browse", "simserver", "demo", "pki", "version"}},
	} {
		help, _, code := runCLI(t, append(tc.path, "--help")...)
		if code != 0 {
			t.Fatalf("%v --help: exit %d", tc.path, code)
		}
		for _, s := range tc.subs {
			if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(s) + `\s`).MatchString(help) {
				t.Errorf("uamirror %v --help does not list %q:\n%s", tc.path, s, help)
			}
		}
	}
}
