package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if raceBuild() {
		// The page test starts pair members built by harness.Binary,
		// with -race when this test runs with it. -race implies checkptr,
		// which github.com/boltdb/bolt 1.3.1 (the members' raft store)
		// fails on every fresh store, so every member would die at start:
		// switch checkptr off for that package only, as test/pair does
		// (go build reads GOFLAGS from the environment it inherits).
		os.Setenv("GOFLAGS", strings.TrimSpace(os.Getenv("GOFLAGS")+" -gcflags=github.com/boltdb/bolt=-d=checkptr=0"))
	}
	goleak.VerifyTestMain(m)
}

// raceBuild reports whether this test binary was built with -race.
func raceBuild() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// runCLI runs the uamirror command line in process and returns its
// stdout, stderr and exit code (as main would exit).
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"--log-format", "json", "--log-level", "error"}, args...))
	err := root.ExecuteContext(ctx)
	code := 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		errOut.WriteString("uamirror: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), code
}
