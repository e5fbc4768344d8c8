package harness

import (
	"fmt"
	"strings"
	"testing"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/redundancy"
)

type recordTB struct {
	testing.TB
	failed string
}

func (r *recordTB) Helper() {}
func (r *recordTB) Fatalf(format string, a ...any) {
	r.failed = fmt.Sprintf(format, a...)
}

// TestPendingWatchNamesWhatIsPending: a standby that stays pending fails
// the test with the pending mappings and their reasons; one that becomes
// READY in time does not.
func TestPendingWatchNamesWhatIsPending(t *testing.T) {
	pending := redundancy.Status{Node: "b", Role: "standby", NotReady: "2 mappings not yet resolved",
		Health: &redundancy.Health{Reason: "2 mappings not yet resolved"}}
	list := func() (diagnostics.MappingPage, error) {
		return diagnostics.MappingPage{Total: 2, Items: []diagnostics.MappingItem{
			{ID: "m1", Direction: "forward", From: "plc", To: "scada", State: "pending", Reason: "target type not known yet"},
			{ID: "m2", Direction: "forward", From: "plc", To: "scada", State: "pending"},
		}}, nil
	}
	rec := &recordTB{TB: t}
	w := PendingWatch{Limit: 0}
	w.Check(rec, pending, list)
	if rec.failed != "" {
		t.Fatalf("failed at the first pending report: %s", rec.failed)
	}
	w.Check(rec, pending, list)
	for _, want := range []string{"standby b", "m1 forward plc → scada: target type not known yet", "m2", "pending mappings: 2"} {
		if !strings.Contains(rec.failed, want) {
			t.Errorf("failure message lacks %q:\n%s", want, rec.failed)
		}
	}
	// A break (READY) restarts the clock.
	rec.failed = ""
	w = PendingWatch{Limit: 0}
	w.Check(rec, pending, list)
	w.Check(rec, redundancy.Status{Node: "b", Role: "standby", Health: &redundancy.Health{Ready: true}}, list)
	w.Check(rec, pending, list)
	if rec.failed != "" {
		t.Errorf("failed although the standby was READY in between: %s", rec.failed)
	}
}
