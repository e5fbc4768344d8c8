package redundancy

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// DrillKind marks journal events that record a failover drill
// (`uamirror drill`): a planned switchover measured from the targets'
// view. Like refusals (RefusalKind) drills are journaled on the node that
// was told of them, in a local list merged into /api/v1/events, not in
// the replicated journal: a drill is a report about a role change (which
// the replicated journal has, reason manual), not one itself.
const DrillKind = "drill"

// maxDrills bounds the drill journal (oldest dropped first).
const maxDrills = 100

// DrillRecord is the result of one drill as the operator command reports
// it to a member.
type DrillRecord struct {
	// Time is when the drill ended; Switch when it asked for the
	// switchover.
	Time   time.Time `json:"time"`
	Switch time.Time `json:"switch"`
	// From and To are the active before and after; Epoch the new one's.
	From  string `json:"from"`
	To    string `json:"to"`
	Epoch uint64 `json:"epoch"`
	// Pass is the verdict.
	Pass bool `json:"pass"`
	// Skipped says why a scheduled drill did not run (empty: it ran).
	Skipped string        `json:"skipped,omitempty"`
	Targets []DrillTarget `json:"targets"`
}

// DrillTarget is one target server's figures in a drill.
type DrillTarget struct {
	Server string `json:"server"`
	// GapMS is the gap across the handover (nil: unknown, e.g. static
	// sources or not sampled); UsualMS the longest interval before it.
	GapMS     *float64 `json:"gap_ms,omitempty"`
	UsualMS   float64  `json:"usual_ms"`
	Sampled   int      `json:"sampled"`
	Anomalies int      `json:"anomalies"`
	Pass      bool     `json:"pass"`
	Error     string   `json:"error,omitempty"`
}

// Event is the journal line of the drill: reason "drill PASS" or "drill
// FAIL", the worst target gap as GapMS, the per-target figures in Detail.
func (d DrillRecord) Event() Event {
	ev := Event{Time: d.Time, Kind: DrillKind, From: d.From, To: d.To, Epoch: d.Epoch, Reason: "drill FAIL"}
	if d.Pass {
		ev.Reason = "drill PASS"
	}
	if d.Skipped != "" {
		ev.Reason, ev.Detail = "drill skipped", d.Skipped
		return ev
	}
	var parts []string
	for _, t := range d.Targets {
		switch {
		case t.Error != "":
			parts = append(parts, fmt.Sprintf("%s: not sampled (%s)", t.Server, t.Error))
		case t.GapMS == nil:
			parts = append(parts, fmt.Sprintf("%s: no change, %d anomalies", t.Server, t.Anomalies))
		default:
			parts = append(parts, fmt.Sprintf("%s: gap %.0f ms (usual %.0f ms), %d anomalies", t.Server, *t.GapMS, t.UsualMS, t.Anomalies))
			if ev.GapMS == nil || *t.GapMS > *ev.GapMS {
				g := *t.GapMS
				ev.GapMS = &g
			}
		}
	}
	ev.Detail = strings.Join(parts, "; ")
	return ev
}

// DrillJournal is a member's bounded list of drills. Safe for concurrent
// use.
type DrillJournal struct {
	mu   sync.Mutex
	recs []DrillRecord
}

// Record appends d.
func (j *DrillJournal) Record(d DrillRecord) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.recs = append(j.recs, d)
	if len(j.recs) > maxDrills {
		j.recs = append(j.recs[:0:0], j.recs[len(j.recs)-maxDrills:]...)
	}
}

// Last returns the last drill recorded (false: none yet).
func (j *DrillJournal) Last() (DrillRecord, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.recs) == 0 {
		return DrillRecord{}, false
	}
	return j.recs[len(j.recs)-1], true
}

// Events returns the drills as journal events, oldest first.
func (j *DrillJournal) Events() []Event {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]Event, len(j.recs))
	for i, d := range j.recs {
		out[i] = d.Event()
	}
	return out
}
