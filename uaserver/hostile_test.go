package uaserver

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uasc"
)

// send sends a raw request and returns the response or the error (a
// service fault arrives as the fault's status code).
func send[T ua.Response](t *testing.T, c *opcua.Client, req ua.Request) (T, error) {
	t.Helper()
	var resp T
	err := c.Send(testCtx(t), req, func(r ua.Response) error {
		v, ok := r.(T)
		if !ok {
			return errors.New("unexpected response type")
		}
		resp = v
		return nil
	})
	return resp, err
}

// TestHostileRequests sends the requests that crash a bare gopcua v0.9.0
// server (measured: nil dereference in DeleteMonitoredItems and
// SetMonitoringMode, "non-positive interval for NewTicker" in the publish
// loop) and others that its handlers answer wrongly. Each uses a fresh
// client because gopcua's client tears its channel down on a service
// fault.
func TestHostileRequests(t *testing.T) {
	s := startServer(t, Config{Vars: 4, Type: TypeDouble})
	healthy := func(t *testing.T) {
		t.Helper()
		c := connect(t, s.Endpoint())
		read(t, c, ua.AttributeIDValue, s.NodeID(0))
	}
	// withItem returns a client with a subscription monitoring v0.
	withItem := func(t *testing.T) (*opcua.Client, *opcua.Subscription, uint32) {
		col := newCollector(t)
		c := connect(t, s.Endpoint())
		sub, ids := subscribe(t, c, col, 20*time.Millisecond, s.NodeID(0))
		return c, sub, ids[0]
	}

	t.Run("DeleteMonitoredItems unknown id", func(t *testing.T) {
		c, sub, itemID := withItem(t)
		resp, err := send[*ua.DeleteMonitoredItemsResponse](t, c, &ua.DeleteMonitoredItemsRequest{
			SubscriptionID: sub.SubscriptionID, MonitoredItemIDs: []uint32{4711, itemID}})
		if err != nil {
			t.Fatal(err)
		}
		if want := []ua.StatusCode{ua.StatusBadMonitoredItemIDInvalid, ua.StatusOK}; !equalCodes(resp.Results, want) {
			t.Errorf("results %v, want %v", resp.Results, want)
		}
		healthy(t)
	})
	t.Run("SetMonitoringMode unknown id", func(t *testing.T) {
		c, sub, itemID := withItem(t)
		resp, err := send[*ua.SetMonitoringModeResponse](t, c, &ua.SetMonitoringModeRequest{
			SubscriptionID: sub.SubscriptionID, MonitoringMode: ua.MonitoringModeReporting,
			MonitoredItemIDs: []uint32{4711, itemID}})
		if err != nil {
			t.Fatal(err)
		}
		if want := []ua.StatusCode{ua.StatusBadMonitoredItemIDInvalid, ua.StatusOK}; !equalCodes(resp.Results, want) {
			t.Errorf("results %v, want %v", resp.Results, want)
		}
		healthy(t)
	})
	t.Run("item services on unknown subscription", func(t *testing.T) {
		for _, req := range []ua.Request{
			&ua.DeleteMonitoredItemsRequest{SubscriptionID: 999, MonitoredItemIDs: []uint32{1}},
			&ua.SetMonitoringModeRequest{SubscriptionID: 999, MonitoredItemIDs: []uint32{1}},
			&ua.CreateMonitoredItemsRequest{SubscriptionID: 999, ItemsToCreate: []*ua.MonitoredItemCreateRequest{
				opcua.NewMonitoredItemCreateRequestWithDefaults(s.NodeID(0), ua.AttributeIDValue, 1)}},
		} {
			c := connect(t, s.Endpoint())
			_, err := send[ua.Response](t, c, req)
			if !errors.Is(err, ua.StatusBadSubscriptionIDInvalid) {
				t.Errorf("%T: error %v, want Bad_SubscriptionIdInvalid", req, err)
			}
		}
		healthy(t)
	})
	t.Run("DeleteSubscriptions unknown id", func(t *testing.T) {
		c := connect(t, s.Endpoint())
		resp, err := send[*ua.DeleteSubscriptionsResponse](t, c, &ua.DeleteSubscriptionsRequest{SubscriptionIDs: []uint32{999}})
		if err != nil || !equalCodes(resp.Results, []ua.StatusCode{ua.StatusBadSubscriptionIDInvalid}) {
			t.Errorf("got %v, %v", resp, err)
		}
		healthy(t)
	})
	t.Run("CreateMonitoredItems bad items", func(t *testing.T) {
		c, sub, _ := withItem(t)
		resp, err := sub.Monitor(testCtx(t), ua.TimestampsToReturnBoth,
			opcua.NewMonitoredItemCreateRequestWithDefaults(ua.NewStringNodeID(s.NamespaceIndex(), "nope"), ua.AttributeIDValue, 7),
			opcua.NewMonitoredItemCreateRequestWithDefaults(s.NodeID(1), ua.AttributeIDEventNotifier, 8),
			opcua.NewMonitoredItemCreateRequestWithDefaults(s.NodeID(1), ua.AttributeIDInverseName, 9),
			opcua.NewMonitoredItemCreateRequestWithDefaults(s.NodeID(1), ua.AttributeIDValue, 10),
		)
		if err != nil {
			t.Fatal(err)
		}
		want := []ua.StatusCode{ua.StatusBadNodeIDUnknown, ua.StatusBadMonitoredItemFilterUnsupported,
			ua.StatusBadAttributeIDInvalid, ua.StatusOK}
		for k, r := range resp.Results {
			if r.StatusCode != want[k] {
				t.Errorf("item %d: %v, want %v", k, r.StatusCode, want[k])
			}
		}
		_ = c
		healthy(t)
	})
	t.Run("CreateSubscription interval 0.1 ms", func(t *testing.T) {
		for _, interval := range []float64{0.1, 0, -5, math.NaN(), math.Inf(1), 1e300} {
			c := connect(t, s.Endpoint())
			resp, err := send[*ua.CreateSubscriptionResponse](t, c, &ua.CreateSubscriptionRequest{
				RequestedPublishingInterval: interval, RequestedLifetimeCount: 100,
				RequestedMaxKeepAliveCount: 10, PublishingEnabled: true})
			if err != nil {
				t.Fatalf("interval %v: %v", interval, err)
			}
			if r := resp.RevisedPublishingInterval; r < minPublishingInterval || r > maxPublishingInterval {
				t.Errorf("interval %v revised to %v", interval, r)
			}
			// The publish loop starts at once; a panic there would end
			// the test binary here.
			healthy(t)
		}
	})
	t.Run("subscription with 100 µs interval delivers", func(t *testing.T) {
		col := newCollector(t)
		c := connect(t, s.Endpoint())
		sub, err := c.Subscribe(testCtx(t), &opcua.SubscriptionParameters{Interval: 100 * time.Microsecond}, col.ch)
		if err != nil {
			t.Fatal(err)
		}
		if sub.RevisedPublishingInterval != time.Duration(minPublishingInterval)*time.Millisecond {
			t.Errorf("revised interval %v", sub.RevisedPublishingInterval)
		}
		if _, err := sub.Monitor(testCtx(t), ua.TimestampsToReturnBoth,
			opcua.NewMonitoredItemCreateRequestWithDefaults(s.NodeID(2), ua.AttributeIDValue, 1)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "initial value", func() bool { return col.last(1) != nil })
	})
}

func equalCodes(a, b []ua.StatusCode) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestGuardRecoversPanics(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := s.guard("Boom", func(*uasc.SecureChannel, ua.Request, uint32) (ua.Response, error) {
		panic("boom")
	})
	req := &ua.ReadRequest{RequestHeader: &ua.RequestHeader{RequestHandle: 42}}
	resp, err := h(nil, req, 1)
	f, ok := resp.(*ua.ServiceFault)
	if err != nil || !ok || f.ResponseHeader.ServiceResult != ua.StatusBadInternalError || f.ResponseHeader.RequestHandle != 42 {
		t.Errorf("got %#v, %v; want a Bad_InternalError fault for handle 42", resp, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
