// Package nodeopcua runs the node-opcua test server (server.js beside this
// file) as a subprocess, so that tests can talk to a third-party OPC UA
// server.
//
// node-opcua is pinned in package.json / package-lock.json of this folder and
// installed with `npm ci` (see Install). Without node_modules, Start skips the
// test; when the environment variable CI is set, it fails it instead, since
// CI must have installed it.
package nodeopcua

import (
	"bufio"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultNamespace is the namespace URI of the simulated variables.
const DefaultNamespace = "urn:uamirror:nodeopcua"

// ServerApplicationURI is the server's ApplicationUri (and the URI in its
// certificate).
const ServerApplicationURI = "urn:uamirror:nodeopcua:server"

// User is the user name accepted when Options.Password is set.
const User = "operator"

// Types is the order in which variable i gets its type: Types[i%len(Types)].
// Options.Type takes one of these names.
var Types = []string{
	"Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64",
	"Float", "Double", "String", "DateTime", "ByteString", "Double[]", "Int32[]",
}

const (
	// ReadyTimeout bounds how long Start waits for the ready line; the
	// environment variable NODEOPCUA_READY_TIMEOUT (a Go duration)
	// overrides it.
	ReadyTimeout = 90 * time.Second
	// StopTimeout bounds how long Stop waits after SIGTERM before SIGKILL.
	StopTimeout = 5 * time.Second
	// controlTimeout bounds how long SetServiceLevel waits for its ack.
	controlTimeout = 10 * time.Second
	readyPrefix    = "nodeopcua ready endpoint="
	ackPrefix      = "nodeopcua ack servicelevel "
	retypeAck      = "nodeopcua ack retype "
	logLines       = 200
)

// Options configures one server instance. The zero value is a server with 16
// variables of the mixed types, on a free port, security None only.
type Options struct {
	// Vars is the number of variables ns=<Namespace>;s=v0 … s=v<Vars-1>,
	// all under Objects/Sim. 0 means 16.
	Vars int
	// Type makes every variable of this type (one of Types); "" cycles
	// through Types by index.
	Type string
	// Rate is the total number of value changes per second, spread
	// round-robin over the variables with deterministic values. 0: static.
	Rate float64
	// Port to listen on at 127.0.0.1; 0 lets node-opcua pick a free one
	// (read it back with Port or Endpoint).
	Port int
	// Namespace URI of the variables; "" means DefaultNamespace.
	Namespace string
	// Security also offers Basic256Sha256 Sign and SignAndEncrypt
	// endpoints; without it only SecurityPolicy None is offered.
	Security bool
	// Aes, with Security, also offers Aes128_Sha256_RsaOaep and
	// Aes256_Sha256_RsaPss.
	Aes bool
	// NoAutoAccept makes the server reject client certificates it does not
	// trust (they land in PKIDir()/server/rejected). By default every
	// client certificate is accepted.
	NoAutoAccept bool
	// TrustedClientCerts are DER client certificates put in the server's
	// trust list before it starts (useful with NoAutoAccept).
	TrustedClientCerts [][]byte
	// TrustedUserCerts are DER user certificates (X.509 user tokens) put
	// in the server's user trust list before it starts; others are refused.
	TrustedUserCerts [][]byte
	// Password, if set, lets user User log in with it. It needs Security:
	// node-opcua offers UserName tokens only when a secure policy exists
	// (on the None endpoint the password is then encrypted with
	// Basic256Sha256, the token's own policy).
	Password string
	// DenyAnonymous refuses anonymous sessions.
	DenyAnonymous bool
	// ServiceLevel is the initial ServiceLevel; nil means 255.
	ServiceLevel *byte
	// MaxNotificationsPerPublish caps the notifications in one Publish
	// response; 0 means 10000 (node-opcua's own default is 1000).
	MaxNotificationsPerPublish int
	// PKIDir is the instance's PKI folder; "" means a t.TempDir().
	PKIDir string
	// MaxArrayLength and MaxStringLength (also for ByteStrings) are the
	// longest array and string the server decodes and advertises in
	// ServerCapabilities; 0 means node-opcua's own.
	MaxArrayLength, MaxStringLength int
	// MaxNodesPerWrite is OperationLimits.MaxNodesPerWrite, enforced with
	// BadTooManyOperations; 0 means node-opcua's own (10000).
	MaxNodesPerWrite int
	// MaxNodesPerRead is OperationLimits.MaxNodesPerRead, likewise.
	MaxNodesPerRead int
	// HideLimits advertises 0 (no limit) for the four limits above while
	// enforcing them: a server that refuses large requests unannounced.
	HideLimits bool
}

// Server is a running (or stopped) node-opcua server process.
type Server struct {
	dir  string
	opts Options
	pki  string

	mu   sync.Mutex
	port int
	proc *process

	logMu sync.Mutex
	log   []string
}

// process is one node subprocess.
type process struct {
	cmd     *exec.Cmd
	stdinMu sync.Mutex
	stdin   io.WriteCloser
	ready   chan string // endpoint, once
	acks    chan int    // ServiceLevel acks
	retyped chan string // retype acks ("ID TYPE")
	done    chan struct{}
	waitErr error
}

// Dir returns the folder holding server.js and package.json. It is found
// from this source file's location; NODEOPCUA_DIR overrides it.
func Dir() (string, error) {
	if d := os.Getenv("NODEOPCUA_DIR"); d != "" {
		return d, nil
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("nodeopcua: cannot locate source file (set NODEOPCUA_DIR)")
	}
	d := filepath.Dir(file)
	if _, err := os.Stat(filepath.Join(d, "server.js")); err != nil {
		return "", fmt.Errorf("nodeopcua: server.js not found beside %s (built with -trimpath? set NODEOPCUA_DIR): %w", file, err)
	}
	return d, nil
}

func installed(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "node_modules", "node-opcua", "package.json"))
	return err == nil
}

