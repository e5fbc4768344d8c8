package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/test/harness"
)

// TestPairDemoRunsSecured: `uamirror demo` runs its pair over mutual TLS
// (a throwaway pair PKI) and still shows the takeover without a bad write.
func TestPairDemoRunsSecured(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pair demo")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, harness.Binary(t), "demo", "--mappings", "20", "--rate", "100",
		"--kill-after", "3s", "--duration", "9s").CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"secured: mutual TLS on raft and the peer link", "took over", "0 bad writes"} {
		if !strings.Contains(s, want) {
			t.Errorf("demo output lacks %q:\n%s", want, s)
		}
	}
}
