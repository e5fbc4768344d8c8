package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The binary is built once per test process and then given to each test
// as a file in that test's t.TempDir(), so no test leaves it behind: a
// hard link (free) to an anonymous copy that exists only while the test
// process has it open (O_TMPFILE), or, where the file system cannot do
// that, a copy from memory.
var (
	buildOnce sync.Once
	buildErr  error
	// binFile is a read-only handle on the built binary, an O_TMPFILE
	// inode without a name (nil when O_TMPFILE is not supported).
	binFile *os.File
	// binBytes is the binary when binFile is nil.
	binBytes []byte

	linksMu sync.Mutex
	links   = map[testing.TB]string{} // each test's copy
)

// Binary builds ./cmd/uamirror once per test process (with -race when the
// tests run with it) and returns the path of a copy that lives in
// t.TempDir(), so it is removed with the test. Calls with the same t
// return the same path; it is safe for concurrent use.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(build)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	linksMu.Lock()
	defer linksMu.Unlock()
	if p, ok := links[t]; ok {
		return p
	}
	p := filepath.Join(t.TempDir(), "uamirror")
	if err := placeBinary(p); err != nil {
		t.Fatalf("uamirror binary for this test: %v", err)
	}
	links[t] = p
	t.Cleanup(func() {
		linksMu.Lock()
		delete(links, t)
		linksMu.Unlock()
	})
	return p
}

// build runs go build into a temporary directory, keeps the binary as an
// unnamed file (or in memory) and removes the directory.
func build() {
	dir, err := os.MkdirTemp("", "uamirror-bin-")
	if err != nil {
		buildErr = fmt.Errorf("build uamirror: %w", err)
		return
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "uamirror")
	args := []string{"build", "-o", out}
	if raceEnabled {
		// boltdb/bolt (raft's store) fails the race build's pointer
		// checks (checkptr) on every fresh database; the race detector
		// stays on, only that package's checkptr is off.
		args = append(args, "-race", "-gcflags=github.com/boltdb/bolt=-d=checkptr=0")
	}
	args = append(args, "./cmd/uamirror")
	cmd := exec.Command("go", args...)
	cmd.Dir = RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build: %w\n%s", err, b)
		return
	}
	binFile, err = anonymousCopy(out)
	if err != nil {
		binFile = nil
		if binBytes, err = os.ReadFile(out); err != nil {
			buildErr = fmt.Errorf("read the built binary: %w", err)
		}
	}
}

// anonymousCopy copies the file at path into a new O_TMPFILE file in the
// same directory and returns a read-only handle on it (a file open for
// writing cannot be executed: ETXTBSY).
func anonymousCopy(path string) (*os.File, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	tmp, err := os.OpenFile(filepath.Dir(path), unix.O_TMPFILE|os.O_RDWR, 0o755)
	if err != nil {
		return nil, fmt.Errorf("O_TMPFILE: %w", err)
	}
	defer tmp.Close()
	if _, err := io.Copy(tmp, src); err != nil {
		return nil, err
	}
	return os.Open(fmt.Sprintf("/proc/self/fd/%d", tmp.Fd()))
}

// placeBinary puts the binary at path: a hard link to the unnamed file,
// or a copy.
func placeBinary(path string) error {
	var src io.Reader = bytes.NewReader(binBytes)
	if binFile != nil {
		err := unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", binFile.Fd()), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("link %s: %w", path, err)
		}
		src = io.NewSectionReader(binFile, 0, 1<<40)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
