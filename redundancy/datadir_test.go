package redundancy

import (
	"os"
	"path/filepath"
	"testing"
)

// TestProbeDataDir: a writable directory passes and leaves nothing
// behind; one that cannot take a file fails with the reason.
func TestProbeDataDir(t *testing.T) {
	dir := t.TempDir()
	if err := probeDataDir(dir); err != nil {
		t.Fatalf("writable dir: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the probe left %d files", len(left))
	}
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := probeDataDir(notDir); err == nil {
		t.Error("a data dir that is a file passed the probe")
	}
}
