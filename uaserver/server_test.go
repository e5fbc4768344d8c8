package uaserver

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
)

// sameValue compares decoded OPC UA values (DateTime by instant).
func sameValue(a, b any) bool {
	if ta, ok := a.(time.Time); ok {
		tb, ok := b.(time.Time)
		return ok && ta.Equal(tb)
	}
	return reflect.DeepEqual(a, b)
}

func TestReadTypesAndAttributes(t *testing.T) {
	s := startServer(t, Config{Vars: len(typeList)})
	c := connect(t, s.Endpoint())

	idx, err := c.FindNamespace(testCtx(t), DefaultNamespaceURI)
	if err != nil || idx != s.NamespaceIndex() {
		t.Fatalf("FindNamespace(%s) = %d, %v; want %d", DefaultNamespaceURI, idx, err, s.NamespaceIndex())
	}
	nodes := make([]*ua.NodeID, len(typeList))
	for i := range nodes {
		nodes[i] = ua.NewStringNodeID(idx, NodeName(i))
	}
	values := read(t, c, ua.AttributeIDValue, nodes...)
	dataTypes := read(t, c, ua.AttributeIDDataType, nodes...)
	ranks := read(t, c, ua.AttributeIDValueRank, nodes...)
	access := read(t, c, ua.AttributeIDAccessLevel, nodes...)
	userAccess := read(t, c, ua.AttributeIDUserAccessLevel, nodes...)
	for i, typ := range Types() {
		vt, _ := lookupType(typ)
		if got := TypeOf(i, Config{}); got != typ {
			t.Errorf("TypeOf(%d) = %s, want %s", i, got, typ)
		}
		dv := values[i]
		if dv.Status != ua.StatusOK || dv.Value == nil {
			t.Errorf("%s (%s): status %v, value %v", nodes[i], typ, dv.Status, dv.Value)
			continue
		}
		if dv.Value.Type() != vt.id || dv.Value.Has(ua.VariantArrayValues) != vt.array {
			t.Errorf("%s: variant type %v array %v, want %s", nodes[i], dv.Value.Type(),
				dv.Value.Has(ua.VariantArrayValues), typ)
		}
		if want := ValueFor(typ, i, 0); !sameValue(dv.Value.Value(), want) {
			t.Errorf("%s: value %#v, want %#v", nodes[i], dv.Value.Value(), want)
		}
		if dv.SourceTimestamp.IsZero() {
			t.Errorf("%s: no source timestamp", nodes[i])
		}
		dt, ok := dataTypes[i].Value.Value().(*ua.NodeID)
		if !ok || dt.Namespace() != 0 || dt.IntID() != uint32(vt.id) {
			t.Errorf("%s: DataType %v, want i=%d", nodes[i], dataTypes[i].Value.Value(), vt.id)
		}
		wantRank := int32(-1)
		if vt.array {
			wantRank = 1
		}
		if r, _ := ranks[i].Value.Value().(int32); r != wantRank {
			t.Errorf("%s: ValueRank %v, want %d", nodes[i], ranks[i].Value.Value(), wantRank)
		}
		for _, a := range []*ua.DataValue{access[i], userAccess[i]} {
			if lvl, _ := a.Value.Value().(byte); lvl != 3 {
				t.Errorf("%s: access level %v, want CurrentRead|CurrentWrite", nodes[i], a.Value.Value())
			}
		}
	}
}

