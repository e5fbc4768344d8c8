package pair

import (
	"fmt"
	"testing"

	"github.com/uamirror/uamirror/test/harness"
)

// TestSourceClockStepsAcrossFailover (issue 14 items 1 and 2): the
// source's clock steps back an hour mid-run; the active keeps mirroring
// (values are taken in the session's order, whatever their timestamps),
// and so does the standby after the active is killed; then the clock
// jumps to an hour ahead and values still flow. (The journal invariants
// are not checked: a step back makes the written source timestamps go
// back, which is this test's point.)
func TestSourceClockStepsAcrossFailover(t *testing.T) {
	t.Parallel()
	p := startPair(t, pairOpts{vars: 5})
	act, sby, epoch := p.waitStable(settle)
	p.waitMirrored(p.static(), settle)
	step := func(d string) {
		t.Helper()
		if err := p.plc.Proc.Send("clock step " + d); err != nil {
			t.Fatalf("simserver control: %v", err)
		}
	}

	step("-1h")
	p.setStatic(t)
	p.waitMirrored(p.static(), settle) // the active, an hour back

	p.kill(act)
	p.waitActive(sby, epoch+1, settle)
	p.setStatic(t)
	p.waitMirrored(p.static(), settle) // the new active, still an hour back

	step("2h") // an hour ahead of the nodes
	p.setStatic(t)
	p.waitMirrored(p.static(), settle)
}

// TestBothPairFiveMinutesApartAcrossFailover (issue 14 items 1 and 2):
// both mappings between two servers whose clocks are 5 minutes apart
// (the target's behind), with clock_skew above that: a change on either
// side is mirrored to the other, before and after the active is killed.
func TestBothPairFiveMinutesApartAcrossFailover(t *testing.T) {
	t.Parallel()
	p := startPair(t, pairOpts{vars: 3, both: true, scadaArgs: []string{"--clock-offset", "-5m"}, engine: "  clock_skew: 10m\n"})
	act, sby, epoch := p.waitStable(settle)
	p.waitMirrored(p.static(), settle)
	change := func(on *sim, v float64) {
		t.Helper()
		on.Set(t, 0, v)
		harness.WaitState(t, settle, fmt.Sprintf("%v on both sides", v), func() (bool, string) {
			a, _, err := p.plc.Read([]int{0})
			if err != nil {
				return false, err.Error()
			}
			b, _, err := p.scada.Read([]int{0})
			if err != nil {
				return false, err.Error()
			}
			return a[0] == v && b[0] == v, fmt.Sprintf("plc %v, scada %v", a[0], b[0])
		})
	}
	change(p.scada, 777)
	change(p.plc, 778)
	change(p.scada, 779)

	p.kill(act)
	p.waitActive(sby, epoch+1, settle)
	change(p.scada, 780)
	change(p.plc, 781)
	change(p.scada, 782)
}
