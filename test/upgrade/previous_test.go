// Package upgrade tests the rolling upgrade of a running pair from the
// previous release to this tree (docs/UPGRADE.md): the previous release
// is built from the repository's history, at the commit named in
// PREVIOUS_RELEASE (tagged v0.1.0 for humans; a tag may not reach a CI
// checkout, the commit does unless the clone is shallow), and runs beside
// the current binary as separate processes.
//
// Run with
//
//	go test -race -count=1 ./test/upgrade/
//
// Without the history (a shallow clone) the test skips, saying why; with
// CI=true or UAMIRROR_UPGRADE_REQUIRE=1 it fails instead.
package upgrade

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/test/harness"
)

// previousRelease returns the full commit of the previous release, from
// PREVIOUS_RELEASE beside this file.
func previousRelease(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "test", "upgrade", "PREVIOUS_RELEASE"))
	if err != nil {
		t.Fatalf("previous release: %v", err)
	}
	sha := strings.TrimSpace(string(b))
	if len(sha) != 40 {
		t.Fatalf("PREVIOUS_RELEASE holds %q, want a full 40-hex commit", sha)
	}
	return sha
}

// required reports whether a missing previous release must fail the test
// (CI, or asked for) rather than skip it.
func required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("UAMIRROR_UPGRADE_REQUIRE") == "1"
}

// git runs git in the repository and returns its trimmed output.
func git(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", harness.RepoRoot()}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out)), fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// missingFromHistory reports whether commit sha is missing from the
// repository's history (a shallow clone), with a message that says so
// loudly and how to fix it.
func missingFromHistory(ctx context.Context, sha string) (msg string, missing bool) {
	_, err := git(ctx, "cat-file", "-e", sha+"^{commit}")
	if err == nil {
		return "", false
	}
	shallow, _ := git(ctx, "rev-parse", "--is-shallow-repository")
	return fmt.Sprintf("THE PREVIOUS RELEASE %s (v0.1.0, test/upgrade/PREVIOUS_RELEASE) IS NOT IN THIS REPOSITORY'S HISTORY "+
		"(shallow clone: %s): the mixed-version upgrade test cannot run. Fetch the history (git fetch --unshallow) to run it. (%v)",
		sha[:12], shallow, err), true
}

// buildPrevious builds the previous release's binary into t.TempDir()
// from a temporary detached worktree of the repository (removed in
// Cleanup) and returns its path. Without the commit in the repository's
// history it skips the test, or fails it when required().
func buildPrevious(t *testing.T) string {
	t.Helper()
	sha := previousRelease(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if msg, missing := missingFromHistory(ctx, sha); missing {
		if required() {
			t.Fatal(msg + " — failing because CI=true or UAMIRROR_UPGRADE_REQUIRE=1")
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if _, err := git(ctx, "worktree", "add", "--detach", src, sha); err != nil {
		t.Fatalf("worktree of the previous release: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := git(ctx, "worktree", "remove", "--force", src); err != nil {
			t.Errorf("removing the previous release's worktree: %v", err)
		}
	})
	bin := filepath.Join(dir, "uamirror-"+sha[:12])
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/uamirror")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=readonly -buildvcs=false"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the previous release %s: %v\n%s", sha[:12], err, out)
	}
	t.Logf("previous release %s built in %s", sha[:12], time.Since(start).Round(time.Millisecond))
	return bin
}

// startOld starts the previous release's binary bin with args, as
// harness.Start starts the current one (a shell that execs bin, so the
// process is bin's).
func startOld(t testing.TB, bin string, args ...string) *harness.Proc {
	t.Helper()
	wrap := []string{"sh", "-c", `shift; exec "$UAMIRROR_PREVIOUS_BIN" "$@"`, "sh"}
	return harness.StartIn(t, wrap, []string{"UAMIRROR_PREVIOUS_BIN=" + bin}, args...)
}
