package uaserver

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"
)

// JournalEntry is one accepted Write of one value.
type JournalEntry struct {
	// Time is when the server accepted the write.
	Time time.Time
	// Session is the writing session's id (a GUID node id).
	Session string
	// Node is the written node: "nsu=<NamespaceURI>;s=v<i>" for a
	// simulated variable, "i=2267" for ServiceLevel.
	Node string
	// Value is the written value as decoded (int16, []float64, …).
	Value any
	// Type is the variable's type name ("Double[]", "Byte", …).
	Type string
	// SourceTimestamp is the stored source timestamp (the written one, or
	// Time when the client sent none).
	SourceTimestamp time.Time
	// Status is the stored status code (the written one, or Good).
	Status ua.StatusCode
}

// journalLine is the JSON form of a JournalEntry.
type journalLine struct {
	Time            time.Time `json:"time"`
	Session         string    `json:"session"`
	Node            string    `json:"node"`
	Value           any       `json:"value"`
	Type            string    `json:"type"`
	SourceTimestamp time.Time `json:"source_timestamp"`
	Status          uint32    `json:"status"`
}

// MarshalJSON encodes e as the journal's JSON object; non-finite floats
// become the strings "NaN", "+Inf" and "-Inf".
func (e JournalEntry) MarshalJSON() ([]byte, error) {
	return json.Marshal(journalLine{
		Time: e.Time, Session: e.Session, Node: e.Node, Value: jsonValue(e.Value),
		Type: e.Type, SourceTimestamp: e.SourceTimestamp, Status: uint32(e.Status),
	})
}

// journal records accepted writes; all methods are safe for concurrent use.
type journal struct {
	log *zap.Logger

	mu      sync.Mutex
	w       io.Writer // nil: no lines
	f       *os.File  // owned file, closed by close
	mem     []JournalEntry
	keepMem bool
	buf     []byte
	failed  bool // a write error was logged; stop logging them
}

func openJournal(cfg Config, log *zap.Logger) (*journal, error) {
	j := &journal{log: log, w: cfg.Journal, keepMem: cfg.JournalMemory}
	if cfg.JournalFile != "" {
		f, err := os.OpenFile(cfg.JournalFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("opening journal: %w", err)
		}
		j.f, j.w = f, f
	}
	return j, nil
}

// enabled reports whether record has anything to do.
func (j *journal) enabled() bool { return j.w != nil || j.keepMem }

// record appends entries as one write of JSON lines (one per entry).
func (j *journal) record(entries []JournalEntry) {
	if len(entries) == 0 || !j.enabled() {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.keepMem {
		j.mem = append(j.mem, entries...)
	}
	if j.w == nil {
		return
	}
	j.buf = j.buf[:0]
	for _, e := range entries {
		b, err := e.MarshalJSON()
		if err != nil { // only for values encoding/json cannot express
			b, _ = json.Marshal(map[string]string{"node": e.Node, "error": err.Error()})
		}
		j.buf = append(append(j.buf, b...), '\n')
	}
	if _, err := j.w.Write(j.buf); err != nil && !j.failed {
		j.failed = true
		j.log.Error("journal write failed; further errors are not logged", zap.Error(err))
	}
}

// entries returns a copy of the in-memory journal.
func (j *journal) entries() []JournalEntry {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.keepMem {
		return nil
	}
	return append([]JournalEntry(nil), j.mem...)
}

// close closes an owned journal file.
func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f, j.w = nil, nil
	if err != nil {
		return fmt.Errorf("closing journal: %w", err)
	}
	return nil
}
