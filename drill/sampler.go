package drill

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/mapping"
)

// sample is one value a sampled node delivered.
type sample struct {
	node int
	at   time.Time // server timestamp (the target's own clock), else receive time
	dv   *ua.DataValue
}

// sampler keeps one target server's sampling subscription. run is its
// only goroutine (owned by Run); the samples are read by judge after run
// returned.
type sampler struct {
	plan    targetPlan
	o       Options
	log     *zap.Logger
	samples []sample
	err     error
}

func newSampler(p targetPlan, o Options) *sampler {
	return &sampler{plan: p, o: o, log: o.Logger.With(zap.String("server", p.srv.Name))}
}

// run connects, subscribes and records until ctx ends. It signals
// started once subscribed or failed. It closes its session on return.
func (s *sampler) run(ctx context.Context, started chan<- struct{}) {
	signalled := false
	signal := func() {
		if !signalled {
			signalled = true
			started <- struct{}{} // buffered for every sampler
		}
	}
	defer signal()
	if err := s.sample(ctx, signal); err != nil && ctx.Err() == nil {
		s.err = err
		s.log.Warn("drill: sampling failed", zap.Error(err))
	}
}

func (s *sampler) sample(ctx context.Context, subscribed func()) error {
	srv := s.plan.srv
	if len(srv.Endpoints) == 0 {
		return fmt.Errorf("server %s: no endpoint", srv.Name)
	}
	ep := srv.Endpoints[0]
	to := srv.EffectiveTimeouts()
	cctx, cancel := context.WithTimeout(ctx, to.Connect)
	defer cancel()
	var opts []opcua.Option
	if s.o.ClientOptions != nil {
		o, err := s.o.ClientOptions(cctx, srv, ep)
		if err != nil {
			return fmt.Errorf("server %s: client options: %w", srv.Name, err)
		}
		opts = o
	}
	opts = append(opts, opcua.ApplicationName("uamirror drill"), opcua.AutoReconnect(false),
		opcua.RequestTimeout(to.Request), opcua.DialTimeout(to.Connect))
	cl, err := opcua.NewClient(ep, opts...)
	if err != nil {
		return fmt.Errorf("server %s: %w", srv.Name, err)
	}
	if err := cl.Connect(cctx); err != nil {
		return fmt.Errorf("server %s: connect %s: %w", srv.Name, ep, err)
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = cl.Close(c)
	}()
	ns, err := cl.NamespaceArray(cctx)
	if err != nil {
		return fmt.Errorf("server %s: namespaces: %w", srv.Name, err)
	}
	notes := make(chan *opcua.PublishNotificationData, 256)
	sub, err := cl.Subscribe(cctx, &opcua.SubscriptionParameters{Interval: s.o.PublishingInterval}, notes)
	if err != nil {
		return fmt.Errorf("server %s: subscribe: %w", srv.Name, err)
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = sub.Cancel(c)
	}()
	const batch = 1000
	for lo := 0; lo < len(s.plan.nodes); lo += batch {
		hi := min(lo+batch, len(s.plan.nodes))
		reqs := make([]*ua.MonitoredItemCreateRequest, 0, hi-lo)
		for i := lo; i < hi; i++ {
			n, err := mapping.ParseNodeID(s.plan.nodes[i])
			if err != nil {
				return fmt.Errorf("server %s: %w", srv.Name, err)
			}
			id, err := n.Resolve(ns)
			if err != nil {
				return fmt.Errorf("server %s: %s: %w", srv.Name, s.plan.nodes[i], err)
			}
			r := opcua.NewMonitoredItemCreateRequestWithDefaults(id, ua.AttributeIDValue, uint32(i))
			r.RequestedParameters.SamplingInterval = 0 // as fast as the server can
			r.RequestedParameters.QueueSize = 100
			r.RequestedParameters.DiscardOldest = true
			reqs = append(reqs, r)
		}
		res, err := sub.Monitor(cctx, ua.TimestampsToReturnBoth, reqs...)
		if err != nil {
			return fmt.Errorf("server %s: monitor: %w", srv.Name, err)
		}
		for k, r := range res.Results {
			if r.StatusCode != ua.StatusOK {
				return fmt.Errorf("server %s: monitor %s: %w", srv.Name, s.plan.nodes[lo+k], r.StatusCode)
			}
		}
	}
	subscribed()
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-notes:
			if n.Error != nil {
				return fmt.Errorf("server %s: publish: %w", srv.Name, n.Error)
			}
			dc, ok := n.Value.(*ua.DataChangeNotification)
			if !ok {
				continue
			}
			now := time.Now()
			for _, item := range dc.MonitoredItems {
				if item == nil || item.Value == nil || int(item.ClientHandle) >= len(s.plan.nodes) {
					continue
				}
				at := item.Value.ServerTimestamp
				if at.IsZero() {
					at = now
				}
				s.samples = append(s.samples, sample{node: int(item.ClientHandle), at: at, dv: item.Value})
			}
		}
	}
}

// maxExamples bounds Target.Examples.
const maxExamples = 5

