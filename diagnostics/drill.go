package diagnostics

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/redundancy"
)

// SetDrills gives the admin API the member's drill journal: POST
// /api/v1/drill records a drill's result (the `uamirror drill` command
// sends it), GET /api/v1/drill returns the last one, /api/v1/events
// lists them (kind drill) and /metrics exports the last one's figures.
// Call it once, before serving.
func (a *Admin) SetDrills(j *redundancy.DrillJournal) {
	a.drills = j
	a.handle("POST", "/api/v1/drill", a.postDrill)
	a.handle("GET", "/api/v1/drill", a.getDrill)
	a.reg.MustRegister(&drillCollector{j: j})
}

func (a *Admin) postDrill(w http.ResponseWriter, r *http.Request) {
	body, code, err := readBody(w, r, maxCommandBody)
	var d redundancy.DrillRecord
	if err == nil {
		if err = decodeStrict(body, &d); err != nil {
			code, err = http.StatusBadRequest, fmt.Errorf("drill record: %w", err)
		}
	}
	if err == nil && d.Time.IsZero() {
		code, err = http.StatusBadRequest, fmt.Errorf("drill record: no time")
	}
	if err != nil {
		a.fail(w, code, err)
		return
	}
	a.drills.Record(d)
	ev := d.Event()
	a.log.Info("drill recorded", zap.String("verdict", ev.Reason), zap.String("from", d.From), zap.String("to", d.To), zap.String("detail", ev.Detail))
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "event": ev})
}

func (a *Admin) getDrill(w http.ResponseWriter, _ *http.Request) {
	d, ok := a.drills.Last()
	if !ok {
		writeJSON(w, http.StatusNotFound, apiError{Error: "no drill recorded on this member"})
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// Drill metrics: the last drill recorded on this member.
var (
	descDrillTime = desc("uamirror_drill_last_timestamp_seconds",
		"Unix time of the last failover drill recorded on this member.")
	descDrillPass = desc("uamirror_drill_last_pass",
		"1 when the last failover drill passed.")
	descDrillGap = desc("uamirror_drill_last_gap_seconds",
		"The last drill's gap across the handover, per target server, as the target server saw it.", "server")
	descDrillUsual = desc("uamirror_drill_last_usual_interval_seconds",
		"The longest interval between new values before the last drill's switchover, per target server.", "server")
	descDrillAnomalies = desc("uamirror_drill_last_anomalies",
		"Bad/Uncertain, default, older and duplicate values the last drill saw, per target server.", "server")
)

// drillCollector reads the drill journal at scrape time.
type drillCollector struct{ j *redundancy.DrillJournal }

func (c *drillCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDrillTime, descDrillPass, descDrillGap, descDrillUsual, descDrillAnomalies} {
		ch <- d
	}
}

func (c *drillCollector) Collect(ch chan<- prometheus.Metric) {
	d, ok := c.j.Last()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(descDrillTime, prometheus.GaugeValue, float64(d.Time.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(descDrillPass, prometheus.GaugeValue, b2f(d.Pass))
	for _, t := range d.Targets {
		if t.GapMS != nil {
			ch <- prometheus.MustNewConstMetric(descDrillGap, prometheus.GaugeValue, *t.GapMS/1000, t.Server)
		}
		ch <- prometheus.MustNewConstMetric(descDrillUsual, prometheus.GaugeValue, t.UsualMS/1000, t.Server)
		ch <- prometheus.MustNewConstMetric(descDrillAnomalies, prometheus.GaugeValue, float64(t.Anomalies), t.Server)
	}
}
