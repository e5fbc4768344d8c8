package diagnostics_test

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/diagnostics"
)

// scrape fetches /metrics and parses the text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := do(t, http.MethodGet, url+"/metrics", nil)
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	// Legacy names: what every Prometheus server accepts.
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics is not the text format: %v", err)
	}
	return fams
}

// value returns the value of the metric of family name whose labels
// include labels (name=value pairs); ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	e, _, _ := testEngine(t, 4)
	url := serve(t, diagnostics.NewAdmin(activePair("a"), engineFunc(e), zap.NewNop()))
	fams := scrape(t, url)
	tests := []struct {
		name   string
		labels []string
		check  func(v float64) bool
	}{
		{"uamirror_server_up", []string{"server", "plc"}, func(v float64) bool { return v == 1 }},
		{"uamirror_server_connection_state", []string{"server", "scada", "state", "connected"}, func(v float64) bool { return v == 1 }},
		{"uamirror_server_connection_state", []string{"server", "scada", "state", "disconnected"}, func(v float64) bool { return v == 0 }},
		{"uamirror_server_service_level", []string{"server", "plc"}, func(v float64) bool { return v == 255 }},
		{"uamirror_server_notifications_total", []string{"server", "plc"}, func(v float64) bool { return v > 0 }},
		{"uamirror_server_writes_total", []string{"server", "scada"}, func(v float64) bool { return v > 0 }},
		{"uamirror_server_write_errors_total", []string{"server", "scada"}, func(v float64) bool { return v == 0 }},
		{"uamirror_server_reconnects_total", []string{"server", "plc"}, func(v float64) bool { return v == 0 }},
		{"uamirror_server_pending_writes", []string{"server", "scada"}, func(v float64) bool { return v >= 0 }},
		{"uamirror_pair_role", []string{"role", "active"}, func(v float64) bool { return v == 1 }},
		{"uamirror_pair_role", []string{"role", "standby"}, func(v float64) bool { return v == 0 }},
		{"uamirror_pair_epoch", nil, func(v float64) bool { return v == 3 }},
		{"uamirror_pair_standby_ready", nil, func(v float64) bool { return v == 1 }},
		{"uamirror_pair_switchovers_total", []string{"reason", "manual"}, func(v float64) bool { return v == 2 }},
		{"uamirror_pair_switchovers_total", []string{"reason", "bootstrap"}, func(v float64) bool { return v == 1 }},
		{"uamirror_pair_member_link", []string{"member", "b", "state", "up"}, func(v float64) bool { return v == 1 }},
		{"uamirror_peer_server_service_level", []string{"server", "plc"}, func(v float64) bool { return v == 200 }},
		{"uamirror_node_info", []string{"node", "a", "config_hash", "abc123"}, func(v float64) bool { return v == 1 }},
		{"uamirror_build_info", []string{"version", "v0.2.0", "protocol", "2", "min_protocol", "1"}, func(v float64) bool { return v == 1 }},
		{"uamirror_pair_protocol", nil, func(v float64) bool { return v == 1 }},
		{"uamirror_pair_member_version_info", []string{"member", "b", "protocol", "1"}, func(v float64) bool { return v == 1 }},
		{"uamirror_pair_member_version_info", []string{"member", "a", "version", "v0.2.0", "protocol", "2"}, func(v float64) bool { return v == 1 }},
		{"uamirror_mappings", []string{"state", "ok"}, func(v float64) bool { return v == 4 }},
		{"uamirror_mappings", []string{"state", "quarantined"}, func(v float64) bool { return v == 1 }},
		{"uamirror_mappings", []string{"state", "disabled"}, func(v float64) bool { return v == 1 }},
		{"uamirror_mappings", []string{"state", "bad"}, func(v float64) bool { return v == 0 }},
		{"uamirror_latency_seconds", nil, func(v float64) bool { return v > 0 }},
		{"uamirror_write_request_duration_seconds", nil, func(v float64) bool { return v > 0 }},
		{"uamirror_reconciles_total", nil, func(v float64) bool { return v == 1 }},
		{"go_goroutines", nil, func(v float64) bool { return v > 0 }},
	}
	for _, tt := range tests {
		v, ok := value(fams, tt.name, tt.labels...)
		if !ok || !tt.check(v) {
			t.Errorf("%s%v = %v (present %v)", tt.name, tt.labels, v, ok)
		}
	}
	h := fams["uamirror_latency_seconds"].Metric[0].Histogram
	if len(h.Bucket) != len(bridge.LatencyBounds)+1 || !math.IsInf(h.Bucket[len(h.Bucket)-1].GetUpperBound(), 1) {
		t.Fatalf("%d buckets, want the engine's %d and +Inf", len(h.Bucket), len(bridge.LatencyBounds))
	}
	for i, b := range h.Bucket[:len(bridge.LatencyBounds)] {
		if b.GetUpperBound() != bridge.LatencyBounds[i].Seconds() {
			t.Errorf("bucket %d bound %v, want %v", i, b.GetUpperBound(), bridge.LatencyBounds[i].Seconds())
		}
		if i > 0 && b.GetCumulativeCount() < h.Bucket[i-1].GetCumulativeCount() {
			t.Errorf("bucket %d not cumulative", i)
		}
	}
	if inf := h.Bucket[len(h.Bucket)-1].GetCumulativeCount(); inf != h.GetSampleCount() {
		t.Errorf("+Inf bucket %d != count %d", inf, h.GetSampleCount())
	}
}