// judge turns the samples into the target's line: the anomalies over
// the whole drill, and the gap (judgeGap).
func (s *sampler) judge(start, sw, switched, end time.Time, maxGap time.Duration) Target {
	t := Target{Server: s.plan.srv.Name, Sampled: len(s.plan.nodes), Values: len(s.samples)}
	if s.err != nil {
		t.Err = s.err.Error()
		return t
	}
	example := func(format string, a ...any) {
		if len(t.Examples) < maxExamples {
			t.Examples = append(t.Examples, fmt.Sprintf(format, a...))
		}
	}
	type seenKey struct {
		v  string
		ts int64
	}
	last := make([]*ua.DataValue, len(s.plan.nodes))
	seen := make([]map[seenKey]bool, len(s.plan.nodes))
	for _, sm := range s.samples {
		node, dv := s.plan.nodes[sm.node], sm.dv
		if dv.Status != ua.StatusOK && uint32(dv.Status)>>30 != 0 {
			t.Bad++
			example("%s: status %v at %s", node, dv.Status, sm.at.Format("15:04:05.000"))
		} else if isDefault(dv.Value) {
			t.Defaults++
			example("%s: default value %v at %s", node, valueOf(dv.Value), sm.at.Format("15:04:05.000"))
		}
		if p := last[sm.node]; p != nil && dv.SourceTimestamp.Before(p.SourceTimestamp) {
			t.Older++
			example("%s: source time %s after %s", node, dv.SourceTimestamp.Format("15:04:05.000000"),
				p.SourceTimestamp.Format("15:04:05.000000"))
		}
		k := seenKey{v: fmt.Sprint(valueOf(dv.Value)), ts: dv.SourceTimestamp.UnixNano()}
		if seen[sm.node] == nil {
			seen[sm.node] = map[seenKey]bool{}
		}
		if seen[sm.node][k] {
			t.Duplicates++
			example("%s: %v (source time %s) delivered again", node, k.v, dv.SourceTimestamp.Format("15:04:05.000000"))
		}
		seen[sm.node][k] = true
		last[sm.node] = dv
	}
	// The gap, on the union of the sampled nodes, by the server's clock.
	times := make([]time.Time, len(s.samples))
	for i, sm := range s.samples {
		times[i] = sm.at
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	t.judgeGap(times, start, sw, switched, end)
	t.Pass = t.Err == "" && t.Anomalies() == 0 && (t.NoChange || t.Gap <= maxGap)
	return t
}

func valueOf(v *ua.Variant) any {
	if v == nil {
		return nil
	}
	return v.Value()
}

// isDefault reports a null value, a numeric zero or an empty string: what
// a target shows when something wrote a default instead of a value.
// Booleans are not judged (false is an ordinary value).
func isDefault(v *ua.Variant) bool {
	switch x := valueOf(v).(type) {
	case nil:
		return true
	case float64:
		return x == 0
	case float32:
		return x == 0
	case int8:
		return x == 0
	case int16:
		return x == 0
	case int32:
		return x == 0
	case int64:
		return x == 0
	case uint8:
		return x == 0
	case uint16:
		return x == 0
	case uint32:
		return x == 0
	case uint64:
		return x == 0
	case string:
		return x == ""
	}
	return false
}

// judgeGap finds the handover's gap in the sorted value times of the
// sampled nodes (values stamped before start are the current values
// delivered on subscribing, not changes).
//
// The old active writes nothing after the switchover answered (switched:
// it stops, waits for its Writes in flight, then hands over), and the new
// one starts writing only after it reconciled, which is after the
// transfer the answer reports. So the old active's last write is the last
// value stamped at or before switched, and the next value is the new
// active's first: the handover's gap is the interval between them. (Were
// the answer delayed past the new active's first write, the drill would
// measure an ordinary interval after it, never a gap that did not
// happen.) Longest is the longest interval anywhere from sw to end, Usual
// the longest during the lead time (the pair's ordinary cadence).
func (t *Target) judgeGap(times []time.Time, start, sw, switched, end time.Time) {
	first := sort.Search(len(times), func(i int) bool { return !times[i].Before(start) })
	for i := first; i+1 < len(times) && times[i+1].Before(sw); i++ {
		t.Usual = max(t.Usual, times[i+1].Sub(times[i]))
	}
	from := sort.Search(len(times), func(i int) bool { return !times[i].Before(sw) })
	if from == len(times) {
		if from == first {
			t.NoChange = true // nothing changed during the drill: static sources
			return
		}
		// Values before the switchover, none after it.
		t.Gap, t.GapFrom, t.GapTo = end.Sub(times[from-1]), times[from-1], end
		t.Longest = t.Gap
		return
	}
	if from > 0 {
		from-- // the last value before the switchover
	}
	for i := from; i+1 < len(times); i++ {
		t.Longest = max(t.Longest, times[i+1].Sub(times[i]))
	}
	last := times[len(times)-1]
	t.Longest = max(t.Longest, end.Sub(last)) // quiet until the end
	old := sort.Search(len(times), func(i int) bool { return times[i].After(switched) }) - 1
	switch {
	case old < 0:
		t.GapFrom, t.GapTo = times[0], times[0] // first value after the answer: no earlier one known
	case old+1 < len(times):
		t.Gap, t.GapFrom, t.GapTo = times[old+1].Sub(times[old]), times[old], times[old+1]
	default:
		t.Gap, t.GapFrom, t.GapTo = end.Sub(times[old]), times[old], end
	}
}
