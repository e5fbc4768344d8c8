package diagnostics_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/diagnostics"
)

func TestMappingsEndpoint(t *testing.T) {
	e, _, _ := testEngine(t, 5)
	url := serve(t, diagnostics.NewAdmin(activePair("a"), engineFunc(e), zap.NewNop()))
	tests := []struct {
		query       string
		total, page int
		ids         []int // the Index of each item
	}{
		{"", 7, 1, []int{0, 1, 2, 3, 4, 5, 6}},
		{"?per_page=3", 7, 1, []int{0, 1, 2}},
		{"?per_page=3&page=3", 7, 3, []int{6}},
		{"?per_page=3&page=4", 7, 4, []int{}},
		{"?state=quarantined", 1, 1, []int{5}},
		{"?state=disabled", 1, 1, []int{6}},
		{"?state=ok", 5, 1, []int{0, 1, 2, 3, 4}},
		{"?state=bad,quarantined&state=disabled", 2, 1, []int{5, 6}},
		{"?server=scada&state=held", 0, 1, []int{}},
		{"?server=plc&per_page=2&page=2", 7, 2, []int{2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var p diagnostics.MappingPage
			if code := getJSON(t, url+"/api/v1/mappings"+tt.query, &p); code != 200 {
				t.Fatalf("code %d", code)
			}
			if p.Total != tt.total || p.Page != tt.page || len(p.Items) != len(tt.ids) {
				t.Fatalf("total %d page %d items %d, want %d %d %d", p.Total, p.Page, len(p.Items), tt.total, tt.page, len(tt.ids))
			}
			for i, it := range p.Items {
				if it.Index != tt.ids[i] {
					t.Errorf("item %d is mapping %d, want %d", i, it.Index, tt.ids[i])
				}
			}
		})
	}
	var p diagnostics.MappingPage
	getJSON(t, url+"/api/v1/mappings?per_page=1", &p)
	it := p.Items[0]
	if it.From != "plc" || it.To != "scada" || it.Direction != "forward" || it.State != "ok" || it.Type != "Double" ||
		it.SourceTimestamp == nil || it.Value == nil || it.ID == "" {
		t.Errorf("ok item: %+v", it)
	}
	getJSON(t, url+"/api/v1/mappings?state=quarantined", &p)
	if q := p.Items[0]; q.State != "quarantined" || !strings.Contains(q.Reason, "source") {
		t.Errorf("quarantined item: %+v", q)
	}
	var e400 struct{ Error string }
	if code := getJSON(t, url+"/api/v1/mappings?server=nope", &e400); code != 400 || !strings.Contains(e400.Error, "servers: plc, scada") {
		t.Errorf("unknown server: %d %q", code, e400.Error)
	}
}

// snapEngine serves a fixed snapshot.
type snapEngine []bridge.MappingStatus

func (s snapEngine) Snapshot() []bridge.MappingStatus { return s }
func (s snapEngine) Stats() bridge.Stats {
	return bridge.Stats{Servers: []bridge.ServerStats{{Name: "a"}, {Name: "b"}, {Name: "c"}}}
}

func TestMappingsPaging(t *testing.T) {
	var snap snapEngine
	for i := range 2500 {
		ms := bridge.MappingStatus{ID: fmt.Sprintf("m%d", i), Index: i, From: "a", To: "b", State: bridge.StateOK}
		if i%10 == 0 {
			ms.From, ms.To, ms.Reverse, ms.State = "b", "c", true, bridge.StateBad
		}
		snap = append(snap, ms)
	}
	url := serve(t, diagnostics.NewAdmin(activePair("a"), engineFunc(snap), zap.NewNop()))
	tests := []struct {
		query                string
		total, pages, nItems int
		first                string
	}{
		{"", 2500, 25, 100, "m0"},
		{"?per_page=1000&page=3", 2500, 3, 500, "m2000"},
		{"?state=bad&per_page=1000", 250, 1, 250, "m0"},
		{"?server=c&page=2&per_page=10", 250, 25, 10, "m100"},
		{"?server=a", 2250, 23, 100, "m1"},
	}
	for _, tt := range tests {
		var p diagnostics.MappingPage
		getJSON(t, url+"/api/v1/mappings"+tt.query, &p)
		if p.Total != tt.total || p.Pages != tt.pages || len(p.Items) != tt.nItems || p.Items[0].ID != tt.first {
			t.Errorf("%s: total %d pages %d items %d first %s; want %d %d %d %s", tt.query,
				p.Total, p.Pages, len(p.Items), p.Items[0].ID, tt.total, tt.pages, tt.nItems, tt.first)
		}
	}
}

