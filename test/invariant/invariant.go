// Package invariant checks what a redundant pair wrote, from the outside:
// the write journal of a target simulation server (one JSON line per
// value it accepted, with the writing session) against the pair's role
// changes. It is shared by the pair tests (test/pair) and the fault
// matrix (test/fault); it starts nothing and talks to nobody.
package invariant

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/redundancy"
)

// NS is the simulation servers' namespace URI.
const NS = "urn:uamirror:simserver"

// NodeID is the NodeID of simulated variable i.
func NodeID(i int) string { return fmt.Sprintf("nsu=%s;s=v%d", NS, i) }

// Values the sources hold. The simserver's rate generator gives variable
// i the Double values i*1000 + n + 0.25 (n = 0, 1, …: never 0); tests'
// own `set` commands use SetValue, which never collides with those. Every
// value written to the target must be one of these (ValidValue).
func SetValue(i, k int) float64 { return float64(500_000+i*1000+k%1000) + 0.5 }

// ValidValue reports why v is no value the source produces for node.
func ValidValue(node string, v float64) error {
	i, err := strconv.Atoi(strings.TrimPrefix(node, "nsu="+NS+";s=v"))
	if err != nil {
		return fmt.Errorf("unexpected node %q", node)
	}
	if v == 0 {
		return errors.New("zero value")
	}
	gen := v - 0.25 - float64(i*1000)
	set := v - 0.5 - float64(500_000+i*1000)
	if (gen >= 0 && gen == float64(int64(gen))) || (set >= 0 && set < 1000 && set == float64(int64(set))) {
		return nil
	}
	return fmt.Errorf("%v is no value the source produces for v%d", v, i)
}

// Write is one line of a target simserver's journal: one value that the
// server accepted from a Write request.
type Write struct {
	Time    time.Time `json:"time"` // when the server accepted it
	Session string    `json:"session"`
	Node    string    `json:"node"`
	Value   any       `json:"value"`
	Type    string    `json:"type"`
	TS      time.Time `json:"source_timestamp"`
	Status  uint32    `json:"status"`
}

func (w Write) String() string {
	return fmt.Sprintf("%s %s by %s = %v (source ts %s)", w.Time.Format("15:04:05.000000"), strings.TrimPrefix(w.Node, "nsu="+NS+";s="),
		Short(w.Session), w.Value, w.TS.Format("15:04:05.000000"))
}

// Short abbreviates a session id (a GUID node id) to its last characters.
func Short(session string) string {
	if len(session) <= 8 {
		return session
	}
	return "…" + session[len(session)-8:]
}

// ReadJournal reads a journal (complete lines only: the server may be
// appending) sorted by acceptance time. Lines of one Write request share
// their time and keep their order. A missing file is an empty journal.
func ReadJournal(t testing.TB, path string) []Write {
	t.Helper()
	ws, err := ParseJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// ParseJournal is ReadJournal returning its error.
func ParseJournal(path string) ([]Write, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	var ws []Write
	for n, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var w Write
		if err := json.Unmarshal(line, &w); err != nil {
			return nil, fmt.Errorf("%s:%d: %w: %s", path, n+1, err, line)
		}
		ws = append(ws, w)
	}
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].Time.Before(ws[j].Time) })
	return ws, nil
}

// MaxViolations is how many violations Violations reports at most.
const MaxViolations = 20

// Violations checks a target journal (sorted by time) against the pair's
// role changes and returns every broken invariant (at most MaxViolations):
//
//   - every write has a Good status;
//   - every value is one valid accepts (never zero, never a value the
//     source did not produce for that node);
//   - per node, source timestamps never go back;
//   - one writer at a time: once another session has written, a session
//     may write again only after a role change (an event between the
//     other session's last write and its own next one). A node that
//     reconnects gets a new session, which is simply a new writer; a
//     stale active that writes between the new active's writes is two
//     writers at once.
func Violations(ws []Write, events []redundancy.Event, valid func(node string, v float64) error) []string {
	out, _ := Count(ws, events, valid)
	return out
}

