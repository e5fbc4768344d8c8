package redundancy

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Event is one role change in the switchover journal.
type Event struct {
	Time   time.Time `json:"time"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to"`
	Epoch  uint64    `json:"epoch"`
	Reason string    `json:"reason"` // bootstrap, manual, server-monitor, peer-lost, arbiter, force
	Detail string    `json:"detail,omitempty"`
	// GapMS is the measured gap (last write of the old active → first
	// write of the new), when known.
	GapMS *float64 `json:"gap_ms,omitempty"`
	// Kind is empty for a role change and RefusalKind for a refused
	// connection (From is then the remote address, Detail the reason).
	Kind string `json:"kind,omitempty"`
}

// Handover is a planned switchover announced by the active before it
// transfers leadership.
type Handover struct {
	From        string    `json:"from"`
	To          string    `json:"to"`
	Reason      string    `json:"reason"`
	Detail      string    `json:"detail,omitempty"`
	LastWriteAt time.Time `json:"last_write_at"`
	At          time.Time `json:"at"`
	// Epoch is the epoch of the active that made the handover.
	Epoch uint64 `json:"epoch,omitempty"`
	// Fenced: the old active itself made this handover after it closed
	// its gate and saw no Write in flight any more (idle, or aborted): the
	// new active may write at once, without the fence wait. An arbiter's
	// handover (the old active lost) is never fenced.
	Fenced bool `json:"fenced,omitempty"`
}

// PairState is the replicated state of the pair.
type PairState struct {
	Config     []byte    `json:"config,omitempty"` // mirror config YAML
	ConfigHash string    `json:"config_hash,omitempty"`
	Active     string    `json:"active,omitempty"`
	Epoch      uint64    `json:"epoch"`
	Handover   *Handover `json:"handover,omitempty"`
	Journal    []Event   `json:"journal,omitempty"`
	// Protocol is the pair protocol recorded by the last "versions"
	// record (0: none yet, the pair runs LegacyProtocol). A member whose
	// build speaks less stops (ErrProtocolTooNew).
	Protocol int `json:"protocol,omitempty"`
	// Versions are the members' versions as the active recorded them
	// when every member spoke protocol 2 or newer (the "versions" record,
	// applied only then).
	Versions []MemberVersion `json:"versions,omitempty"`
}

const maxJournal = 1000

// command is one raft log entry.
type command struct {
	Op       string    `json:"op"` // config, promote, handover, gap
	Config   []byte    `json:"config,omitempty"`
	Hash     string    `json:"hash,omitempty"`
	Node     string    `json:"node,omitempty"`
	Epoch    uint64    `json:"epoch,omitempty"`
	Event    *Event    `json:"event,omitempty"`
	Handover *Handover `json:"handover,omitempty"`
	GapMS    float64   `json:"gap_ms,omitempty"`
	// Need is the pair protocol the command needs (omitted for the ops of
	// protocol 1, which v0.1.0 sends without it): a member speaking less
	// stops rather than skip it.
	Need int `json:"need,omitempty"`
	// Protocol and Versions: the "versions" record (protocol 2).
	Protocol int             `json:"protocol,omitempty"`
	Versions []MemberVersion `json:"versions,omitempty"`
}

// fsm applies commands to PairState. Apply, Snapshot and Restore are
// called by raft from one goroutine; State may be called from any.
//
// A command it cannot apply (an op it does not know, one that needs a
// newer protocol, undecodable data) stops it: that and every later
// command are refused without changing the state, and halt is called
// once, so that the member stops instead of running on a state that
// silently differs from the other members'.
type fsm struct {
	mu      sync.Mutex
	st      PairState
	changed func() // called after every apply (must not block)
	// halt is called once, outside the lock, when the fsm stops (must
	// not block); nil: only the Apply results say so.
	halt   func(error)
	failed error // set once the fsm stopped
	// rec mirrors st.Active and st.Epoch for the gate's hot path.
	rec atomic.Pointer[activeRec]
}

// activeRec is the replicated active and its epoch.
type activeRec struct {
	active string
	epoch  uint64
}

// recorded returns the replicated active and epoch without locking.
func (f *fsm) recorded() (string, uint64) {
	if r := f.rec.Load(); r != nil {
		return r.active, r.epoch
	}
	return "", 0
}

