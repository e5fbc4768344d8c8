// Package harness starts the real things tests need — the uamirror
// binary, simulation servers as separate processes — and waits on
// conditions with deadlines instead of sleeping.
package harness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
)

// RepoRoot returns the module root (found from this file's location).
// readyTimeout bounds the wait for a started process's ready line: a race
// build starting on a loaded 2-core machine has taken over 30 s.
const readyTimeout = 90 * time.Second

func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Eventually waits until cond returns true, checking every few
// milliseconds, and fails the test with msg after timeout.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	if !WaitFor(timeout, cond) {
		t.Fatalf("timed out after %s: %s", timeout, msg)
	}
}

// WaitFor polls cond until it is true or timeout passes.
func WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// Proc is a child process started by a test. Stop/Kill are idempotent; a
// cleanup registered by Start kills it at the end of the test.
type Proc struct {
	t      testing.TB
	name   string
	args   []string
	wrap   []string // command prefix (e.g. netlab.sh exec h1) that execs name
	env    []string // extra environment
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	done   chan struct{}
	mu     sync.Mutex
	ready  map[string]string
	Stderr *lockedBuffer
}

var readyRe = regexp.MustCompile(`(\w+)=(\S+)`)

// Start runs the uamirror binary with args and waits (up to 30 s) for a
// stdout line containing "ready"; its key=value pairs are kept (see Ready).
func Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	p := &Proc{t: t, name: Binary(t), args: args}
	p.start()
	t.Cleanup(func() { p.Kill() })
	return p
}

// StartIn is Start with the binary run through wrap, a command prefix
// that must exec its argument (so that the PID is the binary's), e.g.
// netlab.sh exec h1, with env added to the environment.
func StartIn(t testing.TB, wrap, env []string, args ...string) *Proc {
	t.Helper()
	p := &Proc{t: t, name: Binary(t), args: args, wrap: wrap, env: env}
	p.start()
	t.Cleanup(func() { p.Kill() })
	return p
}

func (p *Proc) start() {
	t := p.t
	t.Helper()
	argv := append(append(append([]string(nil), p.wrap...), p.name), p.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin, err = cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.Stderr = &lockedBuffer{}
	cmd.Stderr = p.Stderr
	cmd.Env = append(append(os.Environ(), "UAMIRROR_LOG_FORMAT=json"), p.env...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", p.args, err)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	readyCh := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if !sent && strings.Contains(line, "ready") {
				kv := map[string]string{}
				for _, m := range readyRe.FindAllStringSubmatch(line, -1) {
					kv[m[1]] = m[2]
				}
				readyCh <- kv
				sent = true
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	select {
	case kv := <-readyCh:
		p.mu.Lock()
		p.ready = kv
		p.mu.Unlock()
	case <-p.done:
		t.Fatalf("%v exited before ready: %s", p.args, p.Stderr.String())
	case <-time.After(readyTimeout):
		t.Fatalf("%v not ready after %s: %s", p.args, readyTimeout, p.Stderr.String())
	}
}

// Ready returns a key from the ready line (e.g. "endpoint").
func (p *Proc) Ready(key string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ready[key]
}

// Send writes a control line to the process's stdin.
func (p *Proc) Send(line string) error {
	_, err := io.WriteString(p.stdin, line+"\n")
	return err
}

// Kill sends SIGKILL and waits for the process to exit.
func (p *Proc) Kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Pid is the process id (of the binary: a wrap execs it).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends SIGTERM and waits up to timeout, then kills.
func (p *Proc) Stop(timeout time.Duration) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
	}
}

// Restart starts the same command again (after Kill or Stop).
func (p *Proc) Restart() {
	p.t.Helper()
	p.start()
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// lockedBuffer is a goroutine-safe bytes buffer for a child's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Context returns a context cancelled at the end of the test.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago,
// for a server that must be told its port in advance or come back on the
// same port after a restart. Ports come from 20000–31999, below Linux's
// ephemeral range (32768–60999): a port found free in the ephemeral range
// can be taken by one of the many outgoing connections of a test before
// the server binds it. Safe for concurrent use.
func FreePort(t testing.TB) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	if nextPort == 0 {
		nextPort = 20000 + rand.IntN(10000)
	}
	for range 2000 {
		p := nextPort
		if nextPort++; nextPort >= 32000 {
			nextPort = 20000
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatal("no free port in 20000-31999")
	return 0
}

var (
	portMu   sync.Mutex
	nextPort int
)

// ReadValues reads the Value attribute of nodes (NodeID strings in index
// form, or nsu= form resolved through the server's namespace array) with
// a short-lived gopcua client.
func ReadValues(ctx context.Context, endpoint string, nodes []string) ([]*ua.DataValue, error) {
	c, err := opcua.NewClient(endpoint, opcua.AutoReconnect(false), opcua.SecurityMode(ua.MessageSecurityModeNone))
	if err != nil {
		return nil, err
	}
	if err := c.Connect(ctx); err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	ns, err := c.NamespaceArray(ctx)
	if err != nil {
		return nil, err
	}
	req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnBoth}
	for _, n := range nodes {
		if strings.HasPrefix(n, "nsu=") {
			semi := strings.Index(n, ";")
			uri, rest := n[4:semi], n[semi+1:]
			idx := -1
			for i, u := range ns {
				if u == uri {
					idx = i
				}
			}
			if idx < 0 {
				return nil, fmt.Errorf("namespace %s unknown on %s", uri, endpoint)
			}
			n = fmt.Sprintf("ns=%d;%s", idx, rest)
		}
		id, err := ua.ParseNodeID(n)
		if err != nil {
			return nil, err
		}
		req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: id, AttributeID: ua.AttributeIDValue})
	}
	res, err := c.Read(ctx, req)
	if err != nil {
		return nil, err
	}
	return res.Results, nil
}

// WriteValue writes one value (with a source timestamp of now) to node on
// endpoint with a short-lived client and returns the item's status as an
// error when it is not Good.
func WriteValue(ctx context.Context, endpoint, node string, v any) error {
	c, err := opcua.NewClient(endpoint, opcua.AutoReconnect(false), opcua.SecurityMode(ua.MessageSecurityModeNone))
	if err != nil {
		return err
	}
	if err := c.Connect(ctx); err != nil {
		return err
	}
	defer c.Close(context.Background())
	id, err := resolve(ctx, c, node)
	if err != nil {
		return err
	}
	res, err := c.Write(ctx, &ua.WriteRequest{NodesToWrite: []*ua.WriteValue{{NodeID: id, AttributeID: ua.AttributeIDValue,
		Value: &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp, Value: ua.MustVariant(v), SourceTimestamp: time.Now()}}}})
	if err != nil {
		return err
	}
	if res.Results[0] != ua.StatusOK {
		return fmt.Errorf("write %s: %w", node, res.Results[0])
	}
	return nil
}

func resolve(ctx context.Context, c *opcua.Client, n string) (*ua.NodeID, error) {
	if strings.HasPrefix(n, "nsu=") {
		semi := strings.Index(n, ";")
		idx, err := c.FindNamespace(ctx, n[4:semi])
		if err != nil {
			return nil, err
		}
		n = fmt.Sprintf("ns=%d;%s", idx, n[semi+1:])
	}
	return ua.ParseNodeID(n)
}
