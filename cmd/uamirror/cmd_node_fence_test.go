package main

import (
	"testing"
	"time"

	"github.com/uamirror/uamirror/bridge"
)

// TestFenceAbortBoundFromBridge: the pair's AbortBound, part of every new
// active's fence wait, covers the bridge's own bound from a lease lapse
// to the reset of every session with a Write in flight, with room for a
// loaded host; and the fence wait built from it is the documented sum.
func TestFenceAbortBoundFromBridge(t *testing.T) {
	cfg := memberConfig(pairFlags{id: "a", heartbeat: 500 * time.Millisecond})
	if cfg.AbortBound < bridge.LeaseAbortBound+abortSchedAllowance {
		t.Fatalf("AbortBound %v, want at least bridge.LeaseAbortBound %v + %v", cfg.AbortBound, bridge.LeaseAbortBound, abortSchedAllowance)
	}
	d := cfg.WithDefaults()
	if got, want := d.FenceWait(), d.Lease+cfg.AbortBound+d.FenceMargin; got != want {
		t.Fatalf("FenceWait %v, want Lease %v + AbortBound %v + FenceMargin %v", got, d.Lease, cfg.AbortBound, d.FenceMargin)
	}
}
