package diagnostics_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/harness"
)

// TestDrillJournal: a drill posted to the admin API is listed in the
// events (kind drill) with its figures, served by GET /api/v1/drill,
// exported as metrics and shown by the OPC UA face's LastDrill.
func TestDrillJournal(t *testing.T) {
	ctx := harness.Context(t)
	pair := activePair("a")
	drills := &redundancy.DrillJournal{}
	a := diagnostics.NewAdmin(pair, nil, zap.NewNop())
	a.SetDrills(drills)
	base := serve(t, a)

	if code, _ := do(t, http.MethodGet, base+"/api/v1/drill", nil); code != http.StatusNotFound {
		t.Errorf("GET /api/v1/drill before any: %d, want 404", code)
	}
	if code, b := do(t, http.MethodPost, base+"/api/v1/drill", []byte(`{"time":"2026-01-01T00:00:00Z","bogus":1}`)); code != http.StatusBadRequest {
		t.Errorf("POST with an unknown field: %d %s, want 400", code, b)
	}
	gap := 83.5
	rec := redundancy.DrillRecord{Time: time.Date(2026, 12, 3, 3, 0, 0, 0, time.UTC), From: "a", To: "b", Epoch: 4, Pass: true,
		Targets: []redundancy.DrillTarget{{Server: "scada", GapMS: &gap, UsualMS: 50, Sampled: 20, Pass: true}}}
	body, _ := json.Marshal(rec)
	if code, b := do(t, http.MethodPost, base+"/api/v1/drill", body); code != http.StatusOK {
		t.Fatalf("POST /api/v1/drill: %d %s", code, b)
	}
	var res struct {
		Events []redundancy.Event `json:"events"`
	}
	getJSON(t, base+"/api/v1/events", &res)
	var ev *redundancy.Event
	for i := range res.Events {
		if res.Events[i].Kind == redundancy.DrillKind {
			ev = &res.Events[i]
		}
	}
	if ev == nil || ev.Reason != "drill PASS" || ev.GapMS == nil || *ev.GapMS != gap || ev.Epoch != 4 ||
		ev.Detail != "scada: gap 84 ms (usual 50 ms), 0 anomalies" {
		t.Fatalf("drill event: %+v", ev)
	}
	var last redundancy.DrillRecord
	if code := getJSON(t, base+"/api/v1/drill", &last); code != http.StatusOK || last.To != "b" || len(last.Targets) != 1 {
		t.Errorf("GET /api/v1/drill: %d %+v", code, last)
	}
	_, m := do(t, http.MethodGet, base+"/metrics", nil)
	for _, want := range []string{`uamirror_drill_last_gap_seconds{server="scada"} 0.0835`, "uamirror_drill_last_pass 1",
		`uamirror_drill_last_anomalies{server="scada"} 0`, "uamirror_drill_last_timestamp_seconds 1.7962668e+09"} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(string(m), "uamirror_drill"))
		}
	}

	u, err := diagnostics.NewUAServer(diagnostics.UAServerConfig{Addr: "127.0.0.1:0", Pair: pair, Drills: drills,
		Interval: 20 * time.Millisecond, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = u.Run(rctx) }()
	defer func() { stop(); wg.Wait() }()
	c := dialUA(t, ctx, u.Endpoint())
	ns, err := c.FindNamespace(ctx, diagnostics.UANamespaceURI)
	if err != nil {
		t.Fatal(err)
	}
	req := &ua.ReadRequest{}
	for _, f := range []string{"Verdict", "GapMS", "To", "Epoch", "Time"} {
		req.NodesToRead = append(req.NodesToRead, &ua.ReadValueID{NodeID: ua.NewStringNodeID(ns, "LastDrill/"+f), AttributeID: ua.AttributeIDValue})
	}
	rr, err := c.Read(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{"PASS", gap, "b", uint64(4), rec.Time}
	for k, w := range want {
		if dv := rr.Results[k]; dv.Status != ua.StatusOK || dv.Value == nil || dv.Value.Value() != w {
			t.Errorf("LastDrill/%s: %v %v, want %v", req.NodesToRead[k].NodeID.StringID(), dv.Status, dv.Value, w)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