func TestWriteEachType(t *testing.T) {
	s := startServer(t, Config{Vars: len(typeList), JournalMemory: true})
	c := connect(t, s.Endpoint())
	base := time.Date(2024, 1, 2, 3, 4, 5, 123456700, time.UTC)
	var wvs []*ua.WriteValue
	for i, typ := range Types() {
		status := ua.StatusGood
		if i == 3 {
			status = ua.StatusUncertainLastUsableValue
		}
		wvs = append(wvs, valueWrite(s.NodeID(i), ValueFor(typ, i, 77), base.Add(time.Duration(i)*time.Millisecond), status))
	}
	for i, code := range write(t, c, wvs...) {
		if code != ua.StatusOK {
			t.Errorf("write %s (%s): %v", s.NodeID(i), TypeOf(i, Config{}), code)
		}
	}
	nodes := make([]*ua.NodeID, len(typeList))
	for i := range nodes {
		nodes[i] = s.NodeID(i)
	}
	got := read(t, c, ua.AttributeIDValue, nodes...)
	journal := s.Journal()
	if len(journal) != len(typeList) || s.WriteCount() != uint64(len(typeList)) {
		t.Fatalf("journal has %d entries, WriteCount %d; want %d", len(journal), s.WriteCount(), len(typeList))
	}
	for i, typ := range Types() {
		w := wvs[i].Value
		if !sameValue(got[i].Value.Value(), w.Value.Value()) {
			t.Errorf("%s: read %#v, wrote %#v", nodes[i], got[i].Value.Value(), w.Value.Value())
		}
		if !got[i].SourceTimestamp.Equal(w.SourceTimestamp) {
			t.Errorf("%s: source timestamp %v, wrote %v", nodes[i], got[i].SourceTimestamp, w.SourceTimestamp)
		}
		if got[i].Status != w.Status {
			t.Errorf("%s: status %v, wrote %v", nodes[i], got[i].Status, w.Status)
		}
		e := journal[i]
		if e.Node != "nsu="+DefaultNamespaceURI+";s="+NodeName(i) || e.Type != typ || e.Session == "" ||
			!sameValue(e.Value, w.Value.Value()) || !e.SourceTimestamp.Equal(w.SourceTimestamp) || e.Status != w.Status {
			t.Errorf("journal[%d] = %+v", i, e)
		}
	}
}

func TestWriteRejected(t *testing.T) {
	s := startServer(t, Config{Vars: len(typeList), JournalMemory: true})
	c := connect(t, s.Endpoint())
	now := time.Now()
	const vInt32, vDouble, vDoubleArray, vInt32Array = 5, 10, 14, 15
	noValue := &ua.WriteValue{NodeID: s.NodeID(vDouble), AttributeID: ua.AttributeIDValue,
		Value: &ua.DataValue{EncodingMask: ua.DataValueStatusCode, Status: ua.StatusBad}}
	ranged := valueWrite(s.NodeID(vDoubleArray), []float64{1}, now, ua.StatusGood)
	ranged.IndexRange = "1"
	display := valueWrite(s.NodeID(vDouble), 1.5, now, ua.StatusGood)
	display.AttributeID = ua.AttributeIDDisplayName
	for _, tc := range []struct {
		name string
		wv   *ua.WriteValue
		want ua.StatusCode
	}{
		{"Int32 into Double", valueWrite(s.NodeID(vDouble), int32(1), now, ua.StatusGood), ua.StatusBadTypeMismatch},
		{"Float into Double", valueWrite(s.NodeID(vDouble), float32(1), now, ua.StatusGood), ua.StatusBadTypeMismatch},
		{"Int64 into Int32", valueWrite(s.NodeID(vInt32), int64(1), now, ua.StatusGood), ua.StatusBadTypeMismatch},
		{"Double[] into Double", valueWrite(s.NodeID(vDouble), []float64{1}, now, ua.StatusGood), ua.StatusBadTypeMismatch},
		{"Double into Double[]", valueWrite(s.NodeID(vDoubleArray), 1.5, now, ua.StatusGood), ua.StatusBadTypeMismatch},
		{"Int32 into Int32[]", valueWrite(s.NodeID(vInt32Array), int32(1), now, ua.StatusGood), ua.StatusBadTypeMismatch},
		{"status without value", noValue, ua.StatusBadTypeMismatch},
		{"Int32 into ServiceLevel", valueWrite(serviceLevelNode, int32(1), now, ua.StatusGood), ua.StatusBadTypeMismatch},
		{"index range", ranged, ua.StatusBadWriteNotSupported},
		{"DisplayName attribute", display, ua.StatusBadNotWritable},
		{"unknown variable", valueWrite(ua.NewStringNodeID(s.NamespaceIndex(), "v999"), 1.5, now, ua.StatusGood), ua.StatusBadNodeIDUnknown},
		{"unknown namespace", valueWrite(ua.NewStringNodeID(9, "v1"), 1.5, now, ua.StatusGood), ua.StatusBadNodeIDUnknown},
		{"read-only ns0 node", valueWrite(ua.NewNumericNodeID(0, id.Server_ServerStatus_State), int32(0), now, ua.StatusGood), ua.StatusBadNotWritable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Value(vDouble)
			if got := write(t, c, tc.wv)[0]; got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if s.Value(vDouble) != before {
				t.Errorf("a rejected write changed v%d", vDouble)
			}
		})
	}
	if n := len(s.Journal()); n != 0 || s.WriteCount() != 0 {
		t.Errorf("journal has %d entries, WriteCount %d; want none", n, s.WriteCount())
	}
}

