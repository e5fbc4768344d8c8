package bridge

import (
	"sync/atomic"
	"time"
)

// engineStats are the engine-wide counters. All fields are atomics:
// updated on the value path without locks.
type engineStats struct {
	badSource       atomic.Uint64
	echoes          atomic.Uint64
	stale           atomic.Uint64
	conflicts       atomic.Uint64
	convErrors      atomic.Uint64
	reconcileWrites atomic.Uint64
	latency         histogram // source timestamp → write confirmed
	writeLatency    histogram // Write request round trip
}

// count counts a flow's verdict on a value from a subscription.
func (s *engineStats) count(v verdict, both bool) {
	switch v {
	case vBadSource:
		s.badSource.Add(1)
	case vEcho:
		s.echoes.Add(1)
	case vConflictLost:
		s.echoes.Add(1)
		s.conflicts.Add(1)
	case vStale:
		s.stale.Add(1)
		if both {
			s.conflicts.Add(1)
		}
	case vConvError:
		s.convErrors.Add(1)
	}
}

// connStats are one server's counters.
type connStats struct {
	connects      atomic.Uint64
	reconnects    atomic.Uint64
	keepAlives    atomic.Uint64
	notifications atomic.Uint64
	writes        atomic.Uint64
	writeRequests atomic.Uint64
	writeErrors   atomic.Uint64
	leaseAborts   atomic.Uint64
	// filtersRefused counts monitored items whose deadband filter the
	// server refused (the client-side deadband applies to them).
	filtersRefused atomic.Uint64
	// subs is the number of subscriptions of the current session.
	subs atomic.Int32
}

// LatencyBounds are the upper bounds of the latency histogram buckets;
// the last bucket (+Inf) catches the rest.
var LatencyBounds = []time.Duration{
	500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 75 * time.Millisecond,
	100 * time.Millisecond, 125 * time.Millisecond, 150 * time.Millisecond, 200 * time.Millisecond,
	300 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second,
}

// histogram is a fixed-bucket latency histogram updated with atomics.
type histogram struct {
	buckets [18]atomic.Uint64
	sum     atomic.Int64 // nanoseconds
	count   atomic.Uint64
}

// bucketOf returns the index of d's bucket.
func bucketOf(d time.Duration) int {
	i := 0
	for i < len(LatencyBounds) && d > LatencyBounds[i] {
		i++
	}
	return i
}

func (h *histogram) observe(d time.Duration) {
	h.buckets[bucketOf(d)].Add(1)
	h.sum.Add(int64(d))
	h.count.Add(1)
}

// histBatch collects observations made in one go (the values of one
// Write request) for a histogram: addTo then costs one atomic add per
// bucket used instead of three per value. Not safe for concurrent use.
type histBatch struct {
	buckets [18]uint64
	sum     int64
	count   uint64
}

func (b *histBatch) observe(d time.Duration) {
	b.buckets[bucketOf(d)]++
	b.sum += int64(d)
	b.count++
}

// addTo adds the batch's observations to h.
func (b *histBatch) addTo(h *histogram) {
	if b.count == 0 {
		return
	}
	for i, n := range b.buckets {
		if n > 0 {
			h.buckets[i].Add(n)
		}
	}
	h.sum.Add(b.sum)
	h.count.Add(b.count)
}

// Histogram is a copy of a latency histogram: Counts[i] counts values
// ≤ LatencyBounds[i]; the last entry counts the rest.
type Histogram struct {
	Counts []uint64
	Sum    time.Duration
	Count  uint64
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Counts: make([]uint64, len(h.buckets)), Sum: time.Duration(h.sum.Load()), Count: h.count.Load()}
	for i := range h.buckets {
		out.Counts[i] = h.buckets[i].Load()
	}
	return out
}

// Quantile estimates the q-quantile (0..1), interpolating linearly
// inside the bucket it falls in.
func (h Histogram) Quantile(q float64) time.Duration {
	if h.Count == 0 {
		return 0
	}
	rank := q * float64(h.Count)
	var acc float64
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		if acc+float64(c) >= rank {
			var lo, hi time.Duration
			if i > 0 {
				lo = LatencyBounds[i-1]
			}
			if i < len(LatencyBounds) {
				hi = LatencyBounds[i]
			} else {
				return lo
			}
			frac := (rank - acc) / float64(c)
			return lo + time.Duration(frac*float64(hi-lo))
		}
		acc += float64(c)
	}
	return LatencyBounds[len(LatencyBounds)-1]
}

