package diagnostics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/redundancy"
)

// maxProblems bounds the list of unhealthy mappings in the summary.
const maxProblems = 100

// Summary is the answer of GET /api/v1/summary: what the status page
// polls besides the pair view, with the totals it turns into rates.
type Summary struct {
	Node   string    `json:"node"`
	Role   string    `json:"role"`
	Epoch  uint64    `json:"epoch"`
	Active string    `json:"active"`
	Time   time.Time `json:"time"` // this node's clock when the summary was taken
	// Engine is false when no engine runs here (then the fields below
	// are empty).
	Engine   bool             `json:"engine"`
	Servers  []ServerSummary  `json:"servers"`
	Totals   Totals           `json:"totals"`
	Mappings MappingsSummary  `json:"mappings"`
	Latency  HistogramSummary `json:"latency"`
	// OwnCertificate is the application certificate of secure sessions
	// (absent without a certificate store).
	OwnCertificate *CertSummary `json:"own_certificate,omitempty"`
}

// ServerSummary is one server as this node's engine sees it.
type ServerSummary struct {
	Name          string `json:"name"`
	State         string `json:"state"` // disconnected, connecting, connected
	Endpoint      string `json:"endpoint,omitempty"`
	ServiceLevel  int    `json:"service_level"` // -1: unknown
	Notifications uint64 `json:"notifications"`
	Writes        uint64 `json:"writes"`
	WriteRequests uint64 `json:"write_requests"`
	WriteErrors   uint64 `json:"write_errors"`
	Connects      uint64 `json:"connects"`
	Reconnects    uint64 `json:"reconnects"`
	Pending       int    `json:"pending"`
	// Certificate is the server's certificate in use (secure sessions).
	Certificate *CertSummary `json:"certificate,omitempty"`
	// LastError is why the last session ended or failed to start.
	LastError string `json:"last_error,omitempty"`
	// Members are the servers of a redundant server set (absent for a
	// single server); Switches counts changes of the member in use.
	Members  []MemberSummary `json:"members,omitempty"`
	Switches uint64          `json:"switches,omitempty"`
}

// MemberSummary is one member of a redundant server set.
type MemberSummary struct {
	Endpoint     string `json:"endpoint"`
	State        string `json:"state"`
	ServiceLevel int    `json:"service_level"` // -1: unknown or down
	InUse        bool   `json:"in_use"`
	// Reason is why the member in use was chosen, or why another
	// member's last session ended.
	Reason string `json:"reason,omitempty"`
}

// Totals are the engine's counters summed over the servers.
type Totals struct {
	Notifications uint64 `json:"notifications"`
	Writes        uint64 `json:"writes"`
	WriteErrors   uint64 `json:"write_errors"`
	Reconnects    uint64 `json:"reconnects"`
	BadSource     uint64 `json:"bad_source"`
	ConvErrors    uint64 `json:"conversion_errors"`
	Stale         uint64 `json:"stale"`
	Echoes        uint64 `json:"echoes"`
	Conflicts     uint64 `json:"conflicts"`
}

// MappingsSummary counts flows by state and lists the unhealthy ones
// (bad, quarantined, held), at most maxProblems of them.
type MappingsSummary struct {
	Total             int            `json:"total"`
	States            map[string]int `json:"states"`
	Problems          []MappingItem  `json:"problems"`
	ProblemsTruncated bool           `json:"problems_truncated,omitempty"`
}

// HistogramSummary is the engine's latency histogram (source timestamp →
// write confirmed) as raw per-bucket counts: Counts[i] counts values
// ≤ BoundsMS[i]; the last entry counts the rest. Subtract two successive
// summaries to get the latencies of the interval.
type HistogramSummary struct {
	BoundsMS []float64 `json:"bounds_ms"`
	Counts   []uint64  `json:"counts"`
	Count    uint64    `json:"count"`
	SumMS    float64   `json:"sum_ms"`
}

func (a *Admin) summary(w http.ResponseWriter, _ *http.Request) {
	st := a.pair.Status()
	writeJSON(w, http.StatusOK, summarize(st, a.engine()))
}