// Result is what Check found in a journal.
type Result struct {
	Writes     int      // writes checked
	Sessions   int      // distinct writing sessions
	Violations []string // the first MaxViolations violations
	Total      int      // every violation, counted
	// TwoWriters are the intervals in which two sessions wrote with no
	// role change between them (from the earlier session's write to the
	// later one's): none in a healthy pair.
	TwoWriters [][2]time.Time
}

// Count is Violations that also returns the total number of violations
// (the list stops at MaxViolations, the count does not).
func Count(ws []Write, events []redundancy.Event, valid func(node string, v float64) error) ([]string, int) {
	r := Check(ws, events, valid)
	return r.Violations, r.Total
}

// Check checks ws as Violations does and returns the totals.
func Check(ws []Write, events []redundancy.Event, valid func(node string, v float64) error) Result {
	var r Result
	add := func(format string, a ...any) {
		r.Total++
		if len(r.Violations) < MaxViolations {
			r.Violations = append(r.Violations, fmt.Sprintf(format, a...))
		}
	}
	sessions := map[string]bool{}
	r.Writes = len(ws)
	lastTS := map[string]Write{}
	wrote := map[string]bool{} // sessions seen in earlier runs
	var prev *Write            // last write of the previous run
	for i := range ws {
		w := &ws[i]
		sessions[w.Session] = true
		if w.Status != 0 {
			add("write with status 0x%08X: %s", w.Status, w)
		}
		switch v := w.Value.(type) {
		case float64:
			if err := valid(w.Node, v); err != nil {
				add("bad value (%v): %s", err, w)
			}
		default:
			add("value of type %T, want a Double: %s", w.Value, w)
		}
		if p, ok := lastTS[w.Node]; ok && w.TS.Before(p.TS) {
			add("source timestamp went back on %s:\n\t%s\n\tthen %s", w.Node, p, w)
		}
		lastTS[w.Node] = *w
		if i > 0 && ws[i-1].Session != w.Session {
			// A new run of writes starts.
			if wrote[w.Session] && !roleChangeBetween(events, prev.Time, w.Time) {
				r.TwoWriters = append(r.TwoWriters, [2]time.Time{prev.Time, w.Time})
				add("two writers: session %s wrote again after session %s, with no role change in between:\n\t%s\n\tthen %s",
					Short(w.Session), Short(prev.Session), prev, w)
			}
			wrote[ws[i-1].Session] = true
		}
		prev = w
	}
	r.Sessions = len(sessions)
	return r
}

// roleChangeBetween: a role change (not a journaled refusal of a
// connection, redundancy.RefusalKind) in (from, to].
func roleChangeBetween(events []redundancy.Event, from, to time.Time) bool {
	for _, e := range events {
		if e.Kind != "" {
			continue // a refusal or a drill report: no role change
		}
		if e.Time.After(from) && !e.Time.After(to) {
			return true
		}
	}
	return false
}

// Takeover finds a handover in the journal: the old writers are the
// sessions that wrote in [since, trigger); the new active's first write is
// the first one after trigger by any other session, and the old active's
// last write is the last one of an old session before that.
func Takeover(ws []Write, since, trigger time.Time) (lastOld, firstNew Write, ok bool) {
	old := map[string]bool{}
	for _, w := range ws {
		if !w.Time.Before(since) && w.Time.Before(trigger) {
			old[w.Session] = true
		}
	}
	found := false
	for _, w := range ws {
		if w.Time.After(trigger) && !old[w.Session] {
			firstNew, found = w, true
			break
		}
	}
	if !found {
		return Write{}, Write{}, false
	}
	for _, w := range ws {
		if !w.Time.Before(firstNew.Time) {
			break
		}
		if old[w.Session] {
			lastOld, ok = w, true
		}
	}
	return lastOld, firstNew, ok
}