// subscribe creates a subscription on c feeding col and monitors nodes
// with client handles 0..len-1.
func subscribe(t testing.TB, c *opcua.Client, col *collector, interval time.Duration, nodes ...*ua.NodeID) (*opcua.Subscription, []uint32) {
	t.Helper()
	ctx := testCtx(t)
	sub, err := c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: interval}, col.ch)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	var ids []uint32
	for start := 0; start < len(nodes); start += 1000 {
		var reqs []*ua.MonitoredItemCreateRequest
		for i := start; i < min(start+1000, len(nodes)); i++ {
			reqs = append(reqs, opcua.NewMonitoredItemCreateRequestWithDefaults(nodes[i], ua.AttributeIDValue, uint32(i)))
		}
		resp, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth, reqs...)
		if err != nil {
			t.Fatalf("Monitor: %v", err)
		}
		for k, r := range resp.Results {
			if r.StatusCode != ua.StatusOK {
				t.Fatalf("Monitor %s: %v", nodes[start+k], r.StatusCode)
			}
			ids = append(ids, r.MonitoredItemID)
		}
	}
	return sub, ids
}

func TestSubscribeReceivesChanges(t *testing.T) {
	col := newCollector(t)
	const vars = 8
	s := startServer(t, Config{Vars: vars, Type: TypeDouble, Rate: 400})
	c := connect(t, s.Endpoint())
	nodes := make([]*ua.NodeID, vars)
	for i := range nodes {
		nodes[i] = s.NodeID(i)
	}
	subscribe(t, c, col, 20*time.Millisecond, nodes...)
	waitFor(t, 10*time.Second, "5 values of every variable", func() bool {
		for i := range vars {
			if len(col.values(uint32(i))) < 5 {
				return false
			}
		}
		return true
	})
	for i := range vars {
		prev := -1.0
		for _, dv := range col.values(uint32(i)) {
			v, ok := dv.Value.Value().(float64)
			n := v - float64(i)*1000 - 0.25
			if !ok || n != math.Trunc(n) || n < 0 || n <= prev || dv.Status != ua.StatusOK || dv.SourceTimestamp.IsZero() {
				t.Fatalf("v%d: unexpected notification %v (%v) after change %v", i, dv.Value.Value(), dv.Status, prev)
			}
			prev = n
		}
	}
	if st := s.Stats(); st.Changes == 0 || st.Notifications == 0 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestSetValueAndStatusNotify(t *testing.T) {
	col := newCollector(t)
	s := startServer(t, Config{Vars: 4, Type: TypeDouble})
	c := connect(t, s.Endpoint())
	subscribe(t, c, col, 20*time.Millisecond, s.NodeID(0), s.NodeID(1))
	waitFor(t, 10*time.Second, "initial values", func() bool { return col.last(0) != nil && col.last(1) != nil })

	ts := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	s.SetValue(1, 42.5, ts)
	waitFor(t, 10*time.Second, "v1 = 42.5", func() bool {
		dv := col.last(1)
		return dv.Value.Value() == 42.5 && dv.SourceTimestamp.Equal(ts)
	})
	s.SetStatus(1, ua.StatusBadNoCommunication)
	waitFor(t, 10*time.Second, "v1 Bad", func() bool { return col.last(1).Status == ua.StatusBadNoCommunication })
	if dv := read(t, c, ua.AttributeIDValue, s.NodeID(1))[0]; dv.Status != ua.StatusBadNoCommunication || dv.Value.Value() != 42.5 {
		t.Errorf("read v1 = %v %v, want 42.5 Bad_NoCommunication", dv.Value.Value(), dv.Status)
	}
	s.SetValue(1, 43.5, time.Time{}) // the status sticks
	waitFor(t, 10*time.Second, "v1 = 43.5", func() bool { return col.last(1).Value.Value() == 43.5 })
	if st := col.last(1).Status; st != ua.StatusBadNoCommunication {
		t.Errorf("status after SetValue = %v, want sticky Bad_NoCommunication", st)
	}
	s.SetStatus(1, ua.StatusGood)
	waitFor(t, 10*time.Second, "v1 Good", func() bool { return col.last(1).Status == ua.StatusOK })
	if got := s.Value(1).Value.Value(); got != 43.5 {
		t.Errorf("Value(1) = %v", got)
	}
}

func TestMonitoringModeAndUnmonitor(t *testing.T) {
	col := newCollector(t)
	s := startServer(t, Config{Vars: 2, Type: TypeDouble})
	c := connect(t, s.Endpoint())
	sub, ids := subscribe(t, c, col, 20*time.Millisecond, s.NodeID(0), s.NodeID(1))
	waitFor(t, 10*time.Second, "initial values", func() bool { return col.last(0) != nil && col.last(1) != nil })
	ctx := testCtx(t)

	res, err := sub.SetMonitoringMode(ctx, ua.MonitoringModeDisabled, ids[1])
	if err != nil || res.Results[0] != ua.StatusOK {
		t.Fatalf("SetMonitoringMode: %v %v", err, res)
	}
	// A change of v1 then of v0: once v0's arrives, v1's would have too.
	s.SetValue(1, 11.0, time.Time{})
	s.SetValue(0, 10.0, time.Time{})
	waitFor(t, 10*time.Second, "v0 = 10", func() bool { return col.last(0).Value.Value() == 10.0 })
	if got := col.last(1).Value.Value(); got == 11.0 {
		t.Fatal("a disabled item reported a change")
	}
	if _, err := sub.SetMonitoringMode(ctx, ua.MonitoringModeReporting, ids[1]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "v1 current value on re-enabling", func() bool { return col.last(1).Value.Value() == 11.0 })

	del, err := sub.Unmonitor(ctx, ids[1])
	if err != nil || del.Results[0] != ua.StatusOK {
		t.Fatalf("Unmonitor: %v %v", err, del)
	}
	n := len(col.values(1))
	s.SetValue(1, 21.0, time.Time{})
	s.SetValue(0, 20.0, time.Time{})
	waitFor(t, 10*time.Second, "v0 = 20", func() bool { return col.last(0).Value.Value() == 20.0 })
	if len(col.values(1)) != n {
		t.Fatal("a deleted item reported a change")
	}
}

func TestServiceLevel(t *testing.T) {
	col := newCollector(t)
	s := startServer(t, Config{Vars: 1, JournalMemory: true})
	c := connect(t, s.Endpoint())
	level := func() byte {
		b, _ := read(t, c, ua.AttributeIDValue, serviceLevelNode)[0].Value.Value().(byte)
		return b
	}
	if got := level(); got != 255 {
		t.Errorf("initial ServiceLevel %d, want 255", got)
	}
	if dt, _ := read(t, c, ua.AttributeIDDataType, serviceLevelNode)[0].Value.Value().(*ua.NodeID); dt == nil || dt.IntID() != id.Byte {
		t.Errorf("ServiceLevel DataType %v, want Byte", dt)
	}
	s.SetServiceLevel(7)
	if got := level(); got != 7 {
		t.Errorf("ServiceLevel after SetServiceLevel(7) = %d", got)
	}
	subscribe(t, c, col, 20*time.Millisecond, serviceLevelNode)
	waitFor(t, 10*time.Second, "ServiceLevel 7 notified", func() bool {
		dv := col.last(0)
		return dv != nil && dv.Value.Value() == byte(7)
	})
	if code := write(t, c, valueWrite(serviceLevelNode, byte(42), time.Now(), ua.StatusGood))[0]; code != ua.StatusOK {
		t.Fatalf("writing ServiceLevel: %v", code)
	}
	if got := level(); got != 42 || s.ServiceLevel() != 42 {
		t.Errorf("ServiceLevel after client write = %d (read), %d (ServiceLevel())", got, s.ServiceLevel())
	}
	waitFor(t, 10*time.Second, "ServiceLevel 42 notified", func() bool { return col.last(0).Value.Value() == byte(42) })
	if j := s.Journal(); len(j) != 1 || j[0].Node != "i=2267" || j[0].Type != TypeByte || j[0].Value != byte(42) {
		t.Errorf("journal %+v", j)
	}
}

func TestBrowse(t *testing.T) {
	s := startServer(t, Config{Vars: 5})
	c := connect(t, s.Endpoint())
	browse := func(n *ua.NodeID, dir ua.BrowseDirection, ref uint32) []*ua.ReferenceDescription {
		t.Helper()
		resp, err := c.Browse(testCtx(t), &ua.BrowseRequest{NodesToBrowse: []*ua.BrowseDescription{{
			NodeID: n, BrowseDirection: dir, ReferenceTypeID: ua.NewNumericNodeID(0, ref),
			IncludeSubtypes: true, ResultMask: uint32(ua.BrowseResultMaskAll),
		}}})
		if err != nil || resp.Results[0].StatusCode != ua.StatusOK {
			t.Fatalf("Browse %s: %v %v", n, err, resp)
		}
		return resp.Results[0].References
	}
	simID := ua.NewStringNodeID(s.NamespaceIndex(), DefaultFolder)
	found := false
	for _, r := range browse(ua.NewNumericNodeID(0, id.ObjectsFolder), ua.BrowseDirectionForward, id.HierarchicalReferences) {
		if r.NodeID.NodeID.Equal(simID) && r.BrowseName.Name == DefaultFolder {
			found = true
		}
	}
	if !found {
		t.Error("Objects does not organize Sim")
	}
	refs := browse(simID, ua.BrowseDirectionForward, id.HierarchicalReferences)
	if len(refs) != 5 {
		t.Fatalf("Sim has %d children, want 5", len(refs))
	}
	for i, r := range refs {
		if !r.NodeID.NodeID.Equal(s.NodeID(i)) || r.NodeClass != ua.NodeClassVariable {
			t.Errorf("child %d: %s %v", i, r.NodeID, r.NodeClass)
		}
	}
	up := browse(s.NodeID(3), ua.BrowseDirectionInverse, id.HierarchicalReferences)
	if len(up) != 1 || !up[0].NodeID.NodeID.Equal(simID) {
		t.Errorf("v3's parent: %v", up)
	}
}

func TestJournalFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	s := startServer(t, Config{Vars: len(typeList), JournalFile: path})
	c := connect(t, s.Endpoint())
	ts := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	results := write(t, c,
		valueWrite(s.NodeID(10), math.NaN(), ts, ua.StatusGood),
		valueWrite(s.NodeID(11), "hello", ts, ua.StatusUncertain),
		valueWrite(s.NodeID(10), int32(1), ts, ua.StatusGood), // rejected: not journaled
	)
	if results[0] != ua.StatusOK || results[1] != ua.StatusOK || results[2] != ua.StatusBadTypeMismatch {
		t.Fatalf("write results %v", results)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("%d journal lines, want 2: %v", len(lines), lines)
	}
	want := []map[string]any{
		{"node": "nsu=" + DefaultNamespaceURI + ";s=v10", "value": "NaN", "type": "Double", "status": 0.0},
		{"node": "nsu=" + DefaultNamespaceURI + ";s=v11", "value": "hello", "type": "String", "status": float64(ua.StatusUncertain)},
	}
	for k, l := range lines {
		for key, v := range want[k] {
			if l[key] != v {
				t.Errorf("line %d: %s = %v, want %v", k, key, l[key], v)
			}
		}
		if l["session"] == "" || l["source_timestamp"] != ts.Format(time.RFC3339Nano) {
			t.Errorf("line %d: %v", k, l)
		}
		if _, err := time.Parse(time.RFC3339Nano, l["time"].(string)); err != nil {
			t.Errorf("line %d: time: %v", k, err)
		}
	}
}

