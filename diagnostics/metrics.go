package diagnostics

import (
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/redundancy"
)

// newRegistry builds the admin API's own registry (never the global
// one: two nodes in one process each have theirs). The collectors read
// Status, Events and Stats at scrape time; nothing is counted here.
func newRegistry(pair Pair, engine EngineFunc) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&pairCollector{pair: pair},
		&engineCollector{engine: engine},
		&certCollector{engine: engine},
	)
	return reg
}

func (a *Admin) metricsHandler() http.HandlerFunc {
	h := promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return h.ServeHTTP
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// Pair metrics: this member's view of the pair.
var (
	descRole = desc("uamirror_pair_role",
		"1 for this member's current role (active, standby or arbiter), 0 for the others.", "role")
	descEpoch = desc("uamirror_pair_epoch",
		"The pair's epoch: incremented by every promotion.")
	descReady = desc("uamirror_pair_ready",
		"1 when this member is ready: the active is writing, the standby is READY, the arbiter has a leader.")
	descStandbyReady = desc("uamirror_pair_standby_ready",
		"1 when the standby is READY to take over (as seen by this member).")
	descMemberLink = desc("uamirror_pair_member_link",
		"1 for the state of this member's link to each member (self, up, down or unknown).", "member", "state")
	descSwitchovers = desc("uamirror_pair_switchovers_total",
		"Role changes in the pair's journal, by reason (bootstrap, manual, server-monitor, peer-lost, arbiter, force, …). The journal keeps the last 1000.", "reason")
	descLastSwitchover = desc("uamirror_pair_last_switchover_timestamp_seconds",
		"Unix time of the last role change in the journal.")
	descLocalDiff = desc("uamirror_pair_local_config_differs",
		"1 when this node's local config file differs from the pair's replicated config.")
	descInfo = desc("uamirror_node_info",
		"Always 1; labels name this member and the pair's config hash.", "node", "config_hash")
	descPeerUp = desc("uamirror_peer_server_up",
		"The standby's view of each server (reported over the peer link, on the active only): 1 when its session is up.", "server")
	descPeerLevel = desc("uamirror_peer_server_service_level",
		"The standby's view of each server's ServiceLevel (on the active only).", "server")
	descBuildInfo = desc("uamirror_build_info",
		"Always 1; labels name this member's software version and the pair protocols it speaks (min_protocol–protocol).",
		"version", "protocol", "min_protocol", "goversion")
	descPairProtocol = desc("uamirror_pair_protocol",
		"The pair protocol the pair runs at as this member knows it: the lowest of its members' (lower than this member's own while versions are mixed).")
	descMemberVersion = desc("uamirror_pair_member_version_info",
		"Always 1 per member whose version this member knows; labels name it (a member announcing no version is v0.1.0 or older, protocol 1).",
		"member", "version", "protocol")
)

// pairCollector exports Pair.Status and Pair.Events.
type pairCollector struct{ pair Pair }

func (c *pairCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRole, descEpoch, descReady, descStandbyReady, descMemberLink,
		descSwitchovers, descLastSwitchover, descLocalDiff, descInfo, descPeerUp, descPeerLevel,
		descBuildInfo, descPairProtocol, descMemberVersion} {
		ch <- d
	}
}

