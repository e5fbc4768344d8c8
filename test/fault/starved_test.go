package fault

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
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

	"github.com/uamirror/uamirror/test/harness"
)

var (
	starvedRuns = flag.Int("fault.starved", envInt("UAMIRROR_FAULT_STARVED", 0),
		"starved mode: rounds of each starved scenario (0: the CI's short version, one round of isolate-active and freeze-active); also UAMIRROR_FAULT_STARVED=N")
	starvedSeed = flag.Uint64("fault.starved-seed", 0, "starved mode's seed (0: from the clock); printed, so a run can be repeated")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// starvedScenario is one scenario of the starved mode, run for several
// rounds on one bed.
type starvedScenario struct {
	name, expected string
	ci             bool // part of the CI's short version
	round          func(s *starver, act, sby *member, epoch uint64)
}

var starvedScenarios = []starvedScenario{
	{"isolate-active", "the active's host off the network: the standby takes over after the old active's lease and abort bound; no second writer, no regression", true,
		func(s *starver, act, sby *member, epoch uint64) {
			e := s.e
			e.lab.Isolate(act.Host)
			e.waitActive(sby, epoch, rejoin)
			e.lab.Rejoin(act.Host)
		}},
	{"freeze-active", "SIGSTOP of the active for 1.5–3 s (past the election): the standby takes over; the thawed old active writes nothing late", true,
		func(s *starver, act, sby *member, epoch uint64) {
			hold := time.Duration(1500+s.rng.IntN(1500)) * time.Millisecond
			s.mu.Lock() // the random freezer keeps off this process meanwhile
			err := act.Proc.Signal(syscall.SIGSTOP)
			if err == nil {
				<-time.After(hold) // the fault's duration, not a synchronisation
				err = act.Proc.Signal(syscall.SIGCONT)
			}
			s.mu.Unlock()
			if err != nil {
				s.e.t.Fatalf("freeze %s: %v", act.ID, err)
			}
		}},
	{"kill-during-update", "kill -9 of the active while it applies a mappings update: the new active runs the whole new config or the old one; no second writer", false,
		func(s *starver, act, sby *member, epoch uint64) {
			s.killDuringUpdate(act, sby, epoch)
		}},
}

// TestStarved is the fault matrix's starved mode (#11 item 6): CPU hogs
// at 2× the cores (stress-ng when installed, busy processes otherwise)
// plus random SIGSTOP of the current active for 50–2,000 ms, while
// isolate-active, freeze-active and kill-during-update run round after
// round. The invariants over the whole target journal must hold: no
// second writer, no regression. CI runs one round of isolate-active and
// freeze-active; -fault.starved N (make fault-starved) runs N rounds of
// each.
func TestStarved(t *testing.T) {
	rounds := *starvedRuns
	short := rounds <= 0
	if short {
		rounds = 1
	}
	seed := *starvedSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("starved mode: seed %d, %d round(s) per scenario", seed, rounds)
	for i, sc := range starvedScenarios {
		if short && !sc.ci {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			e := start(t, opts{})
			r := e.scenario("starved-"+sc.name, fmt.Sprintf("%d rounds under CPU hogs (2× cores) and random SIGSTOP of the active: %s", rounds, sc.expected))
			s := &starver{e: e, rng: rand.New(rand.NewPCG(seed, uint64(i)))}
			e.waitStable(rejoin)
			s.hog(2 * runtime.NumCPU())
			stopFreezer := s.freezer()
			began := time.Now()
			done := 0
			t.Cleanup(func() {
				// A round that failed ends the test early: the totals
				// still come from the whole journal (members run here).
				stopFreezer()
				s.stopHogs()
				if r.Observed == "" {
					e.check(r)
					e.switchGaps(r, began)
					r.Observed = fmt.Sprintf("FAILED after %d of %d rounds; %d random freezes; %d writes checked, %d switchovers, %d violations, %d two-writer intervals",
						done, rounds, s.freezes, r.Writes, r.Switchovers, r.Violations, r.TwoWriters)
				}
			})
			for i := range rounds {
				act, sby, epoch := e.waitStable(rejoin)
				t.Logf("round %d/%d: %s on active %s (epoch %d)", i+1, rounds, sc.name, act.ID, epoch)
				sc.round(s, act, sby, epoch)
				done++
				if t.Failed() {
					break
				}
			}
			stopFreezer()
			s.stopHogs()
			e.finish(r)
			e.switchGaps(r, began)
			r.Observed = fmt.Sprintf("%d rounds; %d random freezes of the active (%s); %d writes checked, %d switchovers, %d violations, %d two-writer intervals",
				done, s.freezes, s.frozeFor.Round(time.Millisecond), r.Writes, r.Switchovers, r.Violations, r.TwoWriters)
		})
	}
}

