package redundancy

import (
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestRecordServerSwitch: a server-set switch lands in the node's local
// journal (merged into /api/v1/events) with its reason and gap.
func TestRecordServerSwitch(t *testing.T) {
	n := &Node{refusals: newRefusalJournal("a", zap.NewNop())}
	at := time.Now()
	n.RecordServerSwitch("plc", "opc.tcp://h1:4840", "opc.tcp://h2:4840", "member in use lost (session down)", 120*time.Millisecond, at)
	n.RecordServerSwitch("plc", "opc.tcp://h2:4840", "", "member in use lost (session down)", 0, at)
	evs := n.SecurityEvents()
	if len(evs) != 2 {
		t.Fatalf("events %+v", evs)
	}
	e := evs[0]
	if e.Kind != ServerSwitchKind || e.From != "opc.tcp://h1:4840" || e.To != "opc.tcp://h2:4840" || e.Reason == "" ||
		e.Detail != "server plc" || e.GapMS == nil || *e.GapMS != 120 || !e.Time.Equal(at) {
		t.Fatalf("event %+v", e)
	}
	if evs[1].To != "none (values held)" || evs[1].GapMS != nil {
		t.Fatalf("event %+v", evs[1])
	}
}