func TestCloseClosesClientSockets(t *testing.T) {
	s := startServer(t, Config{Vars: 4})
	c := connect(t, s.Endpoint())
	// A raw TCP peer shows what the socket does, whatever the client
	// library makes of it.
	raw, err := net.Dial("tcp", strings.TrimPrefix(s.Endpoint(), "opc.tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	read(t, c, ua.AttributeIDValue, s.NodeID(0)) // connected and served

	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = raw.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("raw socket after Close: read error %v, want EOF or reset", err)
	}
	if !errors.Is(err, io.EOF) {
		t.Logf("raw socket read error: %v", err)
	}
	readStart := time.Now()
	_, err = c.Read(testCtx(t), &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: s.NodeID(0), AttributeID: ua.AttributeIDValue}}})
	if err == nil {
		t.Error("client read succeeded after Close")
	}
	if d := time.Since(readStart); d > 3*time.Second {
		t.Errorf("client read failed only after %v (%v): its socket stayed open", d, err)
	} else {
		t.Logf("client read after Close failed after %v: %v", d, err)
	}
}

func TestDropConnections(t *testing.T) {
	s := startServer(t, Config{Vars: 4})
	c := connect(t, s.Endpoint())
	read(t, c, ua.AttributeIDValue, s.NodeID(0))
	if n := s.DropConnections(); n != 1 {
		t.Errorf("DropConnections = %d, want 1", n)
	}
	start := time.Now()
	if _, err := c.Read(testCtx(t), &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: s.NodeID(0), AttributeID: ua.AttributeIDValue}}}); err == nil {
		t.Error("read succeeded on a dropped connection")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("read on a dropped connection failed after %v", d)
	}
	c2 := connect(t, s.Endpoint())
	read(t, c2, ua.AttributeIDValue, s.NodeID(0))
}

