package diagnostics

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/bridge"
)

// Paging of GET /api/v1/mappings.
const (
	defaultPerPage = 100
	maxPerPage     = 1000
)

// Bounds on one value in a mapping item: longer strings and byte strings,
// and larger arrays, are cut and marked truncated.
const (
	maxValueString = 4096
	maxValueElems  = 1000
)

// MappingItem is one flow of a mapping in GET /api/v1/mappings.
type MappingItem struct {
	ID    string `json:"id"`
	Index int    `json:"index"`
	// Direction is "forward" (source → target) or "reverse" (target →
	// source: a `write` mapping, or the return flow of a `both` one).
	Direction string `json:"direction"`
	Reverse   bool   `json:"reverse"`
	From      string `json:"from"`
	To        string `json:"to"`
	State     string `json:"state"`
	Reason    string `json:"reason,omitempty"`
	// Value is the last good value (after transformation), as JSON:
	// numbers, strings, booleans, arrays; NaN and ±Inf as strings,
	// ByteString as base64, DateTime as RFC 3339. Type is its OPC UA
	// type name ("Double", "Int32[]").
	Value           any        `json:"value,omitempty"`
	Type            string     `json:"type,omitempty"`
	SourceTimestamp *time.Time `json:"source_timestamp,omitempty"`
	// Written is the last value confirmed written to the target (on a
	// standby: written by the active, as streamed over the peer link).
	Written                any        `json:"written,omitempty"`
	WrittenType            string     `json:"written_type,omitempty"`
	WrittenSourceTimestamp *time.Time `json:"written_source_timestamp,omitempty"`
	// Truncated: a value was too large and was cut.
	Truncated bool `json:"truncated,omitempty"`
	// HeldSince is when a held flow's hold began, HeldForS its age in
	// seconds when the status was taken (state held only).
	HeldSince *time.Time `json:"held_since,omitempty"`
	HeldForS  float64    `json:"held_for_s,omitempty"`
	// SourceStatus is the source's status as this node knows it (its own
	// subscription, or the active's report while that delivers nothing),
	// by name ("Good", "BadNotConnected"); SourceStatusCode the code.
	SourceStatus     string `json:"source_status"`
	SourceStatusCode uint32 `json:"source_status_code"`
}

// MappingPage is the answer of GET /api/v1/mappings.
type MappingPage struct {
	// Total counts the flows that pass the filter; Pages = ceil(Total/PerPage).
	Total   int           `json:"total"`
	Page    int           `json:"page"`
	PerPage int           `json:"per_page"`
	Pages   int           `json:"pages"`
	Items   []MappingItem `json:"items"`
}

// mappingFilter is the query of GET /api/v1/mappings.
type mappingFilter struct {
	states        []bridge.State // empty: any
	server        string         // "": any; else From or To
	page, perPage int
}

func parseState(s string) (bridge.State, bool) {
	for _, st := range mappingStates {
		if st.String() == s {
			return st, true
		}
	}
	return 0, false
}

func stateNames() string {
	names := make([]string, len(mappingStates))
	for i, s := range mappingStates {
		names[i] = s.String()
	}
	return strings.Join(names, ", ")
}

