package redundancy

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Refused connections are journaled on the node that refused them, in a
// local list merged into /api/v1/events (see SecurityEvents), not in the
// replicated switchover journal: a refusal happens on any member (a
// standby, an arbiter, a member without quorum), and replicating it would
// let whoever can reach a raft port write to every member's raft log —
// the very flood the journal must resist. The list is bounded and
// rate-limited per remote host (and listener and kind of reason).

// RefusalKind marks journal events that record a refused connection or
// request (Event.Kind); role changes have no kind.
const RefusalKind = "security"

const (
	// refusalWindow: one journal entry per remote host per window; the
	// refusals in between are counted into the next entry.
	refusalWindow = 10 * time.Second
	// maxRefusals bounds the list (oldest dropped first).
	maxRefusals = 200
	// maxRefusalHosts bounds the per-host state; past it, entries of
	// hosts idle for a window are dropped, and if none is, the refusal is
	// only counted.
	maxRefusalHosts = 1024
)

// refusalJournal is the rate-limited list of refused connections. Safe
// for concurrent use.
type refusalJournal struct {
	node string
	log  *zap.Logger
	now  func() time.Time

	mu         sync.Mutex
	hosts      map[string]*refusalHost
	events     []Event
	suppressed int // refusals not journaled for lack of host slots
}

type refusalHost struct {
	last   time.Time
	missed int
}

func newRefusalJournal(node string, log *zap.Logger) *refusalJournal {
	return &refusalJournal{node: node, log: log, now: time.Now, hosts: map[string]*refusalHost{}}
}

// add records that listener refused remote for reason. The reason must
// not contain secrets (TLS errors and the pair's verifier errors name
// certificates, never keys or tokens).
func (j *refusalJournal) add(listener string, remote net.Addr, reason error) {
	addr := "unknown"
	if remote != nil {
		addr = remote.String()
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	// One entry per window for each host, listener and kind of reason
	// (the reason's text up to its first colon: "certificate not trusted
	// by the pair (…)", "tls", …), so that a host refused for two reasons
	// shows both, and a host repeating one shows it once.
	kind, _, _ := strings.Cut(reason.Error(), ":")
	key := host + "|" + listener + "|" + kind
	now := j.now()
	j.mu.Lock()
	defer j.mu.Unlock()
	h := j.hosts[key]
	if h == nil {
		if len(j.hosts) >= maxRefusalHosts {
			for k, o := range j.hosts {
				if now.Sub(o.last) > refusalWindow {
					delete(j.hosts, k)
				}
			}
		}
		if len(j.hosts) >= maxRefusalHosts {
			j.suppressed++
			return
		}
		h = &refusalHost{}
		j.hosts[key] = h
	} else if now.Sub(h.last) < refusalWindow {
		h.missed++
		return
	}
	detail := listener + ": " + reason.Error()
	if h.missed > 0 {
		detail += " (and " + strconv.Itoa(h.missed) + " more refusals from this host since the last entry)"
	}
	if j.suppressed > 0 {
		detail += " (" + strconv.Itoa(j.suppressed) + " refusals from other hosts not journaled: too many hosts)"
		j.suppressed = 0
	}
	h.last, h.missed = now, 0
	j.events = append(j.events, Event{Time: now, Kind: RefusalKind, From: addr, To: j.node, Reason: "refused", Detail: detail})
	if len(j.events) > maxRefusals {
		j.events = append(j.events[:0:0], j.events[len(j.events)-maxRefusals:]...)
	}
	j.log.Warn("connection refused", zap.String("listener", listener), zap.String("remote", addr), zap.String("reason", reason.Error()))
}

// ServerSwitchKind marks journal events that record a change of the
// member in use of a redundant OPC UA server set (Event.Kind; From and
// To are the members' endpoints, Detail the server's name).
const ServerSwitchKind = "server-switch"

// addSwitch records a server-set switch in the local list (bounded like
// the refusals; a switch is local to the node whose sessions saw it).
func (j *refusalJournal) addSwitch(ev Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, ev)
	if len(j.events) > maxRefusals {
		j.events = append(j.events[:0:0], j.events[len(j.events)-maxRefusals:]...)
	}
}

func (j *refusalJournal) list() []Event {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Event(nil), j.events...)
}
