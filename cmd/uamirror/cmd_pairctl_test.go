package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/redundancy"
)

// refusingPair is a standalone pair whose switchover is refused because
// the standby is not READY.
type refusingPair struct{ standalonePair }

func (refusingPair) Switchover(context.Context, string, bool) error {
	return fmt.Errorf("%w: b is not READY (sessions down: plc)", redundancy.ErrStandbyNotReady)
}

// serveAdmin runs a real admin API with token auth on 127.0.0.1 until the
// test ends and returns its URL.
func serveAdmin(t *testing.T, p diagnostics.Pair, token string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := diagnostics.NewAdmin(p, nil, zap.NewNop())
	a.SetAuth(diagnostics.AdminAuth{Token: []byte(token)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("admin API: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// TestOperatorExitCodes runs the operator commands against a real admin
// API: the exit codes scripts rely on, with the node and the token from
// the flags or the environment.
func TestOperatorExitCodes(t *testing.T) {
	const token = "0123456789abcdef-operator"
	node := serveAdmin(t, refusingPair{}, token)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		stderr string
	}{
		{"status, no token needed for a loopback read", nil, []string{"status", "--node", node}, exitOK, ""},
		{"status from UAMIRROR_NODE", map[string]string{"UAMIRROR_NODE": node}, []string{"status", "-o", "json"}, exitOK, ""},
		{"node unreachable", nil, []string{"status", "--node", dead}, exitNoNode, "node " + dead},
		{"command without token", nil, []string{"switchover", "--node", node}, exitUnauthorized, "(see --token-file, --cert)"},
		{"command with a wrong token", map[string]string{"UAMIRROR_TOKEN": "wrong-token-wrong-token"},
			[]string{"switchover", "--node", node}, exitUnauthorized, "node " + node},
		{"standby not ready", map[string]string{"UAMIRROR_TOKEN": token, "UAMIRROR_NODE": node},
			[]string{"switchover"}, exitNotReady, "b is not READY"},
		{"bad --node", nil, []string{"events", "--node", "http://[::1"}, exitUsage, "bad admin API address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out, stderr, code := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("%v: exit %d, stderr %q; want %d and %q\nstdout: %s", tc.args, code, stderr, tc.code, tc.stderr, out)
			}
		})
	}
}