// liveSubscriptions counts the server's real subscriptions.
func liveSubscriptions(s *Server) int {
	ss := s.gs.SubscriptionService
	ss.Mu.Lock()
	defer ss.Mu.Unlock()
	n := 0
	for _, sub := range ss.Subs {
		if sub.Session != nil {
			n++
		}
	}
	return n
}

func TestSubscriptionIDsStayUnique(t *testing.T) {
	colA, colB := newCollector(t), newCollector(t)
	s := startServer(t, Config{Vars: 2, Type: TypeDouble})
	a, b := connect(t, s.Endpoint()), connect(t, s.Endpoint())
	ctx := testCtx(t)

	a1, _ := subscribe(t, a, colA, 20*time.Millisecond, s.NodeID(0))
	bSub, _ := subscribe(t, b, colB, 20*time.Millisecond, s.NodeID(1))
	if err := a1.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	// gopcua alone would hand out len(subscriptions)+1 = B's id again.
	a2, _ := subscribe(t, a, colA, 20*time.Millisecond, s.NodeID(0))
	if a2.SubscriptionID == bSub.SubscriptionID {
		t.Fatalf("new subscription got id %d, which B's live subscription has", a2.SubscriptionID)
	}
	if err := a2.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	s.SetValue(1, 99.5, time.Time{})
	waitFor(t, 10*time.Second, "B still notified", func() bool {
		dv := colB.last(0)
		return dv != nil && dv.Value.Value() == 99.5
	})
	if n := liveSubscriptions(s); n != 1 {
		t.Errorf("%d live subscriptions, want B's only", n)
	}
}