// starver owns the hogs and the random freezer of one starved bed.
type starver struct {
	e   *bed
	rng *rand.Rand // used by the test goroutine only

	// mu serialises signals to the members (the random freezer, a
	// scenario's own freeze, kill and restart).
	mu       sync.Mutex
	freezes  int
	frozeFor time.Duration

	hogs []*exec.Cmd
}

// hog starts n CPU hogs, stopped in the test's cleanup at the latest.
func (s *starver) hog(n int) {
	t := s.e.t
	var cmd *exec.Cmd
	if p, err := exec.LookPath("stress-ng"); err == nil {
		cmd = exec.Command(p, "--cpu", strconv.Itoa(n), "--cpu-method", "matrixprod", "--quiet")
		s.hogs = append(s.hogs, cmd)
	} else {
		t.Logf("stress-ng not installed: %d busy shell loops instead", n)
		for range n {
			s.hogs = append(s.hogs, exec.Command("sh", "-c", "while :; do :; done"))
		}
	}
	for _, c := range s.hogs {
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // stress-ng's workers die with their group
		if err := c.Start(); err != nil {
			t.Fatalf("CPU hog: %v", err)
		}
	}
	t.Cleanup(s.stopHogs)
	t.Logf("CPU hogs: %d on %d cores (%s)", n, runtime.NumCPU(), filepath.Base(s.hogs[0].Path))
}

// stopHogs kills the hogs' process groups and waits for them.
func (s *starver) stopHogs() {
	for _, c := range s.hogs {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		_ = c.Wait()
	}
	s.hogs = nil
}

// freezer SIGSTOPs the current active (as its own status says) for a
// random 50–2,000 ms, every 1–4 s, until the returned stop is called;
// stop waits for the freezer and leaves no member stopped.
func (s *starver) freezer() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var once sync.Once
	rng := rand.New(rand.NewPCG(s.rng.Uint64(), 1)) // the freezer's own
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(1000+rng.IntN(3000)) * time.Millisecond):
			}
			act := s.currentActive()
			if act == nil {
				continue
			}
			hold := time.Duration(50+rng.IntN(1951)) * time.Millisecond
			s.mu.Lock()
			if act.Proc.Exited() || act.Proc.Signal(syscall.SIGSTOP) != nil {
				s.mu.Unlock()
				continue
			}
			select {
			case <-ctx.Done():
			case <-time.After(hold):
			}
			_ = act.Proc.Signal(syscall.SIGCONT)
			s.freezes++
			s.frozeFor += hold
			s.mu.Unlock()
		}
	}()
	return func() { once.Do(func() { cancel(); wg.Wait() }) }
}

// currentActive returns the node that reports itself active, or nil.
// It holds mu: the test goroutine restarts members under it.
func (s *starver) currentActive() *member {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range []*member{s.e.a, s.e.b} {
		if st, err := s.e.status(m); err == nil && st.Role == "active" {
			return m
		}
	}
	return nil
}

// killDuringUpdate is one round of kill-during-update: a mappings update
// (toggling the last mapping) sent to the active, killed with SIGKILL as
// soon as the whole request is on its way; the new active must run the
// old or the new config in full; the killed node restarts.
func (s *starver) killDuringUpdate(act, sby *member, epoch uint64) {
	e := s.e
	mapped := e.O.Vars - 1
	if e.O.Mapped == mapped {
		mapped = e.O.Vars
	}
	oldHash := e.CfgHash
	newPath := filepath.Join(e.dir, fmt.Sprintf("mirror-%d.yml", mapped))
	newHash := e.writeConfig(newPath, mapped)
	body, err := os.ReadFile(newPath)
	if err != nil {
		e.t.Fatal(err)
	}
	sent := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPut,
			e.adminURL(act)+"/api/v1/mappings?file="+filepath.Base(newPath), &signalReader{r: strings.NewReader(string(body)), sent: sent})
		res, err := act.Client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			err = fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(b)))
		}
		done <- err
	}()
	select {
	case <-sent:
	case err := <-done: // refused or failed before the body went out
		e.t.Logf("the update's request ended before it was sent: %v", err)
		return
	}
	s.mu.Lock()
	act.Proc.Kill()
	s.mu.Unlock()
	<-done
	e.waitActive(sby, epoch, rejoin)
	var hash string
	harness.WaitState(e.t, settle, "the new active's config hash", func() (bool, string) {
		st, err := e.status(sby)
		if err != nil {
			return false, err.Error()
		}
		hash = st.ConfigHash
		return hash != "", harness.Brief(st)
	})
	switch hash {
	case newHash:
		e.CfgHash, e.O.Mapped = newHash, mapped
	case oldHash:
	default:
		e.t.Errorf("the new active runs config %.12s, neither the old %.12s nor the new %.12s", hash, oldHash, newHash)
	}
	s.mu.Lock()
	e.restart(act)
	s.mu.Unlock()
}