func (c *pairCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.pair.Status()
	for _, r := range []redundancy.PairRole{redundancy.PairActive, redundancy.PairStandby, redundancy.PairArbiter} {
		ch <- prometheus.MustNewConstMetric(descRole, prometheus.GaugeValue, b2f(st.Role == r), string(r))
	}
	ch <- prometheus.MustNewConstMetric(descEpoch, prometheus.GaugeValue, float64(st.Epoch))
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, b2f(st.Ready))
	ch <- prometheus.MustNewConstMetric(descStandbyReady, prometheus.GaugeValue, b2f(st.StandbyReady))
	ch <- prometheus.MustNewConstMetric(descLocalDiff, prometheus.GaugeValue, b2f(st.LocalDiff != ""))
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, st.Node, st.ConfigHash)
	for _, m := range st.Members {
		ch <- prometheus.MustNewConstMetric(descMemberLink, prometheus.GaugeValue, 1, m.ID, m.Link)
		if m.Version.Protocol > 0 && m.Version.Source != "unknown" {
			ch <- prometheus.MustNewConstMetric(descMemberVersion, prometheus.GaugeValue, 1, m.ID, m.Version.Version, strconv.Itoa(m.Version.Protocol))
		}
	}
	if st.Version.Protocol > 0 {
		ch <- prometheus.MustNewConstMetric(descBuildInfo, prometheus.GaugeValue, 1, st.Version.Version,
			strconv.Itoa(st.Version.Protocol), strconv.Itoa(st.Version.MinProtocol), runtime.Version())
		ch <- prometheus.MustNewConstMetric(descPairProtocol, prometheus.GaugeValue, float64(st.PairProtocol))
	}
	if st.PeerHealth != nil {
		for _, s := range st.PeerHealth.Servers {
			ch <- prometheus.MustNewConstMetric(descPeerUp, prometheus.GaugeValue, b2f(s.Up), s.Name)
			if s.ServiceLevel >= 0 {
				ch <- prometheus.MustNewConstMetric(descPeerLevel, prometheus.GaugeValue, float64(s.ServiceLevel), s.Name)
			}
		}
	}
	events := c.pair.Events()
	byReason := map[string]float64{}
	for _, e := range events {
		byReason[e.Reason]++
	}
	for r, n := range byReason {
		ch <- prometheus.MustNewConstMetric(descSwitchovers, prometheus.CounterValue, n, r)
	}
	if len(events) > 0 {
		t := events[len(events)-1].Time
		ch <- prometheus.MustNewConstMetric(descLastSwitchover, prometheus.GaugeValue, float64(t.UnixNano())/1e9)
	}
}

// Engine metrics, per server (label server) and per node.
var (
	descServerUp = desc("uamirror_server_up",
		"1 when this node's session to the server is connected.", "server")
	descServerState = desc("uamirror_server_connection_state",
		"1 for the current state of this node's connection to the server (disconnected, connecting, connected).", "server", "state")
	descServerLevel = desc("uamirror_server_service_level",
		"The server's ServiceLevel as last read by this node (absent while unknown).", "server")
	descMemberLevel = desc("uamirror_server_member_service_level",
		"ServiceLevel of each member of a redundant server set (absent while unknown or down).", "server", "endpoint")
	descMemberInUse = desc("uamirror_server_member_in_use",
		"1 for the member of a redundant server set in use.", "server", "endpoint")
	descMemberSwitches = desc("uamirror_server_member_switches_total",
		"Changes of the member in use of a redundant server set.", "server")
	descNotifications = desc("uamirror_server_notifications_total",
		"Data change notifications received from the server.", "server")
	descWrites = desc("uamirror_server_writes_total",
		"Values confirmed written to the server.", "server")
	descWriteRequests = desc("uamirror_server_write_requests_total",
		"Write service requests sent to the server.", "server")
	descWriteErrors = desc("uamirror_server_write_errors_total",
		"Values the server refused or that failed to be written.", "server")
	descConnects = desc("uamirror_server_connects_total",
		"Sessions established to the server.", "server")
	descReconnects = desc("uamirror_server_reconnects_total",
		"Sessions re-established after a fault.", "server")
	descKeepAlives = desc("uamirror_server_keepalives_total",
		"Keep-alive reads of the server's state.", "server")
	descLeaseAborts = desc("uamirror_server_lease_aborts_total",
		"Sessions aborted because the write lease lapsed with a Write unanswered.", "server")
	descPending = desc("uamirror_server_pending_writes",
		"Values queued for writing to the server.", "server")
	descMappings = desc("uamirror_mappings",
		"Mapping flows by state (a `both` mapping has two flows).", "state")
	descLatency = desc("uamirror_latency_seconds",
		"Source timestamp to write confirmed on the target, per value.")
	descWriteLatency = desc("uamirror_write_request_duration_seconds",
		"Round trip of one Write service request.")
	descBadSource = desc("uamirror_bad_source_values_total",
		"Bad or Uncertain values received from sources (never written as values).")
	descEchoes = desc("uamirror_echoes_total",
		"Values recognised as the echo of our own write on a `both` mapping.")
	descStale = desc("uamirror_stale_values_total",
		"Values dropped because they were older than the mapping's newest.")
	descConflicts = desc("uamirror_conflicts_total",
		"True conflicts on `both` mappings (both sides changed; the newest source timestamp won).")
	descConvErrors = desc("uamirror_conversion_errors_total",
		"Values that could not be converted for their target.")
	descReconcileWrites = desc("uamirror_reconcile_writes_total",
		"Values queued by reconciliation (takeover or reconnect).")
	descReconciles = desc("uamirror_reconciles_total",
		"Reconciliations of all targets (each time this node became the writer).")
)