// Install runs `npm ci` in Dir() if node-opcua is not installed there yet.
func Install(ctx context.Context) error {
	dir, err := Dir()
	if err != nil {
		return err
	}
	if installed(dir) {
		return nil
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("nodeopcua: npm ci in %s: %w\n%s", dir, err, out)
	}
	return nil
}

// Start starts a server and waits until it is ready (at most ReadyTimeout).
// It skips the test if node or node_modules is missing and CI is not set,
// and fails it if CI is set. The server is stopped by t.Cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not on PATH"
	} else if !installed(dir) {
		missing = fmt.Sprintf("node-opcua is not installed: run `npm ci` in %s", dir)
	}
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("nodeopcua: %s (CI is set, so it must have been installed)", missing)
		}
		t.Skipf("nodeopcua: %s; skipping", missing)
	}
	if opts.Type != "" && !validType(opts.Type) {
		t.Fatalf("nodeopcua: unknown type %q (want one of %v)", opts.Type, Types)
	}
	if opts.Password != "" && !opts.Security {
		t.Fatal("nodeopcua: Options.Password needs Options.Security (node-opcua offers no UserName token without a secure policy)")
	}
	s := &Server{dir: dir, opts: opts, port: opts.Port, pki: opts.PKIDir}
	if s.pki == "" {
		s.pki = t.TempDir()
	}
	if err := s.writeTrusted(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.logMu.Lock()
			defer s.logMu.Unlock()
			t.Logf("nodeopcua: last %d lines of server output:\n%s", len(s.log), strings.Join(s.log, "\n"))
		}
	})
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	return s
}

func validType(typ string) bool {
	for _, x := range Types {
		if x == typ {
			return true
		}
	}
	return false
}

