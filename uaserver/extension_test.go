package uaserver

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/ua"
)

// TestExtension serves computed variables and a method through the
// Extension: read, refused write, monitored item notified by NotifyExtra,
// a namespace-0 value and a Call.
func TestExtension(t *testing.T) {
	var n atomic.Uint32
	ext := &Extension{
		Var: func(name string) (*ua.DataValue, bool) {
			if name != "Counter" {
				return nil, false
			}
			return scalarValue(n.Load(), time.Now()), true
		},
		NS0: func(i uint32) (*ua.DataValue, bool) {
			if i != id.Server_ServerRedundancy_RedundancySupport {
				return nil, false
			}
			return scalarValue(int32(ua.RedundancySupportHot), time.Now()), true
		},
		Call: func(_ context.Context, req *ua.CallMethodRequest) *ua.CallMethodResult {
			if req.MethodID.StringID() != "Add" {
				return nil
			}
			n.Add(1)
			return &ua.CallMethodResult{StatusCode: ua.StatusOK, OutputArguments: []*ua.Variant{ua.MustVariant(n.Load())}}
		},
		ServiceLevelReadOnly: true,
	}
	s := startServer(t, Config{Vars: 2, Extension: ext})
	c := connect(t, s.Endpoint())
	ctx := testCtx(t)
	counter := ua.NewStringNodeID(s.NamespaceIndex(), "Counter")
	rs := ua.NewNumericNodeID(0, id.Server_ServerRedundancy_RedundancySupport)

	got := read(t, c, ua.AttributeIDValue, counter, rs, s.NodeID(0), ua.NewStringNodeID(s.NamespaceIndex(), "Other"))
	if got[0].Value.Value() != uint32(0) || got[1].Value.Value() != int32(3) || got[2].Value == nil ||
		got[3].Status != ua.StatusBadNodeIDUnknown {
		t.Fatalf("read: %v %v %v %v", got[0].Value, got[1].Value, got[2].Value, got[3].Status)
	}
	if dt := read(t, c, ua.AttributeIDDataType, counter)[0]; dt.Value.NodeID().IntID() != id.UInt32 {
		t.Errorf("DataType %v, want UInt32", dt.Value)
	}
	if res := write(t, c, valueWrite(counter, uint32(7), time.Now(), ua.StatusOK),
		valueWrite(ua.NewNumericNodeID(0, id.Server_ServiceLevel), byte(3), time.Now(), ua.StatusOK)); res[0] != ua.StatusBadNotWritable || res[1] != ua.StatusBadNotWritable {
		t.Errorf("writes: %v, want Bad_NotWritable twice", res)
	}

	notes := make(chan *opcua.PublishNotificationData, 8)
	sub, err := c.Subscribe(ctx, &opcua.SubscriptionParameters{Interval: 20 * time.Millisecond}, notes)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Cancel(context.Background()) }()
	if _, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth, opcua.NewMonitoredItemCreateRequestWithDefaults(counter, ua.AttributeIDValue, 1)); err != nil {
		t.Fatal(err)
	}

	res, err := c.Call(ctx, &ua.CallMethodRequest{ObjectID: ua.NewStringNodeID(s.NamespaceIndex(), "Obj"),
		MethodID: ua.NewStringNodeID(s.NamespaceIndex(), "Add")})
	if err != nil || res.StatusCode != ua.StatusOK || res.OutputArguments[0].Value() != uint32(1) {
		t.Fatalf("Call: %v %+v", err, res)
	}
	if res, err := c.Call(ctx, &ua.CallMethodRequest{ObjectID: ua.NewStringNodeID(s.NamespaceIndex(), "Obj"),
		MethodID: ua.NewStringNodeID(s.NamespaceIndex(), "Nope")}); err != nil || res.StatusCode != ua.StatusBadMethodInvalid {
		t.Fatalf("Call of an unknown method: %v %+v", err, res)
	}
	s.NotifyExtra("Counter")
	deadline := time.After(5 * time.Second)
	for {
		select {
		case pn := <-notes:
			if dc, ok := pn.Value.(*ua.DataChangeNotification); ok {
				for _, it := range dc.MonitoredItems {
					if it.Value.Value.Value() == uint32(1) {
						return
					}
				}
			}
		case <-deadline:
			t.Fatal("no notification of Counter = 1")
		}
	}
}
