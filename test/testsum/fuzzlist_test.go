package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestFuzzScriptFindsEveryTarget: .ci/fuzz.sh (which `make test` runs)
// finds every fuzz target of the module, as the Go parser sees them, so
// that no parser goes unfuzzed because its target is spelled unusually.
func TestFuzzScriptFindsEveryTarget(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", "testdata", ".git":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Fuzz") || len(fn.Type.Params.List) != 1 {
				continue
			}
			if star, ok := fn.Type.Params.List[0].Type.(*ast.StarExpr); ok {
				if sel, ok := star.X.(*ast.SelectorExpr); ok && sel.Sel.Name == "F" {
					rel, _ := filepath.Rel(root, filepath.Dir(path))
					want = append(want, "./"+rel+"/ "+fn.Name.Name)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(want)
	out, err := exec.Command("bash", filepath.Join(root, ".ci", "fuzz.sh"), "-list").CombinedOutput()
	if err != nil {
		t.Fatalf("fuzz.sh -list: %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("fuzz.sh finds:\n%s\nthe Go parser finds:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(want) < 9 {
		t.Errorf("only %d fuzz targets found: %v", len(want), want)
	}
}
