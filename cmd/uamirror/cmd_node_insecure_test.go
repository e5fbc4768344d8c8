package main

import (
	"context"
	"fmt"
	"github.com/uamirror/uamirror/diagnostics/adminclient"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/harness"
)

// TestPairRefusesOpenNonLoopback: a member whose raft port is on a
// non-loopback address refuses to start without mutual TLS; with
// --pair-insecure it starts, logs the danger at WARN and shows it in its
// status.
func TestPairRefusesOpenNonLoopback(t *testing.T) {
	dir := t.TempDir()
	addr := func(host string) string { return fmt.Sprintf("%s:%d", host, harness.FreePort(t)) }
	admin := addr("127.0.0.1")
	members := []string{
		"--member", fmt.Sprintf("id=a,role=node,raft=%s,peer=%s,admin=%s", addr("0.0.0.0"), addr("127.0.0.1"), admin),
		"--member", fmt.Sprintf("id=b,role=node,raft=%s,peer=%s", addr("127.0.0.1"), addr("127.0.0.1")),
	}
	args := append([]string{"node", "--id", "a", "--data", filepath.Join(dir, "a")}, members...)
	_, stderr, code := runCLI(t, args...)
	if code != 2 || !strings.Contains(stderr, "without mutual TLS") || !strings.Contains(stderr, "member a raft 0.0.0.0:") ||
		!strings.Contains(stderr, "--pair-insecure") {
		t.Fatalf("open raft port: exit %d, stderr:\n%s", code, stderr)
	}

	p := harness.Start(t, append(args, "--pair-insecure")...)
	var st redundancy.Status
	harness.Eventually(t, 10*time.Second, "status of the insecure member", func() bool {
		var err error
		st, err = adminclient.New("http://"+admin, adminclient.Options{}).Status(context.Background())
		return err == nil
	})
	if !strings.HasPrefix(st.PairSecurity, "INSECURE") {
		t.Errorf("status pair_security = %q", st.PairSecurity)
	}
	if out, err := exec.Command(harness.Binary(t), "status", "--node", "http://"+admin).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "WARNING: pair INSECURE") {
		t.Errorf("uamirror status: %v\n%s", err, out)
	}
	harness.Eventually(t, 10*time.Second, "WARN about --pair-insecure", func() bool {
		return strings.Contains(p.Stderr.String(), "PAIR INSECURE")
	})
}

// TestWarnAdminSecurity: an admin API opened on purpose off loopback,
// and a token over plain http, are logged at WARN at start; a loopback
// admin API without auth, or a token over https, are not.
func TestWarnAdminSecurity(t *testing.T) {
	for _, tc := range []struct {
		name, addr string
		sec        memberSecurity
		want       string
	}{
		{"insecure off loopback", "0.0.0.0:7201", memberSecurity{insecure: true}, "ADMIN API INSECURE"},
		{"token over http", "127.0.0.1:7201", memberSecurity{admin: diagnostics.AdminAuth{Token: []byte("0123456789abcdef")}}, "plain http"},
		{"loopback, no auth", "127.0.0.1:7201", memberSecurity{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			warnAdminSecurity(zap.New(core), tc.addr, tc.sec)
			got := ""
			for _, e := range logs.All() {
				got += e.Message + "\n"
			}
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("warnings %q, want %q", got, tc.want)
			}
		})
	}
}