// connStates are the label values of uamirror_server_connection_state.
var connStates = []bridge.ConnState{bridge.Disconnected, bridge.Connecting, bridge.Connected}

// mappingStates are every mapping state, so that a state with no flow is
// exported as 0 rather than missing.
var mappingStates = bridge.States()

// engineCollector exports Engine.Stats of the engine running at scrape
// time (nothing when none runs). Counters restart from 0 when the node
// rebuilds its engine for a new config; Prometheus treats that as a
// counter reset.
type engineCollector struct{ engine EngineFunc }

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descServerUp, descServerState, descServerLevel, descMemberLevel, descMemberInUse, descMemberSwitches, descNotifications,
		descWrites, descWriteRequests, descWriteErrors, descConnects, descReconnects, descKeepAlives, descLeaseAborts, descPending,
		descMappings, descLatency, descWriteLatency, descBadSource, descEchoes, descStale, descConflicts, descConvErrors,
		descReconcileWrites, descReconciles} {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.engine()
	if e == nil {
		return
	}
	st := e.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, s := range st.Servers {
		gauge(descServerUp, b2f(s.State == bridge.Connected), s.Name)
		for _, cs := range connStates {
			gauge(descServerState, b2f(s.State == cs), s.Name, cs.String())
		}
		if s.ServiceLevel >= 0 {
			gauge(descServerLevel, float64(s.ServiceLevel), s.Name)
		}
		for _, m := range s.Members {
			if m.ServiceLevel >= 0 {
				gauge(descMemberLevel, float64(m.ServiceLevel), s.Name, m.Endpoint)
			}
			gauge(descMemberInUse, b2f(m.InUse), s.Name, m.Endpoint)
		}
		if len(s.Members) > 0 {
			counter(descMemberSwitches, s.Switches, s.Name)
		}
		counter(descNotifications, s.Notifications, s.Name)
		counter(descWrites, s.Writes, s.Name)
		counter(descWriteRequests, s.WriteRequests, s.Name)
		counter(descWriteErrors, s.WriteErrors, s.Name)
		counter(descConnects, s.Connects, s.Name)
		counter(descReconnects, s.Reconnects, s.Name)
		counter(descKeepAlives, s.KeepAlives, s.Name)
		counter(descLeaseAborts, s.LeaseAborts, s.Name)
		gauge(descPending, float64(s.Pending), s.Name)
	}
	for _, ms := range mappingStates {
		gauge(descMappings, float64(st.States[ms]), ms.String())
	}
	ch <- constHistogram(descLatency, st.Latency)
	ch <- constHistogram(descWriteLatency, st.WriteLatency)
	counter(descBadSource, st.BadSource)
	counter(descEchoes, st.Echoes)
	counter(descStale, st.Stale)
	counter(descConflicts, st.Conflicts)
	counter(descConvErrors, st.ConvErrors)
	counter(descReconcileWrites, st.ReconcileWrites)
	counter(descReconciles, st.Reconciles)
}

// constHistogram turns the engine's per-bucket counts (bucket i holds the
// values in (LatencyBounds[i-1], LatencyBounds[i]], the last one the rest)
// into Prometheus' cumulative buckets with the engine's bounds. The count
// is the sum of the buckets, so the histogram is consistent even though
// the engine's counters are read one by one.
func constHistogram(d *prometheus.Desc, h bridge.Histogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(bridge.LatencyBounds))
	var cum uint64
	for i, n := range h.Counts {
		cum += n
		if i < len(bridge.LatencyBounds) {
			buckets[bridge.LatencyBounds[i].Seconds()] = cum
		}
	}
	m, err := prometheus.NewConstHistogram(d, cum, h.Sum.Seconds(), buckets)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// millis returns d in (fractional) milliseconds, for JSON.
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
