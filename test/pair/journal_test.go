package pair

import (
	"testing"
	"time"

	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/invariant"
)

// The invariant checker over the target's write journal lives in
// test/invariant (shared with the fault matrix in test/fault); these are
// the package's short names for it.

type write = invariant.Write

func readJournal(t testing.TB, path string) []write { return invariant.ReadJournal(t, path) }

func violations(ws []write, events []redundancy.Event, valid func(node string, v float64) error) []string {
	return invariant.Violations(ws, events, valid)
}

func takeover(ws []write, since, trigger time.Time) (lastOld, firstNew write, ok bool) {
	return invariant.Takeover(ws, since, trigger)
}
