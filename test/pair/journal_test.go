package pair

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/uamirror/uamirror/redundancy"
)

// write is one line of the target simserver's journal: one value that the
// server accepted from a Write request.
type write struct {
	Time    time.Time `json:"time"` // when the server accepted it
	Session string    `json:"session"`
	Node    string    `json:"node"`
	Value   any       `json:"value"`
	Type    string    `json:"type"`
	TS      time.Time `json:"source_timestamp"`
	Status  uint32    `json:"status"`
}

func (w write) String() string {
	return fmt.Sprintf("%s %s by %s = %v (source ts %s)", w.Time.Format("15:04:05.000000"), strings.TrimPrefix(w.Node, "nsu="+ns+";s="),
		short(w.Session), w.Value, w.TS.Format("15:04:05.000000"))
}

// short abbreviates a session id (a GUID node id) to its last characters.
func short(session string) string {
	if len(session) <= 8 {
		return session
	}
	return "…" + session[len(session)-8:]
}

// readJournal reads a journal (complete lines only: the server may be
// appending) sorted by acceptance time. Lines of one Write request share
// their time and keep their order.
func readJournal(t testing.TB, path string) []write {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	var ws []write
	for n, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var w write
		if err := json.Unmarshal(line, &w); err != nil {
			t.Fatalf("%s:%d: %v: %s", path, n+1, err, line)
		}
		ws = append(ws, w)
	}
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].Time.Before(ws[j].Time) })
	return ws
}

// violations checks a target journal (sorted by time) against the pair's
// role changes and returns every broken invariant (at most 20):
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
func violations(ws []write, events []redundancy.Event, valid func(node string, v float64) error) []string {
	var out []string
	add := func(format string, a ...any) {
		if len(out) < 20 {
			out = append(out, fmt.Sprintf(format, a...))
		}
	}
	lastTS := map[string]write{}
	wrote := map[string]bool{} // sessions seen in earlier runs
	var prev *write            // last write of the previous run
	for i := range ws {
		w := &ws[i]
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
				add("two writers: session %s wrote again after session %s, with no role change in between:\n\t%s\n\tthen %s",
					short(w.Session), short(prev.Session), prev, w)
			}
			wrote[ws[i-1].Session] = true
		}
		prev = w
	}
	return out
}

func roleChangeBetween(events []redundancy.Event, from, to time.Time) bool {
	for _, e := range events {
		if e.Time.After(from) && !e.Time.After(to) {
			return true
		}
	}
	return false
}

// takeover finds a handover in the journal: the old writers are the
// sessions that wrote in [since, trigger); the new active's first write is
// the first one after trigger by any other session, and the old active's
// last write is the last one of an old session before that.
func takeover(ws []write, since, trigger time.Time) (lastOld, firstNew write, ok bool) {
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
		return write{}, write{}, false
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

// TestJournalChecker makes sure the invariant checker catches what it
// claims to catch (every pair test relies on it).
func TestJournalChecker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	w := func(ms int, session string, node int, v float64, tsMS int) write {
		return write{Time: at(ms), Session: session, Node: nodeID(node), Value: v, Type: "Double", TS: at(tsMS)}
	}
	ev := func(ms int, epoch uint64) redundancy.Event { return redundancy.Event{Time: at(ms), Epoch: epoch} }
	good := func(i int) float64 { return setValue(i, 1) }
	cases := []struct {
		name   string
		ws     []write
		events []redundancy.Event
		want   string // substring of the first violation; "" for none
	}{
		{"one writer", []write{w(1, "A", 1, good(1), 0), w(2, "A", 2, good(2), 1)}, nil, ""},
		{"takeover", []write{w(1, "A", 1, good(1), 0), w(5, "B", 1, good(1), 4)}, []redundancy.Event{ev(3, 2)}, ""},
		{"new session after reconnect", []write{w(1, "A", 1, good(1), 0), w(5, "A2", 1, good(1), 4)}, nil, ""},
		{"back and forth with role changes", []write{w(1, "A", 1, good(1), 0), w(5, "B", 1, good(1), 4), w(9, "A", 1, good(1), 8)},
			[]redundancy.Event{ev(3, 2), ev(7, 3)}, ""},
		{"same source timestamp twice", []write{w(1, "A", 1, good(1), 0), w(2, "A", 1, good(1), 0)}, nil, ""},
		{"interleaved writers", []write{w(1, "A", 1, good(1), 0), w(5, "B", 2, good(2), 4), w(6, "A", 3, good(3), 5), w(7, "B", 2, good(2), 6)},
			[]redundancy.Event{ev(3, 2)}, "two writers"},
		{"stale writer after the takeover", []write{w(1, "A", 1, good(1), 0), w(5, "B", 2, good(2), 4), w(6, "A", 3, good(3), 5)},
			[]redundancy.Event{ev(3, 2)}, "two writers"},
		{"older source timestamp", []write{w(1, "A", 1, good(1), 5), w(5, "B", 1, good(1), 4)}, []redundancy.Event{ev(3, 2)}, "went back"},
		{"bad status", []write{{Time: at(1), Session: "A", Node: nodeID(1), Value: good(1), TS: at(0), Status: 0x80310000}}, nil, "status"},
		{"zero", []write{w(1, "A", 1, 0, 0)}, nil, "zero"},
		{"value of another node", []write{w(1, "A", 1, good(2), 0)}, nil, "no value the source produces"},
		{"generated value", []write{w(1, "A", 3, 3*1000+17+0.25, 0)}, nil, ""},
		{"not a Double", []write{{Time: at(1), Session: "A", Node: nodeID(1), Value: nil, TS: at(0)}}, nil, "want a Double"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := violations(c.ws, c.events, validValue)
			switch {
			case c.want == "" && len(got) > 0:
				t.Fatalf("unexpected violations: %q", got)
			case c.want != "" && len(got) == 0:
				t.Fatalf("no violation, want one with %q", c.want)
			case c.want != "" && !bytes.Contains([]byte(got[0]), []byte(c.want)):
				t.Fatalf("violation %q, want one with %q", got[0], c.want)
			}
		})
	}

	t.Run("takeover gap", func(t *testing.T) {
		ws := []write{w(1, "B", 1, good(1), 0), w(10, "A", 1, good(1), 9), w(20, "A", 2, good(2), 19), w(25, "A", 1, good(1), 24),
			w(110, "B", 1, good(1), 100), w(120, "B", 2, good(2), 110)}
		lastOld, firstNew, ok := takeover(ws, at(5), at(30))
		if !ok || !lastOld.Time.Equal(at(25)) || !firstNew.Time.Equal(at(110)) {
			t.Fatalf("takeover = %v, %v, %v; want the write at 25 ms and the one at 110 ms", lastOld, firstNew, ok)
		}
	})
}
