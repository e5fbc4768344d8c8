package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinaryLeavesNothing: the binary each test gets lives in that test's
// t.TempDir(), works, and nothing of it (nor of its build) is left in the
// temp dir once the tests are over.
func TestBinaryLeavesNothing(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // the build's and the subtests' temp dirs

	var paths []string
	for _, name := range []string{"first", "second"} {
		t.Run(name, func(t *testing.T) {
			p := Binary(t)
			if again := Binary(t); again != p {
				t.Errorf("second call in one test: %s, first %s", again, p)
			}
			if !strings.HasPrefix(p, tmp+string(filepath.Separator)) {
				t.Errorf("binary at %s, not in this test's temp dir under %s", p, tmp)
			}
			out, err := exec.Command(p, "version").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "uamirror") {
				t.Fatalf("%s version: %v\n%s", p, err, out)
			}
			paths = append(paths, p)
		})
	}
	if len(paths) == 2 && paths[0] == paths[1] {
		t.Errorf("two tests share %s", paths[0])
	}
	var left []string
	_ = filepath.WalkDir(tmp, func(path string, d os.DirEntry, err error) error {
		if path != tmp {
			left = append(left, path)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("left in the temp dir after the tests: %v", left)
	}
}
