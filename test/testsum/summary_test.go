package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goTestJSON runs go test -json on the fixture package and returns its
// output.
func goTestJSON(t *testing.T, fail bool) string {
	t.Helper()
	cmd := exec.Command("go", "test", "-count=1", "-json", "./testdata/fixture")
	cmd.Env = append(os.Environ(), "FIXTURE_FAIL=")
	if fail {
		cmd.Env = append(cmd.Env, "FIXTURE_FAIL=1")
	}
	out, _ := cmd.Output() // fails when the fixture does
	if !strings.Contains(string(out), `"Action":"run"`) {
		t.Fatalf("go test -json printed no events:\n%s", out)
	}
	return string(out)
}

func run(t *testing.T, input string) (string, bool) {
	t.Helper()
	var b strings.Builder
	s := newSummary(&b, time.Now)
	for _, l := range strings.SplitAfter(input, "\n") {
		if l != "" {
			s.line(l)
		}
	}
	ok := s.finish()
	return b.String(), ok
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestSummary: the progress line per package, the skip list with the
// reason and the closing line, from real go test -json output.
func TestSummary(t *testing.T) {
	t.Run("passing", func(t *testing.T) {
		out, ok := run(t, goTestJSON(t, false)+"a line that is not JSON\n")
		if !ok {
			t.Errorf("a passing run reported failure:\n%s", out)
		}
		if got := lastLine(out); got != "3 passed, 0 failed, 1 skipped" {
			t.Errorf("closing line %q\n%s", got, out)
		}
		for _, want := range []string{
			"ok    test/testsum/testdata/fixture",
			"3 passed, 1 skipped\n",
			"skipped (1), by reason:\n  test/testsum/testdata/fixture: needs the moon (apt-get install moon)\n      TestSkipsWithReason\n",
			"a line that is not JSON\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("failing", func(t *testing.T) {
		out, ok := run(t, goTestJSON(t, true))
		if ok {
			t.Errorf("a failing run reported success:\n%s", out)
		}
		if got := lastLine(out); got != "2 passed, 1 failed, 1 skipped" {
			t.Errorf("closing line %q\n%s", got, out)
		}
		for _, want := range []string{"FAIL  ", "before the failure", "the fixture fails on purpose", "failed (1):\n  test/testsum/testdata/fixture TestFails\n      fixture_test.go:21: before the failure\n      fixture_test.go:22: the fixture fails on purpose\n", "slowest tests:"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
}

// TestSummaryPackageFailures: a build failure, a package failing outside
// its tests, a cut stream and an empty run all fail the run.
func TestSummaryPackageFailures(t *testing.T) {
	tests := []struct {
		name, in, want, last string
	}{
		{"build failure", `{"ImportPath":"x/p [x/p.test]","Action":"build-output","Output":"p_test.go:3:1: syntax error\n"}
{"ImportPath":"x/p [x/p.test]","Action":"build-fail"}
{"Action":"start","Package":"x/p"}
{"Action":"output","Package":"x/p","Output":"FAIL\tx/p [build failed]\n"}
{"Action":"fail","Package":"x/p","Elapsed":0,"FailedBuild":"x/p [x/p.test]"}
`, "x/p (build failed)", "0 passed, 1 failed, 0 skipped"},
		{"TestMain exit", `{"Action":"start","Package":"x/q"}
{"Action":"run","Package":"x/q","Test":"TestA"}
{"Action":"pass","Package":"x/q","Test":"TestA"}
{"Action":"output","Package":"x/q","Output":"goleak: Errors on successful test run: found unexpected goroutines\n"}
{"Action":"fail","Package":"x/q","Elapsed":1}
`, "goleak: Errors on successful test run", "1 passed, 1 failed, 0 skipped"},
		{"cut stream", `{"Action":"start","Package":"x/r"}
{"Action":"run","Package":"x/r","Test":"TestA"}
`, "x/r (did not finish)", "0 passed, 1 failed, 0 skipped"},
		{"no tests", `{"Action":"start","Package":"x/s"}
{"Action":"output","Package":"x/s","Output":"?   \tx/s\t[no test files]\n"}
{"Action":"skip","Package":"x/s","Elapsed":0}
`, "testsum: no test ran", "testsum: no test ran"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ok := run(t, tt.in)
			if ok {
				t.Errorf("passed:\n%s", out)
			}
			if !strings.Contains(out, tt.want) || lastLine(out) != tt.last {
				t.Errorf("want %q and closing line %q:\n%s", tt.want, tt.last, out)
			}
		})
	}
}

// TestHeartbeat: after 30 s without a line, what runs is named.
func TestHeartbeat(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var b strings.Builder
	s := newSummary(&b, func() time.Time { return now })
	s.heartbeat()
	if b.Len() != 0 {
		t.Fatalf("heartbeat right away: %q", b.String())
	}
	now = now.Add(31 * time.Second)
	s.heartbeat()
	if !strings.Contains(b.String(), "compiling") {
		t.Errorf("before any package: %q", b.String())
	}
	s.line(`{"Action":"start","Package":"github.com/uamirror/uamirror/test/pair"}` + "\n")
	s.line(`{"Action":"run","Package":"github.com/uamirror/uamirror/test/pair","Test":"TestKill"}` + "\n")
	now = now.Add(45 * time.Second)
	b.Reset()
	s.heartbeat()
	if want := "… 1m16s elapsed, 0/1 packages done; running: test/pair (TestKill 45s)\n"; b.String() != want {
		t.Errorf("heartbeat %q, want %q", b.String(), want)
	}
}

// TestFixtureNotInTheRun: the fixture is under testdata, so ./... (make
// test) never runs its failing test.
func TestFixtureNotInTheRun(t *testing.T) {
	if _, err := os.Stat(filepath.Join("testdata", "fixture", "fixture_test.go")); err != nil {
		t.Fatal(err)
	}
}

// TestHeartbeatKnownTotal: with -packages, the count is of the whole run.
func TestHeartbeatKnownTotal(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var b strings.Builder
	s := newSummary(&b, func() time.Time { return now })
	s.total = 14
	now = now.Add(40 * time.Second)
	s.heartbeat()
	if want := "… 40s elapsed, 0/14 packages done; compiling"; !strings.HasPrefix(b.String(), want) {
		t.Errorf("heartbeat %q, want it to start with %q", b.String(), want)
	}
}
