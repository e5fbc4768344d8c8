package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/test/harness"
)

// TestDemoLogs: the pair demo says where its members' logs are, and at
// the end either keeps them there (--keep-logs) or says it removed them —
// never names a directory that is gone without saying so.
func TestDemoLogs(t *testing.T) {
	for _, keep := range []bool{false, true} {
		name := map[bool]string{false: "default", true: "keep-logs"}[keep]
		t.Run(name, func(t *testing.T) {
			tmp := t.TempDir()
			args := []string{"demo", "--mappings", "20", "--rate", "100", "--duration", "4s", "--kill-after", "1h"}
			if keep {
				args = append(args, "--keep-logs")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, harness.Binary(t), args...)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("demo: %v\n%s", err, out)
			}
			m := regexp.MustCompile(`logs in (\S+) \(`).FindSubmatch(out)
			if m == nil {
				t.Fatalf("the demo does not say where its logs are:\n%s", out)
			}
			dir := string(m[1])
			if filepath.Dir(dir) != tmp {
				t.Errorf("logs in %s, not under TMPDIR %s", dir, tmp)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			last := lines[len(lines)-1]
			if keep {
				if last != "logs kept in "+dir {
					t.Errorf("last line %q, want %q", last, "logs kept in "+dir)
				}
				for _, f := range []string{"a.log", "b.log", "arbiter.log", "plc.log", "scada.log"} {
					if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
						t.Errorf("kept logs: %s: %v", f, err)
					}
				}
				return
			}
			if last != "logs in "+dir+" removed (--keep-logs keeps them)" {
				t.Errorf("last line %q does not say the logs were removed", last)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("%s still there after the demo said it removed it: %v", dir, err)
			}
		})
	}
}
