package harness

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/redundancy"
)

// PendingWatch fails a test whose standby stays not READY because of
// unresolved ("pending") mappings for longer than Limit without a break,
// naming what is pending and why (from the member's admin API). It
// replaces the old nudgePending workaround, which re-set the source values
// and so let a regression of "standby never READY" pass. The zero value
// is not usable: set Limit. Not safe for concurrent use (one wait loop
// owns it).
type PendingWatch struct {
	// Limit: how long a standby may report pending mappings without a
	// break.
	Limit time.Duration
	since map[string]time.Time
}

// pendingReason is the health reason of a mirror with unresolved mappings
// (cmd/uamirror's Health adapter).
const pendingReason = "not yet resolved"

// Check looks at one status of a member. list fetches a page of the
// member's mappings with state pending (GET /api/v1/mappings?state=pending).
// It fails t once the member has been a standby with pending mappings for
// Limit without a break.
func (w *PendingWatch) Check(t testing.TB, st redundancy.Status, list func() (diagnostics.MappingPage, error)) {
	t.Helper()
	if w.since == nil {
		w.since = map[string]time.Time{}
	}
	if st.Role != "standby" || st.Health == nil || !strings.Contains(st.Health.Reason, pendingReason) {
		delete(w.since, st.Node)
		return
	}
	since, ok := w.since[st.Node]
	if !ok {
		w.since[st.Node] = time.Now()
		return
	}
	if d := time.Since(since); d >= w.Limit {
		t.Fatalf("standby %s stayed not READY for %s: %s (not_ready: %q)\n%s", st.Node, d.Round(time.Millisecond),
			st.Health.Reason, st.NotReady, DescribePending(list))
	}
}

// DescribePending lists what is pending and why, from a member's
// mappings page (the first 20 items).
func DescribePending(list func() (diagnostics.MappingPage, error)) string {
	p, err := list()
	if err != nil {
		return "pending mappings: cannot list them: " + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pending mappings: %d", p.Total)
	for i, it := range p.Items {
		if i == 20 {
			fmt.Fprintf(&b, "\n  … and %d more", p.Total-20)
			break
		}
		reason := it.Reason
		if reason == "" {
			reason = "(no reason given)"
		}
		fmt.Fprintf(&b, "\n  %s %s %s → %s: %s", it.ID, it.Direction, it.From, it.To, reason)
	}
	return b.String()
}
