package bridge

import "testing"

// The pair's gate and the single node's gate both carry the fence.
var _ Gate = (*ManualGate)(nil)

func TestManualGateLease(t *testing.T) {
	g := NewManualGate(true, 7)
	if !g.LeaseValid() {
		t.Fatal("a new manual gate's lease is lapsed")
	}
	if ep, ok := g.Permit(); !ok || ep != 7 {
		t.Fatalf("Permit = %d, %v; want 7, true", ep, ok)
	}
	g.SetLease(false)
	select {
	case <-g.Changed():
	default:
		t.Error("a lapse set by hand is not signalled")
	}
	if g.LeaseValid() {
		t.Error("lease valid after SetLease(false)")
	}
	if _, ok := g.Permit(); ok {
		t.Error("the gate permits writes without a lease")
	}
	g.SetLease(true)
	if _, ok := g.Permit(); !ok || !g.LeaseValid() {
		t.Error("the lease regained does not reopen the gate")
	}
	var zero ManualGate
	if _, ok := zero.Permit(); ok || !zero.LeaseValid() {
		t.Error("the zero ManualGate must be closed with a valid lease")
	}
}
