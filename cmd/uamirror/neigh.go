package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The host's neighbour queue and the write fence.
//
// When a host loses its link (carrier), Linux flushes its neighbour
// (ARP/NDP) entries. A packet sent to an address whose entry is being
// resolved again waits in that entry's queue — outside the socket — until
// the address resolves or the entry fails: (mcast_solicit + app_solicit)
// probes, retrans_time_ms apart (3 × 1 s by default). Resetting the socket
// (the bridge's write fence) does not take it back: an old active that
// loses its link with a Write on its way, and gets the link back within
// that time, delivers the Write — and then the RST — after a new active
// has written (the starved fault matrix, isolate-active, found this:
// values 2 s old, landing 2.0–2.3 s after they were sent).
// So the pair's AbortBound also covers this queue's lifetime.

// neighQueueFallback is the queue's lifetime with Linux's defaults, used
// where the sysctls cannot be read.
const neighQueueFallback = 3 * time.Second

// neighQueueBound is the longest time a packet may wait in this host's
// neighbour queues before it is sent or dropped: the largest
// (mcast_solicit + app_solicit) × retrans_time_ms over every IPv4 and
// IPv6 neighbour table of the network namespace under procNet
// (/proc/sys/net). Where none can be read: neighQueueFallback.
func neighQueueBound(procNet string) time.Duration {
	var bound time.Duration
	found := false
	for _, fam := range []string{"ipv4", "ipv6"} {
		dirs, _ := filepath.Glob(filepath.Join(procNet, fam, "neigh", "*"))
		for _, dir := range dirs {
			mcast, ok1 := readInt(filepath.Join(dir, "mcast_solicit"))
			app, ok2 := readInt(filepath.Join(dir, "app_solicit"))
			retrans, ok3 := readInt(filepath.Join(dir, "retrans_time_ms"))
			if !ok1 || !ok2 || !ok3 {
				continue
			}
			found = true
			if d := time.Duration(mcast+app) * time.Duration(retrans) * time.Millisecond; d > bound {
				bound = d
			}
		}
	}
	if !found {
		return neighQueueFallback
	}
	return bound
}

func readInt(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil && n >= 0
}
