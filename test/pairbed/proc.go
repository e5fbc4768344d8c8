package pairbed

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/uamirror/uamirror/test/harness"
)

// StartMember starts m's process (on its lab host in a lab).
func (p *Pair) StartMember(m *Member) {
	p.T.Helper()
	if p.O.Lab != nil {
		m.Proc = harness.StartIn(p.T, p.O.Lab.Exec(m.Host), p.O.Lab.Env(), m.Args...)
		return
	}
	m.Proc = harness.Start(p.T, m.Args...)
}

// Kill kills m with SIGKILL and returns when it is gone.
func (p *Pair) Kill(m *Member) time.Time {
	m.Proc.Kill()
	return time.Now()
}

// Restart starts a killed member again (same addresses and data dir).
func (p *Pair) Restart(m *Member) {
	p.T.Helper()
	p.CheckCrash(m.ID, m.Proc) // Restart starts a new stderr
	m.Proc.Restart()
}

// Freeze stops m with SIGSTOP (it keeps its sockets and timers, and
// answers nothing); Thaw lets it run on with SIGCONT.
func (p *Pair) Freeze(m *Member) {
	p.T.Helper()
	if err := m.Proc.Signal(syscall.SIGSTOP); err != nil {
		p.T.Fatalf("freeze %s: %v", m.ID, err)
	}
}

// Thaw resumes a member stopped by Freeze.
func (p *Pair) Thaw(m *Member) {
	p.T.Helper()
	if err := m.Proc.Signal(syscall.SIGCONT); err != nil {
		p.T.Fatalf("thaw %s: %v", m.ID, err)
	}
}

// CheckCrash fails the test if a process reported a data race (the
// processes are race-instrumented when the tests are), a panic or a fatal
// runtime error on its stderr. An instrumented process reports a race
// and carries on, so nothing else would notice.
func (p *Pair) CheckCrash(name string, proc *harness.Proc) {
	p.T.Helper()
	out := proc.Stderr.String()
	for _, marker := range []string{"WARNING: DATA RACE", "\npanic: ", "\nfatal error: "} {
		if i := strings.Index("\n"+out, marker); i >= 0 {
			p.T.Errorf("%s: %s\n%s", name, strings.TrimSpace(marker), out[max(0, i-1):min(len(out), i+4000)])
			return
		}
	}
}

// DumpLogs keeps every member's log and the target journal in a
// directory under the system's temp dir and logs the last lines of each
// log (Start's cleanup calls it on failure, or always with
// <NAME>_KEEP_LOGS=1).
func (p *Pair) DumpLogs() {
	dir := filepath.Join(os.TempDir(), "uamirror-"+p.O.Name+"-logs", strings.ReplaceAll(p.T.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.T.Logf("cannot keep the member logs: %v", err)
	} else {
		p.T.Logf("member logs in %s", dir)
	}
	if b, err := os.ReadFile(p.SCADA.Journal); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "scada.journal"), b, 0o644)
	}
	for _, m := range []*Member{p.A, p.B, p.Arb} {
		if m == nil || m.Proc == nil {
			continue
		}
		log := m.Proc.Stderr.String()
		_ = os.WriteFile(filepath.Join(dir, m.ID+".log"), []byte(log), 0o644)
		var keep []string
		for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
			if !strings.Contains(l, `"level":"debug"`) {
				keep = append(keep, l[:min(len(l), 400)])
			}
		}
		if len(keep) > 40 {
			keep = keep[len(keep)-40:]
		}
		p.T.Logf("---- log of %s (last %d lines) ----\n%s", m.ID, len(keep), strings.Join(keep, "\n"))
	}
}