// publish updates rec; called with f.mu held.
func (f *fsm) publish() { f.rec.Store(&activeRec{f.st.Active, f.st.Epoch}) }

// stop records why the fsm stops and calls halt (the first time);
// called with f.mu held, it returns the function to call after unlocking.
func (f *fsm) stop(err error) func() {
	if f.failed != nil {
		return func() {}
	}
	f.failed = err
	if h := f.halt; h != nil {
		return func() { h(err) }
	}
	return func() {}
}

// check returns why c cannot be applied by this build (nil: it can).
func check(l *raft.Log, c command) error {
	need := max(c.Need, c.needs())
	switch {
	case c.needs() == 0:
		return fmt.Errorf("%w: raft entry %d is command %q, unknown to this member (protocol %d–%d, needs %d): "+
			"upgrade this member to the release of the other members", ErrProtocolTooNew, l.Index, c.Op, MinProtocolVersion, ProtocolVersion, c.Need)
	case need > ProtocolVersion:
		return fmt.Errorf("%w: raft entry %d (%q) needs pair protocol %d, this member speaks %d–%d: upgrade this member",
			ErrProtocolTooNew, l.Index, c.Op, need, MinProtocolVersion, ProtocolVersion)
	}
	return nil
}

func (f *fsm) Apply(l *raft.Log) any {
	var c command
	derr := json.Unmarshal(l.Data, &c)
	f.mu.Lock()
	if f.failed != nil {
		err := f.failed
		f.mu.Unlock()
		return err
	}
	if derr != nil {
		err := fmt.Errorf("%w: raft entry %d does not decode: %w", ErrProtocolTooNew, l.Index, derr)
		after := f.stop(err)
		f.mu.Unlock()
		after()
		return err
	}
	if err := check(l, c); err != nil {
		after := f.stop(err)
		f.mu.Unlock()
		after()
		return err
	}
	var res any
	switch c.Op {
	case "config":
		f.st.Config, f.st.ConfigHash = c.Config, c.Hash
	case "promote":
		if c.Epoch <= f.st.Epoch {
			res = fmt.Errorf("stale promote: epoch %d ≤ %d", c.Epoch, f.st.Epoch)
			break
		}
		f.st.Active, f.st.Epoch = c.Node, c.Epoch
		f.st.Handover = nil
		if c.Event != nil {
			f.st.Journal = append(f.st.Journal, *c.Event)
			if len(f.st.Journal) > maxJournal {
				f.st.Journal = f.st.Journal[len(f.st.Journal)-maxJournal:]
			}
		}
	case "handover":
		f.st.Handover = c.Handover
	case "gap":
		for i := len(f.st.Journal) - 1; i >= 0; i-- {
			if f.st.Journal[i].Epoch == c.Epoch {
				g := c.GapMS
				f.st.Journal[i].GapMS = &g
				break
			}
		}
	case "versions":
		f.st.Protocol = c.Protocol
		f.st.Versions = append([]MemberVersion(nil), c.Versions...)
	}
	f.publish()
	f.mu.Unlock()
	if f.changed != nil {
		f.changed()
	}
	return res
}

// State returns a copy of the replicated state.
func (f *fsm) State() PairState {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.st
	s.Journal = append([]Event(nil), f.st.Journal...)
	s.Versions = append([]MemberVersion(nil), f.st.Versions...)
	return s
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	b, err := json.Marshal(f.State())
	if err != nil {
		return nil, err
	}
	return snapshot(b), nil
}

func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	var st PairState
	if err := json.NewDecoder(r).Decode(&st); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.mu.Lock()
	if st.Protocol > ProtocolVersion {
		err := fmt.Errorf("%w: the snapshot is of a pair running protocol %d, this member speaks %d–%d: upgrade this member",
			ErrProtocolTooNew, st.Protocol, MinProtocolVersion, ProtocolVersion)
		after := f.stop(err)
		f.mu.Unlock()
		after()
		return err
	}
	f.st = st
	f.publish()
	f.mu.Unlock()
	if f.changed != nil {
		f.changed()
	}
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}

// epoch returns the replicated epoch without copying the state.
func (f *fsm) epoch() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.Epoch
}
