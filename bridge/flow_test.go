package bridge

import (
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
)

// TestFlowResolvesWithObservedValue: a restarted standby receives the
// active's written values (Observe) and its source's first value before
// its target's type is known; when the type arrives the flow must be ok,
// though the source never changes again — a pending flow keeps the
// standby from READY forever. And the newer of the two values wins.
func TestFlowResolvesWithObservedValue(t *testing.T) {
	for _, tc := range []struct {
		name            string
		observed, first time.Duration // offsets of the two source timestamps
		want            float64
	}{
		{"source value as old as the observed one", 0, 0, 2},
		{"source value newer than the observed one", 0, time.Second, 2},
		{"observed value newer than the source's", time.Second, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &mapping.Mapping{ID: "m1"}
			ms := &mstate{m: m}
			f := &flow{ms: ms, from: &conn{name: "a"}, to: &conn{name: "b"}}
			ms.fwd = f
			e := &Engine{}
			e.tab.Store(&flowTable{byID: map[string]*mstate{"m1": ms}})
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

			e.Observe(FlowState{MappingID: "m1", Value: ua.MustVariant(float64(1)), SourceTS: t0.Add(tc.observed), StatusKnown: true})
			dv := &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueSourceTimestamp,
				Value: ua.MustVariant(float64(2)), SourceTimestamp: t0.Add(tc.first)}
			if out, _, _ := f.accept(dv, time.Now(), nil); out != nil {
				t.Fatalf("a value was queued before the target type is known: %v", out)
			}
			tr, err := e.transformFor(m, false, valueType{id: ua.TypeIDDouble, valueRank: -1})
			if err != nil {
				t.Fatal(err)
			}
			f.targetTyped(tr, valueType{id: ua.TypeIDDouble, valueRank: -1}, nil)
			st := ms.appendStatus(nil)[0]
			state, good := st.State, st.Value
			if state != StateOK {
				t.Errorf("state %v after the target resolved, want ok", state)
			}
			if good == nil || good.Value() != tc.want {
				t.Errorf("last good value %v, want %v", good, tc.want)
			}
		})
	}
}
