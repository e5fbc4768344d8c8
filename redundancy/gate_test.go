package redundancy

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func applyTo(t *testing.T, f *fsm, c command) {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if res := f.Apply(&raft.Log{Data: b}); res != nil {
		t.Fatalf("apply %s: %v", c.Op, res)
	}
}

// TestFencePermitNeedsRecordedActive (#11 item 3): an open gate with a
// valid lease still permits nothing once the replicated state names
// another node active, or a later epoch.
func TestFencePermitNeedsRecordedActive(t *testing.T) {
	f := &fsm{}
	g := newGate("a", f.recorded)
	applyTo(t, f, command{Op: "promote", Node: "a", Epoch: 1})
	g.extend(time.Now().Add(time.Hour))
	g.setOpen(true, 1)
	if e, ok := g.Permit(); !ok || e != 1 {
		t.Fatalf("Permit = %d, %v; want 1, true", e, ok)
	}
	applyTo(t, f, command{Op: "promote", Node: "b", Epoch: 2})
	if _, ok := g.Permit(); ok {
		t.Errorf("Permit true while the replicated state names b active in epoch 2")
	}
	if g.LeaseValid() {
		t.Errorf("LeaseValid true while the replicated state names b active in epoch 2 (in-flight writes would not be aborted)")
	}
	// Opened under a stale epoch (the state says a, epoch 3): no write.
	applyTo(t, f, command{Op: "promote", Node: "a", Epoch: 3})
	if _, ok := g.Permit(); ok {
		t.Errorf("Permit true under epoch 1 while a is active in epoch 3")
	}
	g.setOpen(true, 3)
	if _, ok := g.Permit(); !ok {
		t.Errorf("Permit false for the recorded active of the current epoch")
	}
}

// TestFenceWaitHoldsFirstWrite: a gate opened after an unplanned
// takeover permits nothing before the fence wait is over, and signals
// Changed when it is.
func TestFenceWaitHoldsFirstWrite(t *testing.T) {
	f := &fsm{}
	g := newGate("a", f.recorded)
	applyTo(t, f, command{Op: "promote", Node: "a", Epoch: 1})
	g.extend(time.Now().Add(time.Hour))
	wait := 150 * time.Millisecond
	start := time.Now()
	g.openAfter(true, 1, start.Add(wait))
	<-g.Changed() // the open itself
	if _, ok := g.Permit(); ok && time.Since(start) < wait {
		t.Fatalf("Permit true %s into a fence wait of %s", time.Since(start), wait)
	}
	select {
	case <-g.Changed():
	case <-time.After(5 * time.Second):
		t.Fatal("no Changed signal when the fence wait ended")
	}
	if _, ok := g.Permit(); !ok {
		t.Errorf("Permit false after the fence wait")
	}
	if d := time.Since(start); d < wait {
		t.Errorf("fence wait ended after %s, want ≥ %s", d, wait)
	}
	g.stop()
}

// TestFenceWaitFromTimers: the fence wait is Lease + AbortBound +
// FenceMargin, 450 ms with the defaults.
func TestFenceWaitFromTimers(t *testing.T) {
	c := Config{}.WithDefaults()
	if got := c.FenceWait(); got != 450*time.Millisecond {
		t.Errorf("default FenceWait = %s, want 450ms (lease 300ms + abort bound 100ms + margin 50ms)", got)
	}
	c = Config{HeartbeatTimeout: time.Second, AbortBound: 200 * time.Millisecond}.WithDefaults()
	if got := c.FenceWait(); got != 600*time.Millisecond+200*time.Millisecond+50*time.Millisecond {
		t.Errorf("FenceWait = %s, want 850ms", got)
	}
}