func TestMappingValues(t *testing.T) {
	ts := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name string
		v    any
		json string // the item's "value"
		typ  string
		cut  bool
	}{
		{"double", 1.5, `1.5`, "Double", false},
		{"NaN", math.NaN(), `"NaN"`, "Double", false},
		{"-Inf", math.Inf(-1), `"-Inf"`, "Double", false},
		{"float32 shortest", float32(0.1), `0.1`, "Float", false},
		{"float32 Inf", float32(math.Inf(1)), `"+Inf"`, "Float", false},
		{"int64 exact", int64(math.MaxInt64), `9223372036854775807`, "Int64", false},
		{"uint16", uint16(7), `7`, "UInt16", false},
		{"bool false", false, `false`, "Boolean", false},
		{"string", "a\"b", `"a\"b"`, "String", false},
		{"bytes", []byte{1, 2, 3}, `"AQID"`, "ByteString", false},
		{"time", ts, `"2025-06-01T12:00:00Z"`, "DateTime", false},
		{"array with NaN", []float64{1, math.NaN()}, `[1,"NaN"]`, "Double[]", false},
		{"int32 array", []int32{1, 2}, `[1,2]`, "Int32[]", false},
		{"localized text", &ua.LocalizedText{Text: "hi", EncodingMask: ua.LocalizedTextText}, `"hi"`, "LocalizedText", false},
		{"long string", long, `"` + long[:4096] + `"`, "String", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ua.NewVariant(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			snap := snapEngine{{ID: "x", From: "a", To: "b", State: bridge.StateOK, Value: v, SourceTS: ts, Written: v, WrittenTS: ts}}
			url := serve(t, diagnostics.NewAdmin(activePair("a"), engineFunc(snap), zap.NewNop()))
			var raw struct {
				Items []map[string]json.RawMessage `json:"items"`
			}
			getJSON(t, url+"/api/v1/mappings", &raw)
			it := raw.Items[0]
			compact := func(m json.RawMessage) string {
				var b bytes.Buffer
				_ = json.Compact(&b, m)
				return b.String()
			}
			if got := compact(it["value"]); got != tt.json {
				t.Errorf("value %s, want %s", got, tt.json)
			}
			if got := compact(it["written"]); got != tt.json {
				t.Errorf("written %s, want %s", got, tt.json)
			}
			if got := string(it["type"]); got != `"`+tt.typ+`"` {
				t.Errorf("type %s, want %s", got, tt.typ)
			}
			if _, cut := it["truncated"]; cut != tt.cut {
				t.Errorf("truncated %v, want %v", cut, tt.cut)
			}
		})
	}
}

// TestMappingSourceStatus: each item names the source's status as the
// node knows it, by name and code.
func TestMappingSourceStatus(t *testing.T) {
	tests := []struct {
		code ua.StatusCode
		name string
	}{
		{ua.StatusOK, "Good"},
		{ua.StatusBadNotConnected, "BadNotConnected"},
		{ua.StatusUncertainLastUsableValue, "UncertainLastUsableValue"},
		{ua.StatusCode(0x80FF0000), "0x80FF0000"},
	}
	for _, tt := range tests {
		snap := snapEngine{{ID: "x", From: "a", To: "b", State: bridge.StateOK, Status: tt.code}}
		url := serve(t, diagnostics.NewAdmin(activePair("a"), engineFunc(snap), zap.NewNop()))
		var p diagnostics.MappingPage
		getJSON(t, url+"/api/v1/mappings", &p)
		if it := p.Items[0]; it.SourceStatus != tt.name || it.SourceStatusCode != uint32(tt.code) {
			t.Errorf("status %v: item says %q (0x%X), want %q", tt.code, it.SourceStatus, it.SourceStatusCode, tt.name)
		}
	}
}