func TestMetricsWithoutEngine(t *testing.T) {
	url := serve(t, diagnostics.NewAdmin(activePair("arb"), nil, zap.NewNop()))
	fams := scrape(t, url)
	if _, ok := value(fams, "uamirror_pair_epoch"); !ok {
		t.Error("no pair metrics")
	}
	for name := range fams {
		if strings.HasPrefix(name, "uamirror_server_") || strings.HasPrefix(name, "uamirror_mappings") {
			t.Errorf("engine metric %s without an engine", name)
		}
	}
}

// Two admin APIs in one process (two nodes in one test) each have their
// own registry.
func TestTwoAdminsInOneProcess(t *testing.T) {
	u1 := serve(t, diagnostics.NewAdmin(activePair("a"), nil, zap.NewNop()))
	u2 := serve(t, diagnostics.NewAdmin(activePair("b"), nil, zap.NewNop()))
	if _, ok := value(scrape(t, u1), "uamirror_node_info", "node", "a"); !ok {
		t.Error("node a's metrics")
	}
	f2 := scrape(t, u2)
	if _, ok := value(f2, "uamirror_node_info", "node", "b"); !ok {
		t.Error("node b's metrics")
	}
	if _, ok := value(f2, "uamirror_node_info", "node", "a"); ok {
		t.Error("node a's metrics in node b's registry")
	}
}

type fixedEngine struct{ st bridge.Stats }

func (f fixedEngine) Snapshot() []bridge.MappingStatus { return nil }
func (f fixedEngine) Stats() bridge.Stats              { return f.st }

func TestLatencyHistogram(t *testing.T) {
	n := len(bridge.LatencyBounds) + 1
	counts := make([]uint64, n)
	counts[0], counts[3], counts[n-1] = 2, 5, 1 // ≤0.5ms: 2; (2ms,5ms]: 5; > 5s: 1
	e := fixedEngine{bridge.Stats{Latency: bridge.Histogram{Counts: counts, Sum: 2 * time.Second, Count: 99}}}
	url := serve(t, diagnostics.NewAdmin(activePair("a"), engineFunc(e), zap.NewNop()))
	h := scrape(t, url)["uamirror_latency_seconds"].Metric[0].Histogram
	if h.GetSampleCount() != 8 {
		t.Errorf("count %d, want 8 (the sum of the buckets, not the racy Count)", h.GetSampleCount())
	}
	if math.Abs(h.GetSampleSum()-2) > 1e-9 {
		t.Errorf("sum %v, want 2", h.GetSampleSum())
	}
	want := map[float64]uint64{0.0005: 2, 0.001: 2, 0.002: 2, 0.005: 7, 5: 7}
	for _, b := range h.Bucket {
		if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
}
