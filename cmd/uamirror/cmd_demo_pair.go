package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/uamirror/uamirror/pki"
	"github.com/uamirror/uamirror/redundancy"
)

// demoChildReady bounds the wait for a demo child's ready line: a first
// start on a busy 2-core machine (a race build in the tests) has taken
// over 30 s.
const demoChildReady = 90 * time.Second

// demoProc is a child process of the pair demo. The demo owns it: stop
// kills it and waits.
type demoProc struct {
	name string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// startChild starts this binary with args and waits for its ready line.
func startChild(ctx context.Context, dir, name string, args ...string) (*demoProc, map[string]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	p := &demoProc{name: name, args: args}
	p.cmd = exec.Command(exe, append([]string{"--log-format", "json"}, args...)...)
	// The children die with the demo, even on kill -9 of the demo.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, nil, err
	}
	p.cmd.Stderr = logf
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.done = make(chan struct{})
	ready := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 1 && f[1] == "ready" {
				kv := map[string]string{}
				for _, x := range f[2:] {
					if k, v, ok := strings.Cut(x, "="); ok {
						kv[k] = v
					}
				}
				select {
				case ready <- kv:
				default:
				}
			}
		}
	}()
	go func() { _ = p.cmd.Wait(); logf.Close(); close(p.done) }()
	select {
	case kv := <-ready:
		return p, kv, nil
	case <-p.done:
		return nil, nil, fmt.Errorf("%s exited before it was ready (see %s)", name, filepath.Join(dir, name+".log"))
	case <-time.After(demoChildReady):
		p.kill()
		return nil, nil, fmt.Errorf("%s not ready after %s", name, demoChildReady)
	case <-ctx.Done():
		p.kill()
		return nil, nil, ctx.Err()
	}
}

func (p *demoProc) kill() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *demoProc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		p.kill()
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// journalWatch follows a simserver write journal: values written and the
// bad ones (Bad/Uncertain status, or a zero value, which the demo's
// sources never produce).
type journalWatch struct {
	path   string
	off    int64
	writes int
	bad    int
}

func (j *journalWatch) poll() {
	f, err := os.Open(j.path)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(j.off, io.SeekStart); err != nil {
		return
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return // a partial line is read again next time
		}
		j.off += int64(len(line))
		var e struct {
			Value  any    `json:"value"`
			Status uint32 `json:"status"`
		}
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		j.writes++
		if e.Status>>30 != 0 || e.Value == nil || e.Value == 0.0 {
			j.bad++
		}
	}
}

func getStatus(ctx context.Context, admin string) (redundancy.Status, error) {
	return adminClient(ctx, admin).Status(ctx)
}

