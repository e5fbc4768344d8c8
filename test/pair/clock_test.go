package pair

import "testing"

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
		if err := p.plc.proc.Send("clock step " + d); err != nil {
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