// parseMappingFilter reads ?state=S[,S…]&server=NAME&page=N&per_page=N.
func parseMappingFilter(q url.Values) (mappingFilter, error) {
	f := mappingFilter{page: 1, perPage: defaultPerPage, server: q.Get("server")}
	for _, s := range q["state"] {
		for _, name := range strings.Split(s, ",") {
			st, ok := parseState(strings.TrimSpace(name))
			if !ok {
				return f, fmt.Errorf("state %q: want one of %s", name, stateNames())
			}
			f.states = append(f.states, st)
		}
	}
	num := func(key string, dst *int, max int) error {
		v := q.Get(key)
		if v == "" {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > max {
			return fmt.Errorf("%s %q: want a whole number from 1 to %d", key, v, max)
		}
		*dst = n
		return nil
	}
	if err := num("page", &f.page, math.MaxInt32); err != nil {
		return f, err
	}
	if err := num("per_page", &f.perPage, maxPerPage); err != nil {
		return f, err
	}
	for k := range q {
		switch k {
		case "state", "server", "page", "per_page":
		default:
			return f, fmt.Errorf("unknown query parameter %q (want state, server, page, per_page)", k)
		}
	}
	return f, nil
}

func (f mappingFilter) match(ms *bridge.MappingStatus) bool {
	if len(f.states) > 0 && !slices.Contains(f.states, ms.State) {
		return false
	}
	return f.server == "" || ms.From == f.server || ms.To == f.server
}

// errNoEngine answers the engine's endpoints when no engine runs.
var errNoEngine = errors.New("no mirror engine runs on this node (an arbiter, or the pair's config has not arrived yet)")

func (a *Admin) listMappings(w http.ResponseWriter, r *http.Request) {
	f, err := parseMappingFilter(r.URL.Query())
	if err != nil {
		a.fail(w, http.StatusBadRequest, err)
		return
	}
	e := a.engine()
	if e == nil {
		a.fail(w, http.StatusServiceUnavailable, errNoEngine)
		return
	}
	if f.server != "" {
		var names []string
		for _, s := range e.Stats().Servers {
			names = append(names, s.Name)
		}
		if !slices.Contains(names, f.server) {
			a.fail(w, http.StatusBadRequest, fmt.Errorf("server %q: not in the config (servers: %s)", f.server, strings.Join(names, ", ")))
			return
		}
	}
	writeJSON(w, http.StatusOK, pageOf(e.Snapshot(), f))
}

// pageOf filters snap and returns the requested page.
func pageOf(snap []bridge.MappingStatus, f mappingFilter) MappingPage {
	p := MappingPage{Page: f.page, PerPage: f.perPage, Items: []MappingItem{}}
	skip := (f.page - 1) * f.perPage
	for i := range snap {
		if !f.match(&snap[i]) {
			continue
		}
		if p.Total >= skip && len(p.Items) < f.perPage {
			p.Items = append(p.Items, itemOf(&snap[i]))
		}
		p.Total++
	}
	p.Pages = (p.Total + f.perPage - 1) / f.perPage
	return p
}

// itemOf converts one flow's status to its JSON form.
func itemOf(ms *bridge.MappingStatus) MappingItem {
	it := MappingItem{ID: ms.ID, Index: ms.Index, Direction: "forward", Reverse: ms.Reverse,
		From: ms.From, To: ms.To, State: ms.State.String(), Reason: ms.Reason,
		SourceStatus: statusName(ms.Status), SourceStatusCode: uint32(ms.Status)}
	if ms.Reverse {
		it.Direction = "reverse"
	}
	if !ms.HeldSince.IsZero() {
		t := ms.HeldSince
		it.HeldSince, it.HeldForS = &t, time.Since(t).Seconds()
	}
	var cut bool
	if ms.Value != nil {
		it.Value, it.Type, cut = jsonVariant(ms.Value)
		it.Truncated = it.Truncated || cut
	}
	if !ms.SourceTS.IsZero() {
		t := ms.SourceTS
		it.SourceTimestamp = &t
	}
	if ms.Written != nil {
		it.Written, it.WrittenType, cut = jsonVariant(ms.Written)
		it.Truncated = it.Truncated || cut
	}
	if !ms.WrittenTS.IsZero() {
		t := ms.WrittenTS
		it.WrittenSourceTimestamp = &t
	}
	return it
}

// TypeName returns the OPC UA name of a variant's type ("Double",
// "Int32[]"); built-in type ids are the ids of their DataType nodes in
// namespace 0 (Part 6, 5.1.2).
func TypeName(v *ua.Variant) string {
	if v == nil {
		return ""
	}
	name := id.Name(uint32(v.Type()))
	if v.Type() == ua.TypeIDNull {
		name = "Null"
	}
	if rv := reflect.ValueOf(v.Value()); rv.Kind() == reflect.Slice && rv.Type() != reflect.TypeFor[[]byte]() {
		name += "[]"
	}
	return name
}

// jsonVariant returns a variant's value in a form encoding/json writes
// faithfully, its type name, and whether it was truncated.
func jsonVariant(v *ua.Variant) (any, string, bool) {
	cut := false
	return jsonValue(v.Value(), &cut), TypeName(v), cut
}

func jsonValue(x any, cut *bool) any {
	switch v := x.(type) {
	case nil:
		return nil
	case bool, int8, uint8, int16, uint16, int32, uint32, int64, uint64:
		return v
	case float32:
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return jsonFloat(f)
		}
		// Shortest form that reads back as the same float32 (0.1, not
		// 0.10000000149011612).
		return json.Number(strconv.FormatFloat(float64(v), 'g', -1, 32))
	case float64:
		return jsonFloat(v)
	case string:
		if len(v) > maxValueString {
			*cut = true
			return v[:maxValueString]
		}
		return v
	case []byte:
		if len(v) > maxValueString {
			*cut = true
			return v[:maxValueString]
		}
		return v // base64
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case ua.StatusCode:
		return fmt.Sprintf("0x%08X %s", uint32(v), v.Error())
	case *ua.LocalizedText:
		if v == nil {
			return nil
		}
		return v.Text
	case *ua.QualifiedName:
		if v == nil {
			return nil
		}
		return fmt.Sprintf("%d:%s", v.NamespaceIndex, v.Name)
	case *ua.NodeID:
		if v == nil {
			return nil
		}
		return v.String()
	case *ua.ExpandedNodeID:
		if v == nil {
			return nil
		}
		return v.String()
	case *ua.GUID:
		if v == nil {
			return nil
		}
		return v.String()
	case *ua.Variant:
		if v == nil {
			return nil
		}
		return jsonValue(v.Value(), cut)
	case *ua.DataValue:
		if v == nil {
			return nil
		}
		return jsonValue(v.Value, cut)
	}
	rv := reflect.ValueOf(x)
	if rv.Kind() == reflect.Slice {
		n := rv.Len()
		if n > maxValueElems {
			*cut = true
			n = maxValueElems
		}
		out := make([]any, n)
		for i := range n {
			out[i] = jsonValue(rv.Index(i).Interface(), cut)
		}
		return out
	}
	s := fmt.Sprint(x)
	if len(s) > maxValueString {
		*cut = true
		s = s[:maxValueString]
	}
	return s
}

// jsonFloat keeps finite floats as numbers and spells the others, which
// JSON cannot hold, as strings.
func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return f
}

// statusName is a status code's symbolic name ("Good",
// "BadNotConnected"; the hex code when the stack does not know it).
func statusName(c ua.StatusCode) string {
	if c == ua.StatusOK {
		return "Good"
	}
	if d, ok := ua.StatusCodes[c]; ok {
		return strings.TrimPrefix(d.Name, "Status")
	}
	return fmt.Sprintf("0x%08X", uint32(c))
}