func (s *Server) writeTrusted() error {
	for _, l := range []struct {
		sub   string
		certs [][]byte
	}{{"server", s.opts.TrustedClientCerts}, {"user", s.opts.TrustedUserCerts}} {
		if len(l.certs) == 0 {
			continue
		}
		d := filepath.Join(s.pki, l.sub, "trusted", "certs")
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		for i, der := range l.certs {
			b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("uamirror-test-%d.pem", i)), b, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Server) args(port int) []string {
	o := s.opts
	vars := o.Vars
	if vars == 0 {
		vars = 16
	}
	ns := o.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	maxN := o.MaxNotificationsPerPublish
	if maxN == 0 {
		maxN = 10000
	}
	sl := 255
	if o.ServiceLevel != nil {
		sl = int(*o.ServiceLevel)
	}
	a := []string{
		"server.js",
		"--port", strconv.Itoa(port),
		"--vars", strconv.Itoa(vars),
		"--rate", strconv.FormatFloat(o.Rate, 'g', -1, 64),
		"--ns", ns,
		"--pki", s.pki,
		"--security", strconv.FormatBool(o.Security),
		"--aes", strconv.FormatBool(o.Aes),
		"--auto-accept", strconv.FormatBool(!o.NoAutoAccept),
		"--allow-anonymous", strconv.FormatBool(!o.DenyAnonymous),
		"--service-level", strconv.Itoa(sl),
		"--max-notifications", strconv.Itoa(maxN),
	}
	if o.Type != "" {
		a = append(a, "--type", o.Type)
	}
	if o.MaxArrayLength > 0 {
		a = append(a, "--max-array-length", strconv.Itoa(o.MaxArrayLength))
	}
	if o.MaxStringLength > 0 {
		a = append(a, "--max-string-length", strconv.Itoa(o.MaxStringLength))
	}
	if o.MaxNodesPerWrite > 0 {
		a = append(a, "--max-nodes-per-write", strconv.Itoa(o.MaxNodesPerWrite))
	}
	if o.MaxNodesPerRead > 0 {
		a = append(a, "--max-nodes-per-read", strconv.Itoa(o.MaxNodesPerRead))
	}
	if o.HideLimits {
		a = append(a, "--hide-limits")
	}
	return a
}

func (s *Server) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		// Only what this package sets configures the server.
		if strings.HasPrefix(kv, "NODEOPCUA_") {
			continue
		}
		env = append(env, kv)
	}
	if s.opts.Password != "" {
		env = append(env, "NODEOPCUA_PASSWORD="+s.opts.Password)
	}
	return env
}

// start launches a process on s.port and waits for its ready line.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("nodeopcua: already running")
	}
	cmd := exec.Command("node", s.args(s.port)...)
	cmd.Dir = s.dir
	cmd.Env = s.env()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	p := &process{
		cmd:     cmd,
		stdin:   stdin,
		ready:   make(chan string, 1),
		acks:    make(chan int, 16),
		retyped: make(chan string, 16),
		done:    make(chan struct{}),
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("nodeopcua: start node: %w", err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if ep, ok := strings.CutPrefix(line, readyPrefix); ok {
				select {
				case p.ready <- ep:
				default:
				}
				continue
			}
			s.addLog("stdout: " + line)
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, retypeAck); ok {
				select {
				case p.retyped <- v:
				default:
				}
			}
			if v, ok := strings.CutPrefix(line, ackPrefix); ok {
				if n, err := strconv.Atoi(v); err == nil {
					select {
					case p.acks <- n:
					default:
					}
				}
			}
			s.addLog(line)
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		// Wait must not be called before the pipes are read to the end.
		readers.Wait()
		p.waitErr = cmd.Wait()
		close(p.done)
	}()

	readyTimeout := ReadyTimeout
	if v := os.Getenv("NODEOPCUA_READY_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			p.kill()
			return fmt.Errorf("nodeopcua: NODEOPCUA_READY_TIMEOUT: %w", err)
		}
		readyTimeout = d
	}
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case ep := <-p.ready:
		port, err := portOf(ep)
		if err != nil {
			p.kill()
			return err
		}
		s.port = port
		s.proc = p
		s.addLog(fmt.Sprintf("nodeopcua (go): ready at %s after %v", ep, time.Since(began).Round(time.Millisecond)))
		return nil
	case <-p.done:
		return fmt.Errorf("nodeopcua: server exited before it was ready (%v); output:\n%s", p.waitErr, s.lastLog(40))
	case <-timer.C:
		p.kill()
		return fmt.Errorf("nodeopcua: server not ready after %v; output:\n%s", readyTimeout, s.lastLog(40))
	}
}

func portOf(endpoint string) (int, error) {
	i := strings.LastIndexByte(endpoint, ':')
	if i < 0 {
		return 0, fmt.Errorf("nodeopcua: bad endpoint %q", endpoint)
	}
	port, err := strconv.Atoi(endpoint[i+1:])
	if err != nil || port <= 0 {
		return 0, fmt.Errorf("nodeopcua: bad endpoint %q", endpoint)
	}
	return port, nil
}

