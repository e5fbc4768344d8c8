// Package netlab drives netlab.sh (beside this file; a copy of the team's
// ../shared/netlab.sh) from Go tests: hosts as network namespaces on one
// machine, with link cuts, isolation, incoming delay and loss. It owns
// one lab per Lab value, named by a prefix of its own so that a lab left
// over by a crashed run cannot clash, and always takes it down in the
// test's cleanup.
//
// The test process stays in the root network namespace, which cannot
// reach lab addresses. To talk to a process in the lab it dials from
// inside the host's namespace (Dialer, Do): the socket is created by an
// OS thread that has joined that namespace, and a socket stays in the
// namespace it was created in.
package netlab

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Script is the path of netlab.sh.
func Script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "netlab.sh")
}

// Available reports why a lab cannot be built here (nil when it can):
// netlab needs root, iproute2 and nftables (and iptables for delay).
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netlab needs root (network namespaces); run as root, or without root: test/netlab/netlab.sh sandbox go test ./test/fault")
	}
	for _, tool := range []string{"ip", "nft", "iptables", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netlab needs %s (apt-get install iproute2 nftables iptables util-linux)", tool)
		}
	}
	return nil
}

// Lab is a running lab of hosts h1…hN.
type Lab struct {
	t      testing.TB
	Prefix string
	n      int
}

// New builds a lab of n hosts (h1…hn, addresses 10.213.0.1…n) under a
// fresh random prefix, and takes it down when the test ends. It skips the
// test when Available says no lab can be built here.
func New(t testing.TB, n int) *Lab {
	t.Helper()
	if err := Available(); err != nil {
		skip(t, "no network lab: %v", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	prefix := []byte("f")
	for _, c := range b {
		prefix = append(prefix, letters[int(c)%len(letters)])
	}
	l := &Lab{t: t, Prefix: string(prefix), n: n}
	t.Cleanup(func() {
		if out, err := l.run("down"); err != nil {
			t.Errorf("netlab down: %v: %s", err, out)
		}
	})
	if out, err := l.run("up", strconv.Itoa(n)); err != nil {
		if strings.Contains(out, "Operation not permitted") || strings.Contains(out, "Permission denied") {
			skip(t, "no network lab: the machine refuses network namespaces: %s", out)
		}
		t.Fatalf("netlab up %d: %v: %s", n, err, out)
	}
	return l
}

// RequireEnv names the variable that turns "no lab here" from a skip
// into a failure: CI (.ci/run) sets it, so that a missing tool or a lost
// privilege cannot silently skip the fault matrix.
const RequireEnv = "UAMIRROR_FAULT_REQUIRE"

func skip(t testing.TB, format string, a ...any) {
	t.Helper()
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf(format+" ("+RequireEnv+" is set)", a...)
	}
	t.Skipf(format, a...)
}

func (l *Lab) env() []string {
	return append(os.Environ(), "NETLAB_PREFIX="+l.Prefix)
}

func (l *Lab) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Script(), args...)
	cmd.Env = l.env()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Do runs netlab.sh with args and fails the test if it fails.
func (l *Lab) Do(args ...string) {
	l.t.Helper()
	if out, err := l.run(args...); err != nil {
		l.t.Fatalf("netlab %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// IP returns host's address (host is "h1", "h2", …).
func (l *Lab) IP(host string) string {
	i, err := strconv.Atoi(strings.TrimPrefix(host, "h"))
	if err != nil || i < 1 || i > l.n {
		l.t.Fatalf("netlab: no host %q", host)
	}
	return "10.213.0." + strconv.Itoa(i)
}

// Exec returns the command prefix that runs a command inside host: the
// command's PID is the one the caller starts (netlab.sh execs it).
func (l *Lab) Exec(host string) []string { return []string{Script(), "exec", host} }

// Env is the environment Exec needs (the lab's prefix).
func (l *Lab) Env() []string { return []string{"NETLAB_PREFIX=" + l.Prefix} }

// Cut drops all traffic between hosts a and b; Heal restores it.
func (l *Lab) Cut(a, b string)  { l.Do("cut", a, b) }
func (l *Lab) Heal(a, b string) { l.Do("heal", a, b) }

// HealAll removes every cut.
func (l *Lab) HealAll() { l.Do("heal", "--all") }

// Isolate takes host's link down; Rejoin brings it up.
func (l *Lab) Isolate(host string) { l.Do("isolate", host) }
func (l *Lab) Rejoin(host string)  { l.Do("rejoin", host) }

// Delay holds every packet arriving at host for ms (0: off).
func (l *Lab) Delay(host string, ms int) { l.Do("delay", host, strconv.Itoa(ms)) }

// Loss drops pct % of the packets arriving at host (0: off).
func (l *Lab) Loss(host string, pct float64) {
	l.Do("loss", host, strconv.FormatFloat(pct, 'f', 2, 64))
}

// nsPath is the namespace file of host.
func (l *Lab) nsPath(host string) string { return "/run/netns/" + l.Prefix + "-" + host }

// InNS runs fn on an OS thread that has joined host's network namespace;
// sockets fn creates belong to the lab. The thread returns to its own
// namespace afterwards; if it cannot, it is discarded (the goroutine
// exits locked). Discarding threads routinely would be wrong: a child
// process started with Pdeathsig (test/harness) is killed when the
// thread that forked it ends, and that may be any of the runtime's
// threads.
func (l *Lab) InNS(host string, fn func() error) error {
	target, err := os.Open(l.nsPath(host))
	if err != nil {
		return fmt.Errorf("netlab: %w", err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: own namespace: %w", err)
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab: setns %s: %w", host, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the runtime ends this thread with the goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("netlab: back to the own namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Dialer returns a DialContext that connects from inside host.
func (l *Lab) Dialer(host string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := l.InNS(host, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}
