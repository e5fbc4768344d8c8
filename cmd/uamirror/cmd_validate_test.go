package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestValidateExamples: every error of the bad example is printed with
// file:line and the command exits 1; the good examples exit 0.
func TestValidateExamples(t *testing.T) {
	out, _, code := runCLI(t, "validate", "../../examples/mirror.yml")
	if code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("good example: exit %d, out %q", code, out)
	}
	if out, errOut, code := runCLI(t, "validate", "../../examples/secured-mirror.yml"); code != 0 {
		t.Fatalf("secured example: exit %d, %s %s", code, out, errOut)
	}
	_, errOut, code := runCLI(t, "validate", "../../examples/bad-mirror.yml")
	if code != 1 {
		t.Fatalf("bad example: exit %d, want 1", code)
	}
	lineRe := regexp.MustCompile(`^\.\./\.\./examples/bad-mirror\.yml:\d+: \S+: `)
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if strings.HasPrefix(l, "uamirror:") {
			continue
		}
		if !lineRe.MatchString(l) {
			t.Errorf("error line without file:line and field: %q", l)
		}
		n++
	}
	if n < 5 {
		t.Fatalf("want every error of the bad example (≥5), got %d:\n%s", n, errOut)
	}
}

// TestMappingsImportIntoKeepsGoodConfig: a CSV that does not validate
// against the config never replaces it.
func TestMappingsImportIntoKeepsGoodConfig(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile("../../examples/mirror.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "mirror.yml")
	if err := os.WriteFile(cfg, good, 0o644); err != nil {
		t.Fatal(err)
	}
	csv := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(csv, []byte("source_server,source_node,target_server,target_node\nnosuch,ns=2;s=a,scada,ns=2;s=b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, "mappings", "import", csv, "--into", cfg)
	if code == 0 {
		t.Fatalf("import of a bad mapping succeeded: %s", errOut)
	}
	after, _ := os.ReadFile(cfg)
	if string(after) != string(good) {
		t.Fatal("the good config was changed by a bad import")
	}
	// A good CSV round-trips through export and import --into.
	out, _, code := runCLI(t, "mappings", "export", cfg)
	if code != 0 {
		t.Fatalf("export: exit %d", code)
	}
	csv2 := filepath.Join(dir, "good.csv")
	if err := os.WriteFile(csv2, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runCLI(t, "mappings", "import", csv2, "--into", cfg); code != 0 {
		t.Fatalf("import of exported mappings: exit %d: %s", code, errOut)
	}
	if _, _, code := runCLI(t, "validate", cfg); code != 0 {
		t.Fatal("config invalid after import")
	}
}