// ServerStats is a copy of one server connection's state and counters.
type ServerStats struct {
	Name          string
	State         ConnState
	Endpoint      string
	ServiceLevel  int // -1 unknown
	Connects      uint64
	Reconnects    uint64
	KeepAlives    uint64
	Notifications uint64
	Writes        uint64
	WriteRequests uint64
	WriteErrors   uint64
	// LeaseAborts counts sessions whose socket the write fence reset
	// with a Write unanswered: the lease lapsed (Gate.LeaseValid) or
	// Engine.AbortWrites was called.
	LeaseAborts uint64
	// FiltersRefused counts monitored items created without their
	// deadband filter because the server refused it (logged as a
	// warning; the client-side deadband applies).
	FiltersRefused uint64
	// Subscriptions is the number of subscriptions of the current
	// session (one per publishing interval of the mappings reading from
	// the server; 0 while disconnected).
	Subscriptions int
	Pending       int
	// InFlight is the number of Write requests sent and not yet answered.
	InFlight int
	// Certificate is the server certificate of the last secure session
	// (nil for security None).
	Certificate *CertInfo
	// LastError is why the last session ended or failed to start ("" if
	// none did). It never holds a secret.
	LastError string
	// Members are the servers of a redundant server set, in config order
	// (nil for a single server); Switches counts changes of the member in
	// use.
	Members  []MemberStats
	Switches uint64
}

// Stats is a copy of the engine's counters.
type Stats struct {
	Servers []ServerStats
	// OwnCertificate is the application certificate secure sessions use
	// (nil without a certificate store or before one is loaded).
	OwnCertificate  *CertInfo
	BadSource       uint64
	Echoes          uint64
	Stale           uint64
	Conflicts       uint64
	ConvErrors      uint64
	ReconcileWrites uint64
	Reconciles      uint64
	Latency         Histogram
	WriteLatency    Histogram
	States          map[State]int
}

// ServerState returns the connection state of the server named name
// (Disconnected if the config has none). Unlike Stats it looks at no
// mapping, so it is cheap enough to poll often. Safe for concurrent use.
func (e *Engine) ServerState(name string) ConnState {
	for _, c := range e.connList() {
		if c.name == name {
			return ConnState(c.state.Load())
		}
	}
	return Disconnected
}

// Stats returns a copy of the engine's counters and mapping states. Safe
// for concurrent use; it takes each mapping's lock briefly.
func (e *Engine) Stats() Stats {
	st := Stats{
		BadSource:       e.stats.badSource.Load(),
		Echoes:          e.stats.echoes.Load(),
		Stale:           e.stats.stale.Load(),
		Conflicts:       e.stats.conflicts.Load(),
		ConvErrors:      e.stats.convErrors.Load(),
		ReconcileWrites: e.stats.reconcileWrites.Load(),
		Reconciles:      e.reconciles.Load(),
		Latency:         e.stats.latency.snapshot(),
		WriteLatency:    e.stats.writeLatency.snapshot(),
		States:          map[State]int{},
	}
	if e.security != nil {
		if der, _, _, err := e.security.ApplicationCertificate(); err == nil {
			st.OwnCertificate = certInfo(der)
		}
	}
	for _, c := range e.connList() {
		ep := ""
		if p := c.endpoint.Load(); p != nil {
			ep = *p
		}
		st.Servers = append(st.Servers, ServerStats{
			Name: c.name, State: ConnState(c.state.Load()), Endpoint: ep, ServiceLevel: int(c.level.Load()),
			Connects: c.stats.connects.Load(), Reconnects: c.stats.reconnects.Load(),
			KeepAlives: c.stats.keepAlives.Load(), Notifications: c.stats.notifications.Load(),
			Writes: c.stats.writes.Load(), WriteRequests: c.stats.writeRequests.Load(),
			WriteErrors: c.stats.writeErrors.Load(), LeaseAborts: c.stats.leaseAborts.Load(), Pending: c.w.pending(),
			FiltersRefused: c.stats.filtersRefused.Load(), Subscriptions: int(c.stats.subs.Load()),
			InFlight:    int(c.w.busy.Load()),
			Certificate: c.cert.Load(), LastError: loadString(&c.lastErr),
			Members: c.memberStats(), Switches: c.switches.Load(),
		})
	}
	var n [len(stateNames)]int
	for _, ms := range e.tab.Load().maps {
		ms.countStates(&n)
	}
	for s, k := range n {
		if k > 0 {
			st.States[State(s)] = k
		}
	}
	return st
}

func loadString(p *atomic.Pointer[string]) string {
	if s := p.Load(); s != nil {
		return *s
	}
	return ""
}