// runPairDemo runs the redundant pair as child processes: two simulation
// servers, an arbiter and two nodes; kills the active after killAfter and
// shows the takeover. The members' logs and data are in a temporary
// directory, removed at the end unless keepLogs is set or the demo
// failed; the last line says which.
func runPairDemo(ctx context.Context, out io.Writer, n int, rate float64, duration, killAfter time.Duration, pkiPath string, keepLogs bool) (err error) {
	dir, err := os.MkdirTemp("", "uamirror-demo-")
	if err != nil {
		return fmt.Errorf("demo: log directory: %w", err)
	}
	var procs []*demoProc
	var mu sync.Mutex
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
		switch {
		case err != nil || keepLogs:
			fmt.Fprintf(out, "logs kept in %s\n", dir)
		default:
			if rerr := os.RemoveAll(dir); rerr != nil {
				fmt.Fprintf(out, "could not remove the logs in %s: %v\n", dir, rerr)
				return
			}
			fmt.Fprintf(out, "logs in %s removed (--keep-logs keeps them)\n", dir)
		}
	}()
	add := func(p *demoProc) {
		mu.Lock()
		procs = append(procs, p)
		mu.Unlock()
	}
	journal := filepath.Join(dir, "scada.journal")
	plcArgs := []string{"simserver", "--vars", strconv.Itoa(n), "--type", "Double", "--rate", fmt.Sprint(rate)}
	if pkiPath != "" {
		plcArgs = append(plcArgs, "--security", "Basic256Sha256:SignAndEncrypt")
	}
	plc, kv, err := startChild(ctx, dir, "plc", plcArgs...)
	if err != nil {
		return err
	}
	add(plc)
	plcEP := kv["endpoint"]
	plcSec := ""
	if pkiPath != "" {
		pin, err := demoPin(ctx, plcEP)
		if err != nil {
			return err
		}
		plcSec = fmt.Sprintf("\n    security_policy: Basic256Sha256\n    security_mode: SignAndEncrypt\n    trusted_certificates: [%s]", pin)
	}
	scada, kv, err := startChild(ctx, dir, "scada", "simserver", "--vars", strconv.Itoa(n), "--type", "Double", "--journal", journal)
	if err != nil {
		return err
	}
	add(scada)
	scadaEP := kv["endpoint"]

	var cfg strings.Builder
	fmt.Fprintf(&cfg, "servers:\n  - name: plc\n    endpoints: [%s]%s\n    timeouts: {keepalive: 250ms, request: 1s}\n  - name: scada\n    endpoints: [%s]\n    timeouts: {keepalive: 250ms, request: 1s}\nengine: {publishing_interval: 50ms, retry_min: 50ms, retry_max: 1s}\nmappings:\n", plcEP, plcSec, scadaEP)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&cfg, "  - {source: {server: plc, node: \"nsu=urn:uamirror:simserver;s=v%d\"}, target: {server: scada, node: \"nsu=urn:uamirror:simserver;s=v%d\"}}\n", i, i)
	}
	cfgPath := filepath.Join(dir, "mirror.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		return err
	}
	type member struct{ id, role, raft, peer, admin string }
	ms := []*member{{id: "a", role: "node"}, {id: "b", role: "node"}, {id: "arbiter", role: "arbiter"}}
	// The pair runs secured, as in production: a throwaway pair PKI in
	// the demo's directory (mutual TLS on raft and the peer link, https on
	// the admin APIs, which the demo reads from loopback).
	pairPKI, err := pki.InitPair(filepath.Join(dir, "pair-pki"), []pki.PairMemberSpec{{ID: "a", Hosts: []string{"127.0.0.1"}},
		{ID: "b", Hosts: []string{"127.0.0.1"}}, {ID: "arbiter", Hosts: []string{"127.0.0.1"}}}, 24*time.Hour)
	if err != nil {
		return fmt.Errorf("demo pair PKI: %w", err)
	}
	caPEM, err := os.ReadFile(pairPKI.CACert)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	ctx = context.WithValue(ctx, adminCredsKey{}, &adminCreds{tls: true, client: &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}}}})
	var memberArgs []string
	for _, m := range ms {
		for _, p := range []*string{&m.raft, &m.peer, &m.admin} {
			if *p, err = freeAddr(); err != nil {
				return err
			}
		}
		arg := fmt.Sprintf("id=%s,role=%s,raft=%s,admin=%s", m.id, m.role, m.raft, m.admin)
		if m.role == "node" {
			arg += ",peer=" + m.peer
		}
		memberArgs = append(memberArgs, "--member", arg)
	}
	start := func(m *member) (*demoProc, error) {
		mf := pairPKI.Members[m.id]
		args := []string{m.role, "--id", m.id, "--data", filepath.Join(dir, m.id),
			"--tls-ca", pairPKI.CACert, "--tls-cert", mf.Cert, "--tls-key", mf.Key}
		if m.role == "node" {
			args = append(args, "--config", cfgPath)
			if pkiPath != "" {
				args = append(args, "--pki", filepath.Join(pkiPath, m.id))
			}
		}
		p, _, err := startChild(ctx, dir, m.id, append(args, memberArgs...)...)
		return p, err
	}
	nodes := map[string]*demoProc{}
	for _, m := range ms {
		p, err := start(m)
		if err != nil {
			return err
		}
		add(p)
		nodes[m.id] = p
	}
	fmt.Fprintf(out, "uamirror pair demo: %d mappings, %.0f changes/s; plc %s → scada %s\nmembers: a, b (bridge nodes), arbiter; logs in %s (%s)\n"+
		"secured: mutual TLS on raft and the peer link, https admin APIs (throwaway pair PKI in %s)\n",
		n, rate, plcEP, scadaEP, dir, map[bool]string{true: "kept at the end", false: "removed at the end unless --keep-logs"}[keepLogs], filepath.Dir(pairPKI.CACert))
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	jw := &journalWatch{path: journal}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	t0 := time.Now()
	killed, restarted := "", false
	var killedAt time.Time
	lastWrites := 0
	for {
		select {
		case <-ctx.Done():
			jw.poll()
			fmt.Fprintf(out, "stopped: %d values written to scada, %d bad writes\n", jw.writes, jw.bad)
			return nil
		case <-tick.C:
		}
		jw.poll()
		roles := []string{}
		active := ""
		var epoch uint64
		for _, m := range ms {
			st, err := getStatus(ctx, m.admin)
			switch {
			case err != nil:
				roles = append(roles, m.id+"=down")
			default:
				r := string(st.Role)
				if st.Role == redundancy.PairStandby && st.Ready {
					r = "standby(READY)"
				}
				roles = append(roles, m.id+"="+r)
				if st.Role == redundancy.PairActive {
					active, epoch = m.id, st.Epoch
				}
			}
		}
		if ctx.Err() != nil {
			continue // the summary comes from the Done case
		}
		fmt.Fprintf(out, "%4.0fs  %-50s epoch %d  %6d values/s  bad writes %d\n", time.Since(t0).Seconds(),
			strings.Join(roles, " "), epoch, jw.writes-lastWrites, jw.bad)
		lastWrites = jw.writes
		switch {
		case killed == "" && active != "" && time.Since(t0) >= killAfter:
			fmt.Fprintf(out, ">>> kill -9 of the active node %s\n", active)
			nodes[active].kill()
			killed, killedAt = active, time.Now()
		case killed != "" && !restarted && active != "" && active != killed:
			var evs []redundancy.Event
			for _, m := range ms {
				if m.id == active {
					evs, _ = adminClient(ctx, m.admin).Events(ctx)
				}
			}
			gap := "measuring"
			if k := len(evs); k > 0 && evs[k-1].GapMS != nil {
				gap = fmt.Sprintf("%.0f ms", *evs[k-1].GapMS)
			} else if k > 0 {
				continue // wait for the first write of the new active
			}
			fmt.Fprintf(out, ">>> %s took over (epoch %d) %.1fs after the kill; gap between the last write of %s and the first of %s: %s; %d bad writes\n",
				active, epoch, time.Since(killedAt).Seconds(), killed, active, gap, jw.bad)
			for _, m := range ms {
				if m.id == killed {
					p, err := start(m)
					if err != nil {
						return fmt.Errorf("restart %s: %w", killed, err)
					}
					add(p)
					nodes[killed] = p
				}
			}
			fmt.Fprintf(out, ">>> restarted %s: it rejoins as standby\n", killed)
			restarted = true
		}
	}
}