func (s *Server) addLog(line string) {
	if os.Getenv("NODEOPCUA_VERBOSE") != "" {
		fmt.Fprintln(os.Stderr, "nodeopcua:", line)
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if len(s.log) >= logLines {
		copy(s.log, s.log[1:])
		s.log = s.log[:len(s.log)-1]
	}
	s.log = append(s.log, line)
}

func (s *Server) lastLog(n int) string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	l := s.log
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// kill sends SIGKILL and waits for the process to be reaped.
func (p *process) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM, and SIGKILL if the process is still there after
// StopTimeout; it returns once the process is reaped, and says how.
func (p *process) stop() string {
	defer p.stdin.Close()
	select {
	case <-p.done:
		return "had exited"
	default:
	}
	began := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(StopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return fmt.Sprintf("exited %v after SIGTERM", time.Since(began).Round(time.Millisecond))
	case <-timer.C:
		p.kill()
		return fmt.Sprintf("killed: no exit %v after SIGTERM", StopTimeout)
	}
}

// Endpoint returns opc.tcp://127.0.0.1:PORT. It stays the same across Restart.
func (s *Server) Endpoint() string {
	return fmt.Sprintf("opc.tcp://127.0.0.1:%d", s.Port())
}

// Port returns the TCP port the server listens on.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// Namespace returns the namespace URI of the variables.
func (s *Server) Namespace() string {
	if s.opts.Namespace == "" {
		return DefaultNamespace
	}
	return s.opts.Namespace
}

// PKIDir returns the instance's PKI folder; the server's certificate store
// is its subfolder server/ (own/, trusted/, rejected/, issuers/).
func (s *Server) PKIDir() string { return s.pki }

// Running reports whether the process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (s *Server) take() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	s.proc = nil
	return p
}

// Stop shuts the server down gracefully (SIGTERM, then SIGKILL after
// StopTimeout) and waits for the process. It does nothing if it is stopped.
func (s *Server) Stop() {
	if p := s.take(); p != nil {
		s.addLog("nodeopcua (go): stop: " + p.stop())
	}
}

// Kill kills the server at once (SIGKILL), as a crash would, and waits for
// the process. It does nothing if it is stopped.
func (s *Server) Kill() {
	if p := s.take(); p != nil {
		p.kill()
		p.stdin.Close()
	}
}

// Restart stops the server if it is running and starts it again on the same
// port with the same options and PKI folder (same server certificate).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// SetServiceLevel sets Server/ServiceLevel and returns once the server has
// applied it.
func (s *Server) SetServiceLevel(n byte) error {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return errors.New("nodeopcua: server is not running")
	}
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	// drop stale acks
	for len(p.acks) > 0 {
		<-p.acks
	}
	if _, err := fmt.Fprintf(p.stdin, "servicelevel %d\n", n); err != nil {
		return fmt.Errorf("nodeopcua: write control line: %w", err)
	}
	timer := time.NewTimer(controlTimeout)
	defer timer.Stop()
	for {
		select {
		case got := <-p.acks:
			if got == int(n) {
				return nil
			}
		case <-p.done:
			return errors.New("nodeopcua: server exited")
		case <-timer.C:
			return fmt.Errorf("nodeopcua: no ack for servicelevel %d after %v", n, controlTimeout)
		}
	}
}

// Retype replaces the variable ns=<ns>;s=id of the Typed object by one of
// DataType typ (Double, Float, Int32, Duration, UtcTime, ServerState,
// DateTime, ByteString, BaseDataType) with that type's initial value, as a PLC download
// that changes a node's type does. It returns once the server acked it.
// The Typed variables (t.duration, t.utctime, t.enum, t.date9999,
// t.date1601, t.dateOld, t.double, t.bytes, t.any) are described in server.js.
func (s *Server) Retype(id, typ string) error {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return errors.New("nodeopcua: server is not running")
	}
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	for len(p.retyped) > 0 {
		<-p.retyped
	}
	if _, err := fmt.Fprintf(p.stdin, "retype %s %s\n", id, typ); err != nil {
		return fmt.Errorf("nodeopcua: write control line: %w", err)
	}
	timer := time.NewTimer(controlTimeout)
	defer timer.Stop()
	for {
		select {
		case got := <-p.retyped:
			if got == id+" "+typ {
				return nil
			}
		case <-p.done:
			return errors.New("nodeopcua: server exited")
		case <-timer.C:
			return fmt.Errorf("nodeopcua: no ack for retype %s %s after %v", id, typ, controlTimeout)
		}
	}
}