func summarize(st redundancy.Status, e Engine) Summary {
	s := Summary{Node: st.Node, Role: string(st.Role), Epoch: st.Epoch, Active: st.Active, Time: time.Now(),
		Servers: []ServerSummary{}, Mappings: MappingsSummary{States: map[string]int{}, Problems: []MappingItem{}}}
	for _, ms := range mappingStates {
		s.Mappings.States[ms.String()] = 0
	}
	s.Latency.BoundsMS = make([]float64, len(bridge.LatencyBounds))
	for i, b := range bridge.LatencyBounds {
		s.Latency.BoundsMS[i] = millis(b)
	}
	if e == nil {
		return s
	}
	s.Engine = true
	stats := e.Stats()
	for _, sv := range stats.Servers {
		s.Servers = append(s.Servers, ServerSummary{Name: sv.Name, State: sv.State.String(), Endpoint: sv.Endpoint,
			ServiceLevel: sv.ServiceLevel, Notifications: sv.Notifications, Writes: sv.Writes, WriteRequests: sv.WriteRequests,
			WriteErrors: sv.WriteErrors, Connects: sv.Connects, Reconnects: sv.Reconnects, Pending: sv.Pending,
			Certificate: certSummary(sv.Certificate, s.Time), LastError: sv.LastError,
			Members: memberSummaries(sv.Members), Switches: sv.Switches})
		s.Totals.Notifications += sv.Notifications
		s.Totals.Writes += sv.Writes
		s.Totals.WriteErrors += sv.WriteErrors
		s.Totals.Reconnects += sv.Reconnects
	}
	s.OwnCertificate = certSummary(stats.OwnCertificate, s.Time)
	s.Totals.BadSource, s.Totals.ConvErrors = stats.BadSource, stats.ConvErrors
	s.Totals.Stale, s.Totals.Echoes, s.Totals.Conflicts = stats.Stale, stats.Echoes, stats.Conflicts
	s.Latency.Counts = stats.Latency.Counts
	for _, n := range stats.Latency.Counts {
		s.Latency.Count += n
	}
	s.Latency.SumMS = millis(stats.Latency.Sum)
	for st, n := range stats.States {
		s.Mappings.States[st.String()] += n
		s.Mappings.Total += n
	}
	// The unhealthy ones need the (large) snapshot; take it only when
	// the counts say there are some.
	if stats.States[bridge.StateBad]+stats.States[bridge.StateQuarantined]+stats.States[bridge.StateHeld]+
		stats.States[bridge.StateClock]+stats.States[bridge.StateStale] == 0 {
		return s
	}
	snap := e.Snapshot()
	for i := range snap {
		switch ms := &snap[i]; ms.State {
		case bridge.StateBad, bridge.StateQuarantined, bridge.StateHeld, bridge.StateClock, bridge.StateStale:
			if len(s.Mappings.Problems) < maxProblems {
				s.Mappings.Problems = append(s.Mappings.Problems, itemOf(ms))
			} else {
				s.Mappings.ProblemsTruncated = true
			}
		}
	}
	return s
}

// PairView is the answer of GET /api/v1/pair: this node's status and,
// fetched from each other member's admin API, that member's own status.
type PairView struct {
	Self    redundancy.Status `json:"self"`
	Members []MemberView      `json:"members"`
}

// MemberView is one member: this node's view of it (configured role,
// link) and its own status (nil when it could not be reached; Error says
// why).
type MemberView struct {
	ID     string             `json:"id"`
	Role   redundancy.Role    `json:"role"`
	Admin  string             `json:"admin,omitempty"`
	Link   string             `json:"link"`
	Status *redundancy.Status `json:"status,omitempty"`
	Error  string             `json:"error,omitempty"`
}

// memberTimeout bounds the fetch of another member's status.
const memberTimeout = 1500 * time.Millisecond

func (a *Admin) pairView(w http.ResponseWriter, r *http.Request) {
	st := a.pair.Status()
	v := PairView{Self: st, Members: make([]MemberView, len(st.Members))}
	var wg sync.WaitGroup
	for i, m := range st.Members {
		mv := &v.Members[i]
		*mv = MemberView{ID: m.ID, Role: m.Role, Admin: m.Admin, Link: m.Link}
		switch {
		case m.ID == st.Node:
			self := st
			mv.Status = &self
		case m.Admin == "":
			mv.Error = "no admin address configured"
		case r.Header.Get(forwardedHeader) != "":
			// Asked by another member: do not fan out again.
		default:
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := a.memberStatus(r.Context(), m.ID, m.Admin)
				if err != nil {
					mv.Error = err.Error()
					return
				}
				mv.Status = s
			}()
		}
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, v)
}

// memberStatus fetches GET /api/v1/status from another member.
func (a *Admin) memberStatus(ctx context.Context, id, admin string) (*redundancy.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, memberTimeout)
	defer cancel()
	base, client, release := a.forwardTarget(id, admin)
	defer release()
	u := base + "/api/v1/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(forwardedHeader, "1")
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("unreachable: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("answered %s", res.Status)
	}
	var s redundancy.Status
	if err := json.NewDecoder(io.LimitReader(res.Body, 4<<20)).Decode(&s); err != nil {
		return nil, fmt.Errorf("bad answer: %w", err)
	}
	return &s, nil
}

// memberSummaries converts the members of a server set (nil for none).
func memberSummaries(ms []bridge.MemberStats) []MemberSummary {
	if len(ms) == 0 {
		return nil
	}
	out := make([]MemberSummary, len(ms))
	for i, m := range ms {
		out[i] = MemberSummary{Endpoint: m.Endpoint, State: m.State.String(), ServiceLevel: m.ServiceLevel,
			InUse: m.InUse, Reason: m.Reason}
	}
	return out
}
