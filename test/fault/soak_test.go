package fault

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/test/invariant"
)

var (
	soakFor  = flag.Duration("soak", 0, "run TestSoak for this long (0: skip), e.g. -soak 30m")
	soakSeed = flag.Uint64("seed", 0, "TestSoak's seed (0: from the clock); printed, so a run can be repeated")
)

// fault is one kind of fault the soak injects: inject breaks something
// and returns how to undo it.
type fault struct {
	name   string
	inject func(e *bed, act, sby *member) (heal func())
}

var faults = []fault{
	{"cut-ab", func(e *bed, _, _ *member) func() {
		e.lab.Cut(hA, hB)
		return func() { e.lab.Heal(hA, hB) }
	}},
	{"isolate-active", func(e *bed, act, _ *member) func() {
		e.lab.Isolate(act.Host)
		return func() { e.lab.Rejoin(act.Host) }
	}},
	{"isolate-standby", func(e *bed, _, sby *member) func() {
		e.lab.Isolate(sby.Host)
		return func() { e.lab.Rejoin(sby.Host) }
	}},
	{"isolate-arbiter", func(e *bed, _, _ *member) func() {
		e.lab.Isolate(hArb)
		return func() { e.lab.Rejoin(hArb) }
	}},
	{"cut-active-plc", func(e *bed, act, _ *member) func() {
		e.lab.Cut(act.Host, hPLC)
		return func() { e.lab.Heal(act.Host, hPLC) }
	}},
	{"cut-active-scada", func(e *bed, act, _ *member) func() {
		e.lab.Cut(act.Host, hSCADA)
		return func() { e.lab.Heal(act.Host, hSCADA) }
	}},
	{"kill-active", func(e *bed, act, _ *member) func() {
		act.Proc.Kill()
		return func() { e.restart(act) }
	}},
	{"kill-standby", func(e *bed, _, sby *member) func() {
		sby.Proc.Kill()
		return func() { e.restart(sby) }
	}},
	{"kill-both", func(e *bed, _, _ *member) func() {
		e.a.Proc.Kill()
		e.b.Proc.Kill()
		return func() { e.restart(e.a); e.restart(e.b) }
	}},
	{"freeze-active", func(e *bed, act, _ *member) func() {
		e.Freeze(act)
		return func() { e.Thaw(act) }
	}},
	{"delay-loss-nodes", func(e *bed, _, _ *member) func() {
		for _, h := range []string{hA, hB} {
			e.lab.Delay(h, 50)
			e.lab.Loss(h, 5)
		}
		return func() {
			for _, h := range []string{hA, hB} {
				e.lab.Delay(h, 0)
				e.lab.Loss(h, 0)
			}
		}
	}},
}

// TestSoak runs the pair in the lab for -soak with random faults (seeded
// by -seed), one at a time: inject, hold 2–8 s, heal, wait for a stable
// pair; at the end the invariants over the whole target journal and the
// totals. Not part of CI.
func TestSoak(t *testing.T) {
	if *soakFor == 0 {
		t.Skip("soak: run with -soak DURATION (e.g. go test -race -timeout 45m ./test/fault -run Soak -soak 30m -v)")
	}
	seed := *soakSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	fmt.Printf("soak: seed %d, duration %s\n", seed, *soakFor)
	t.Logf("soak: seed %d, duration %s", seed, *soakFor)
	rng := rand.New(rand.NewPCG(seed, 0))
	e := start(t, opts{cooldown: 5 * time.Second})
	r := e.scenario("soak", fmt.Sprintf("random faults for %s (seed %d): after every fault a stable pair; no invariant violated", *soakFor, seed))
	counts := map[string]int{}
	rounds := 0
	began := time.Now()
	t.Cleanup(func() {
		// Totals even when a round failed (the members still run here).
		if r.Observed == "" {
			e.check(r)
			e.switchGaps(r, began)
		}
		var names []string
		for n, c := range counts {
			names = append(names, fmt.Sprintf("%s=%d", n, c))
		}
		sort.Strings(names)
		gap := "-"
		if r.GapMS != nil {
			gap = fmt.Sprintf("%.0f ms", *r.GapMS)
		}
		msg := fmt.Sprintf("soak totals: seed %d, %s, %d faults (%s); writes checked %d; switchovers %d; max switchover gap %s; violations %d; two-writer intervals %d; passed %v",
			seed, time.Since(began).Round(time.Second), rounds, strings.Join(names, " "), r.Writes, r.Switchovers, gap, r.Violations, r.TwoWriters, !t.Failed())
		fmt.Println(msg)
		t.Log(msg)
	})
	deadline := began.Add(*soakFor)
	for time.Now().Before(deadline) {
		act, sby, _ := e.waitStable(rejoin)
		f := faults[rng.IntN(len(faults))]
		hold := time.Duration(2000+rng.IntN(6000)) * time.Millisecond
		t.Logf("round %d: %s for %s (active %s)", rounds+1, f.name, hold, act.ID)
		heal := f.inject(e, act, sby)
		<-time.After(hold) // the fault's duration, not a synchronisation
		heal()
		counts[f.name]++
		rounds++
	}
	e.finish(r)
	e.switchGaps(r, began)
	r.Observed = fmt.Sprintf("%d faults, stable after each; %d writes checked, %d switchovers", rounds, r.Writes, r.Switchovers)
	_ = invariant.MaxViolations
}