// TestSubscriberVanishesUnderLoad cuts subscribers while values change
// fast. With gopcua's ChangeNotification this deadlocks the server in
// about one run in four (see notify.go).
func TestSubscriberVanishesUnderLoad(t *testing.T) {
	const vars = 1000
	s := startServer(t, Config{Vars: vars, Type: TypeDouble, Rate: 20000})
	nodes := make([]*ua.NodeID, vars)
	for i := range nodes {
		nodes[i] = s.NodeID(i)
	}
	for round := range 3 {
		col := newCollector(t)
		c := connect(t, s.Endpoint())
		ctx := testCtx(t)
		// A lifetime of 3 s: short enough that the cut subscription ends
		// soon, long enough that a starved host's Publish requests (queued
		// behind the 1,000-item CreateMonitoredItems) keep it alive first.
		sub, err := c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 20 * time.Millisecond,
			LifetimeCount: 150, MaxKeepAliveCount: 10}, col.ch)
		if err != nil {
			t.Fatal(err)
		}
		var reqs []*ua.MonitoredItemCreateRequest
		for i, n := range nodes {
			reqs = append(reqs, opcua.NewMonitoredItemCreateRequestWithDefaults(n, ua.AttributeIDValue, uint32(i)))
		}
		if _, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth, reqs...); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "notifications flowing", func() bool { return col.count() > 2*vars })
		s.DropConnections()
		waitFor(t, 20*time.Second, "the cut subscription to end", func() bool { return liveSubscriptions(s) == 0 })
		before := s.Stats().Changes
		waitFor(t, 10*time.Second, "changes to continue", func() bool { return s.Stats().Changes > before+1000 })
		t.Logf("round %d: %+v", round, s.Stats())
	}
	// Still serving subscriptions.
	col := newCollector(t)
	c := connect(t, s.Endpoint())
	subscribe(t, c, col, 20*time.Millisecond, nodes[:10]...)
	waitFor(t, 10*time.Second, "a new subscriber's values", func() bool { return col.count() >= 10 })
}
