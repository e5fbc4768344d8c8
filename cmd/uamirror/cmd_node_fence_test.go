package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/uamirror/uamirror/bridge"
)

// TestFenceAbortBoundFromBridge: the pair's AbortBound, part of every new
// active's fence wait, covers the bridge's own bound from a lease lapse
// to the reset of every session with a Write in flight (with room for a
// loaded host) and the lifetime of this host's neighbour queues, which a
// reset does not empty (neigh.go); the fence wait built from it is the
// documented sum.
func TestFenceAbortBoundFromBridge(t *testing.T) {
	cfg := memberConfig(pairFlags{id: "a", heartbeat: 500 * time.Millisecond})
	if cfg.AbortBound < bridge.LeaseAbortBound+abortSchedAllowance {
		t.Fatalf("AbortBound %v, want at least bridge.LeaseAbortBound %v + %v", cfg.AbortBound, bridge.LeaseAbortBound, abortSchedAllowance)
	}
	if q := neighQueueBound("/proc/sys/net"); cfg.AbortBound < q {
		t.Fatalf("AbortBound %v, want at least the neighbour queues' lifetime %v", cfg.AbortBound, q)
	}
	d := cfg.WithDefaults()
	if got, want := d.FenceWait(), d.Lease+cfg.AbortBound+d.FenceMargin; got != want {
		t.Fatalf("FenceWait %v, want Lease %v + AbortBound %v + FenceMargin %v", got, d.Lease, cfg.AbortBound, d.FenceMargin)
	}
	t.Logf("AbortBound %v, fence wait %v", cfg.AbortBound, d.FenceWait())
}

func TestFenceNeighQueueBound(t *testing.T) {
	write := func(dir, name, v string) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	table := func(root, fam, dev, mcast, app, retrans string) {
		d := filepath.Join(root, fam, "neigh", dev)
		write(d, "mcast_solicit", mcast)
		write(d, "app_solicit", app)
		write(d, "retrans_time_ms", retrans)
	}
	root := t.TempDir()
	table(root, "ipv4", "default", "3", "0", "1000")
	table(root, "ipv4", "eth0", "3", "1", "1000") // 4 s: the largest
	table(root, "ipv6", "default", "3", "0", "1000")
	write(filepath.Join(root, "ipv6", "neigh", "eth1"), "mcast_solicit", "9") // incomplete: ignored
	for _, tc := range []struct {
		name, root string
		want       time.Duration
	}{
		{"largest table", root, 4 * time.Second},
		{"nothing readable", filepath.Join(root, "missing"), neighQueueFallback},
	} {
		if got := neighQueueBound(tc.root); got != tc.want {
			t.Errorf("%s: neighQueueBound %v, want %v", tc.name, got, tc.want)
		}
	}
}
