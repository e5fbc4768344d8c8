package bridge_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/simserver"
	"github.com/uamirror/uamirror/test/harness"
)

// liveRig is an engine mirroring a → b with the simservers' journals, for
// live config changes.
type liveRig struct {
	t    *testing.T
	a, b *simserver.Server
	e    *bridge.Engine
	n    int // variables per server
	mark int // journal length of b at the last step
}

// liveConfig mirrors the first n variables; mappings 1–3 are in group g.
func (r *liveRig) config(n int, mod func(c *mapping.Config)) *mapping.Config {
	cfg := pairConfig(r.t, r.a.Endpoint(), r.b.Endpoint(), n, nil)
	cfg.Groups = []mapping.Group{{Name: "g", PublishingInterval: 50 * time.Millisecond}}
	for i := 1; i <= 3 && i < n; i++ {
		cfg.Mappings[i].Group = "g"
	}
	if mod != nil {
		mod(cfg)
	}
	if err := cfg.Validate(); err != nil {
		r.t.Fatal(err)
	}
	return cfg
}

func (r *liveRig) apply(cfg *mapping.Config) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(harness.Context(r.t), 20*time.Second)
	defer cancel()
	if err := r.e.ApplyLive(ctx, cfg); err != nil {
		r.t.Fatalf("ApplyLive: %v", err)
	}
}

// step checks that since the last step b was written only on the nodes
// of the variables in allowed, and starts the next step.
func (r *liveRig) step(what string, allowed ...int) {
	r.t.Helper()
	ok := map[string]bool{}
	for _, i := range allowed {
		ok[node(i)] = true
	}
	j := r.b.Journal()
	for _, w := range j[r.mark:] {
		if !ok[w.Node] {
			r.t.Fatalf("%s: untouched target %s written (%v)", what, w.Node, w.Value)
		}
	}
	r.mark = len(j)
}

func (r *liveRig) server(name string) bridge.ServerStats {
	for _, s := range r.e.Stats().Servers {
		if s.Name == name {
			return s
		}
	}
	r.t.Fatalf("no server %s", name)
	return bridge.ServerStats{}
}

// idle waits until the writer of server name has nothing queued or in
// flight: a value lands on the server before its Write's answer is
// settled, and a Write whose answer a session change cut off is sent
// again.
func (r *liveRig) idle(name string) {
	r.t.Helper()
	harness.Eventually(r.t, 10*time.Second, "writer of "+name+" idle", func() bool {
		st := r.server(name)
		return st.InFlight == 0 && st.Pending == 0
	})
}

// mirrored changes source i to v and waits until target i holds want.
func (r *liveRig) mirrored(i int, v, want float64) {
	r.t.Helper()
	r.a.SetValue(i, v, time.Now())
	harness.Eventually(r.t, 10*time.Second, "target mirrored", func() bool { return valueOf(r.b, i) == want })
}

// TestApplyLive: mappings added, removed and changed (scaling, a group's
// publishing interval) on a running engine take effect while the
// untouched mappings' targets are not written and neither server's
// session is rebuilt.
func TestApplyLive(t *testing.T) {
	const n = 20
	r := &liveRig{t: t, n: n}
	r.a, r.b = startSim(t, n+2, "Double"), startSim(t, n+2, "Double")
	for i := 0; i < n+2; i++ {
		r.a.SetValue(i, float64(i)+0.5, time.Now())
	}
	cfg := r.config(n, nil)
	r.e = runEngine(t, cfg, nil)
	waitConnected(t, r.e, n)
	harness.Eventually(t, 10*time.Second, "targets equal sources", func() bool {
		for i := 0; i < n; i++ {
			if valueOf(r.b, i) != float64(i)+0.5 {
				return false
			}
		}
		return true
	})
	// A target can be written twice at the start (the gate's reconcile
	// and the first notification queue the same value): the start ends
	// when b's writer has nothing left.
	r.idle("b")
	r.step("start", func() []int {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return all
	}()...)
	before := map[string]bridge.ServerStats{"a": r.server("a"), "b": r.server("b")}

	// +1 mapping.
	cfg = r.config(n+1, nil)
	r.apply(cfg)
	harness.Eventually(t, 10*time.Second, "the added mapping mirrored", func() bool { return valueOf(r.b, n) == float64(n)+0.5 })
	r.mirrored(n, 42, 42)
	r.step("+1 mapping", n)

	// One mapping's scaling.
	cfg = r.config(n+1, func(c *mapping.Config) {
		c.Mappings[0].Scaling = &mapping.Scaling{RawLow: 0, RawHigh: 100, EngLow: 0, EngHigh: 200, OutOfRange: mapping.Clamp}
	})
	r.apply(cfg)
	harness.Eventually(t, 10*time.Second, "the new scaling applied", func() bool { return valueOf(r.b, 0) == 1.0 })
	r.mirrored(0, 10, 20)
	r.step("scaling of one", 0)

	// One group's publishing interval: its mappings are subscribed anew
	// and their targets, which hold the value, are not written.
	scaled := cfg.Mappings[0].Scaling
	cfg = r.config(n+1, func(c *mapping.Config) {
		c.Mappings[0].Scaling = scaled
		c.Groups[0].PublishingInterval = 200 * time.Millisecond
	})
	r.apply(cfg)
	r.mirrored(2, 77, 77)
	r.step("publishing interval of one group", 2)

	// −1 mapping: its item is deleted (no notification of it arrives)
	// and its target is no longer written.
	cfg = r.config(n, func(c *mapping.Config) {
		c.Mappings[0].Scaling = scaled
		c.Groups[0].PublishingInterval = 200 * time.Millisecond
	})
	r.apply(cfg)
	notes := r.server("a").Notifications
	r.a.SetValue(n, 99.0, time.Now())
	r.mirrored(5, 55, 55)
	if got := r.server("a").Notifications - notes; got != 1 {
		t.Fatalf("after −1 mapping: %d notifications for one change of a mapped source and one of the removed one's, want 1", got)
	}
	if v := valueOf(r.b, n); v != 42.0 {
		t.Fatalf("the removed mapping's target was written: %v", v)
	}
	r.step("-1 mapping", 5)

	// The group back on the engine's interval: the subscription of
	// 200 ms it had alone is emptied and deleted; the group's mappings
	// share the engine's again.
	if got := r.server("a").Subscriptions; got != 2 {
		t.Fatalf("%d subscriptions on a with the group on its own interval, want 2", got)
	}
	cfg = r.config(n, func(c *mapping.Config) { c.Mappings[0].Scaling = scaled })
	r.apply(cfg)
	if got := r.server("a").Subscriptions; got != 1 {
		t.Fatalf("%d subscriptions on a after the group's interval went back to the engine's, want 1 (the emptied one deleted)", got)
	}
	r.mirrored(3, 33, 33)
	r.step("publishing interval back", 3)

	for name, was := range before {
		now := r.server(name)
		if now.Connects != was.Connects || now.Reconnects != was.Reconnects {
			t.Fatalf("server %s: session rebuilt during the applies (connects %d→%d, reconnects %d→%d)",
				name, was.Connects, now.Connects, was.Reconnects, now.Reconnects)
		}
	}
	if got := len(r.e.Snapshot()); got != n {
		t.Fatalf("%d flows after the applies, want %d", got, n)
	}
}

// TestApplyLiveUnderFlow: live changes in quick succession while sources
// change (run it with -race): mappings added, changed, removed and added
// again; afterwards every mapping runs (state ok), the static targets
// hold their sources' values, the removed one's target is not written
// after its removal and both sessions are the ones of the start.
func TestApplyLiveUnderFlow(t *testing.T) {
	const vars, changing = 30, 10
	start := func() *simserver.Server {
		s, err := simserver.New(simserver.Config{Vars: vars, Type: "Double", Rate: 400, Changing: changing,
			Logger: zap.NewNop(), JournalMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(harness.Context(t)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	r := &liveRig{t: t}
	r.a, r.b = start(), startSim(t, vars, "Double")
	for i := changing; i < vars; i++ {
		r.a.SetValue(i, float64(i)+0.5, time.Now())
	}
	// mapped lists the variables mapped; scaled the one with a scaling.
	cfgOf := func(mapped []int, scaled int, iv time.Duration) *mapping.Config {
		cfg := r.config(0, nil)
		for _, i := range mapped {
			m := mapping.Mapping{Source: mapping.NodeRef{Server: "a", Node: node(i)}, Target: mapping.NodeRef{Server: "b", Node: node(i)}}
			m.ID = mapping.DeriveID(m.Source, m.Target)
			if i == scaled {
				m.Scaling = &mapping.Scaling{RawLow: 0, RawHigh: 100, EngLow: 0, EngHigh: 200}
			}
			if i%4 == 0 {
				m.Group = "g"
			}
			cfg.Mappings = append(cfg.Mappings, m)
		}
		cfg.Groups[0].PublishingInterval = iv
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	span := func(from, to int, skip ...int) []int {
		var out []int
	next:
		for i := from; i < to; i++ {
			for _, s := range skip {
				if i == s {
					continue next
				}
			}
			out = append(out, i)
		}
		return out
	}
	r.e = runEngine(t, cfgOf(span(0, 20), -1, 50*time.Millisecond), nil)
	waitConnected(t, r.e, 20)
	before := map[string]bridge.ServerStats{"a": r.server("a"), "b": r.server("b")}

	steps := []*mapping.Config{
		cfgOf(span(0, 25), -1, 50*time.Millisecond),                  // +5
		cfgOf(span(0, 25), 3, 50*time.Millisecond),                   // scaling of a changing one
		cfgOf(span(0, 25, 5, 15), 3, 50*time.Millisecond),            // −2
		cfgOf(span(0, 25, 15), 3, 200*time.Millisecond),              // 5 back, the group's interval
		cfgOf(span(0, 25, 15), -1, 200*time.Millisecond),             // scaling gone
		cfgOf(append(span(0, 25, 15), 27), -1, 100*time.Millisecond), // +1, interval again
	}
	var removedAt time.Time
	for k, cfg := range steps {
		r.apply(cfg)
		if k == 2 {
			removedAt = time.Now()
		}
	}
	want := len(steps[len(steps)-1].Mappings)
	waitConnected(t, r.e, want)
	harness.Eventually(t, 10*time.Second, "static targets equal their sources", func() bool {
		for _, i := range append(span(changing, 25, 15), 27) {
			if valueOf(r.b, i) != valueOf(r.a, i) {
				return false
			}
		}
		return true
	})
	r.a.SetValue(15, 999.0, time.Now())
	r.mirrored(20, 777, 777)
	for _, w := range r.b.Journal() {
		if w.Node == node(15) && w.Time.After(removedAt) {
			t.Fatalf("the removed mapping's target was written after its removal: %v", w.Value)
		}
	}
	for name, was := range before {
		if now := r.server(name); now.Connects != was.Connects || now.Reconnects != was.Reconnects {
			t.Fatalf("server %s: session rebuilt during the applies", name)
		}
	}
	if got := len(r.e.Snapshot()); got != want {
		t.Fatalf("%d flows, want %d", got, want)
	}
}

// TestApplyLiveServerEntry: a changed server entry rebuilds that
// server's session only. b's endpoint moves to another server: the
// mappings a → b are written there through one new session (reconciled:
// b2 did not hold the values) and follow their sources; a's and c's
// sessions are the ones of the start and c is not written; the old b is
// not written after the move. Then only b's timeouts change: its session
// is rebuilt again and, its targets holding their values, nothing is
// written.
func TestApplyLiveServerEntry(t *testing.T) {
	const n = 10 // v0–v4: a → b, v5–v9: a → c
	a, b, b2, c := startSim(t, n, "Double"), startSim(t, n, "Double"), startSim(t, n, "Double"), startSim(t, n, "Double")
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(i)+0.5, time.Now())
	}
	cfgFor := func(bEndpoint string, bRequest time.Duration) *mapping.Config {
		cfg := pairConfig(t, a.Endpoint(), bEndpoint, n/2, nil)
		cfg.Servers[1].Timeouts.Request = bRequest
		cfg.Servers = append(cfg.Servers, mapping.Server{Name: "c", Endpoints: []string{c.Endpoint()}, Timeouts: fastTimeouts()})
		for i := n / 2; i < n; i++ {
			m := mapping.Mapping{Source: mapping.NodeRef{Server: "a", Node: node(i)}, Target: mapping.NodeRef{Server: "c", Node: node(i)}}
			m.ID = mapping.DeriveID(m.Source, m.Target)
			cfg.Mappings = append(cfg.Mappings, m)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	r := &liveRig{t: t, a: a, b: b}
	r.e = runEngine(t, cfgFor(b.Endpoint(), time.Second), nil)
	waitConnected(t, r.e, n)
	mirroredOn := func(s *simserver.Server, from, to int) func() bool {
		return func() bool {
			for i := from; i < to; i++ {
				if valueOf(s, i) != valueOf(a, i) {
					return false
				}
			}
			return true
		}
	}
	harness.Eventually(t, 10*time.Second, "targets equal sources", func() bool { return mirroredOn(b, 0, n/2)() && mirroredOn(c, n/2, n)() })
	r.idle("b")
	r.idle("c")
	before := map[string]bridge.ServerStats{"a": r.server("a"), "b": r.server("b"), "c": r.server("c")}
	cMark := len(c.Journal())

	// b's endpoint moves to b2.
	r.apply(cfgFor(b2.Endpoint(), time.Second))
	harness.Eventually(t, 10*time.Second, "b's mappings reconciled on b2", mirroredOn(b2, 0, n/2))
	moved := time.Now()
	a.SetValue(1, 111.0, time.Now())
	harness.Eventually(t, 10*time.Second, "a change mirrored to b2", func() bool { return valueOf(b2, 1) == 111.0 })
	if st := r.server("b"); st.Endpoint != b2.Endpoint() || st.Connects != before["b"].Connects+1 {
		t.Fatalf("b: endpoint %s, connects %d→%d; want %s and one new session", st.Endpoint, before["b"].Connects, st.Connects, b2.Endpoint())
	}
	sessions := map[string]bool{}
	for _, w := range b2.Journal() {
		sessions[w.Session] = true
	}
	if len(sessions) != 1 {
		t.Fatalf("b2 written by %d sessions, want 1", len(sessions))
	}
	for _, w := range b.Journal() {
		if w.Time.After(moved) {
			t.Fatalf("the old b written after the move: %s = %v", w.Node, w.Value)
		}
	}

	// Only b's timeouts change: its session is rebuilt, its targets hold
	// their values and are not written.
	r.idle("b")
	b2Mark := len(b2.Journal())
	r.apply(cfgFor(b2.Endpoint(), 2*time.Second))
	harness.Eventually(t, 10*time.Second, "b's session rebuilt", func() bool {
		st := r.server("b")
		return st.Connects == before["b"].Connects+2 && st.State == bridge.Connected
	})
	a.SetValue(2, 222.0, time.Now())
	harness.Eventually(t, 10*time.Second, "a change mirrored to b2", func() bool { return valueOf(b2, 2) == 222.0 })
	for _, w := range b2.Journal()[b2Mark:] {
		if w.Node != node(2) {
			t.Fatalf("b's timeouts changed: target %s, which held its value, written (%v)", w.Node, w.Value)
		}
	}

	a.SetValue(7, 777.0, time.Now())
	harness.Eventually(t, 10*time.Second, "a change mirrored to c", func() bool { return valueOf(c, 7) == 777.0 })
	for _, w := range c.Journal()[cMark:] {
		if w.Node != node(7) {
			t.Fatalf("c written while b changed: %s = %v", w.Node, w.Value)
		}
	}
	for _, name := range []string{"a", "c"} {
		was, now := before[name], r.server(name)
		if now.Connects != was.Connects || now.Reconnects != was.Reconnects {
			t.Fatalf("server %s: session rebuilt while b changed (connects %d→%d, reconnects %d→%d)",
				name, was.Connects, now.Connects, was.Reconnects, now.Reconnects)
		}
	}
}

// TestApplyLiveWriterLimits: the engine's write_batch changed live is
// used from the next Write request: ten values changed at once go in
// one request (or a few) before, one per request after.
func TestApplyLiveWriterLimits(t *testing.T) {
	const n = 10
	r := &liveRig{t: t, n: n}
	r.a, r.b = startSim(t, n, "Double"), startSim(t, n, "Double")
	cfg := r.config(n, func(c *mapping.Config) {
		c.Groups = nil
		c.Mappings[1].Group, c.Mappings[2].Group, c.Mappings[3].Group = "", "", ""
	})
	r.e = runEngine(t, cfg, nil)
	waitConnected(t, r.e, n)
	burst := func(v float64) (requests, writes uint64) {
		t.Helper()
		was := r.server("b")
		now := time.Now()
		for i := 0; i < n; i++ {
			r.a.SetValue(i, v+float64(i), now)
		}
		harness.Eventually(t, 10*time.Second, "the burst mirrored", func() bool {
			for i := 0; i < n; i++ {
				if valueOf(r.b, i) != v+float64(i) {
					return false
				}
			}
			return true
		})
		// A value lands before its Write's answer is counted: wait for
		// the writer to settle.
		var st bridge.ServerStats
		harness.Eventually(t, 10*time.Second, "the burst's Writes settled", func() bool {
			st = r.server("b")
			return st.InFlight == 0 && st.Pending == 0 && st.Writes-was.Writes >= n
		})
		return st.WriteRequests - was.WriteRequests, st.Writes - was.Writes
	}
	if req, w := burst(100); w != n || req >= n {
		t.Fatalf("before: %d values in %d Write requests; want %d in fewer requests", w, req, n)
	}
	r.apply(r.config(n, func(c *mapping.Config) {
		c.Groups = nil
		c.Mappings[1].Group, c.Mappings[2].Group, c.Mappings[3].Group = "", "", ""
		c.Engine.WriteBatch, c.Engine.WritesInFlight = 1, 2
	}))
	if req, w := burst(200); w != n || req != n {
		t.Fatalf("write_batch 1 applied live: %d values in %d Write requests; want one per request", w, req)
	}
	if st := r.server("b"); st.Connects != 1 || st.Reconnects != 0 {
		t.Fatalf("b's session rebuilt by the writer limits (connects %d, reconnects %d)", st.Connects, st.Reconnects)
	}
}

// TestApplyLiveServerEntryWriteInFlight: b's entry changes while a Write
// to b hangs on a stalled link (request timeout 30 s, the session's loop
// inside a keep-alive Read on it): the old session's socket is reset at
// once (RST, as the write fence does; not after the request timeout), and
// the value goes to b's new endpoint through the new session.
func TestApplyLiveServerEntryWriteInFlight(t *testing.T) {
	const n = 2
	a, b, b2 := startSim(t, n, "Double"), startSim(t, n, "Double"), startSim(t, n, "Double")
	pb := newSinkProxy(t, hostPort(b.Endpoint()))
	cfgFor := func(bEndpoint string) *mapping.Config {
		cfg := pairConfig(t, a.Endpoint(), bEndpoint, n, nil)
		cfg.Servers[1].Timeouts = mapping.Timeouts{Connect: 2 * time.Second, Request: 30 * time.Second,
			KeepAlive: 50 * time.Millisecond, Session: 60 * time.Second, DataAge: 60 * time.Second}
		return cfg
	}
	r := &liveRig{t: t, a: a, b: b}
	r.e = runEngine(t, cfgFor("opc.tcp://"+pb.addr()), nil)
	waitConnected(t, r.e, n)
	r.a.SetValue(0, 100.0, time.Now())
	harness.Eventually(t, 10*time.Second, "b.v0 = 100 through the live link", func() bool { return valueOf(b, 0) == 100.0 })
	harness.Eventually(t, 10*time.Second, "no Write queued or in flight", func() bool {
		st := r.server("b")
		return st.InFlight == 0 && st.Pending == 0
	})

	pb.freeze()
	r.a.SetValue(0, 101.0, time.Now())
	if !harness.WaitFor(10*time.Second, func() bool { return r.server("b").InFlight > 0 && pb.seen(writeRequestID) > 0 }) {
		t.Fatalf("no Write unanswered on the stalled link after 10 s (stats %+v)", r.server("b"))
	}
	start := time.Now()
	r.apply(cfgFor(b2.Endpoint()))
	if !harness.WaitFor(5*time.Second, func() bool { err, _ := pb.ended(); return err != nil }) {
		t.Fatalf("the old session's socket is still open 5 s after the apply (stats %+v)", r.server("b"))
	}
	if err, at := pb.ended(); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the old session's socket ended with %v after %v, want a reset (ECONNRESET)", err, at.Sub(start))
	}
	harness.Eventually(t, 10*time.Second, "the value on b's new endpoint", func() bool { return valueOf(b2, 0) == 101.0 })
	if v := valueOf(b, 0); v != 100.0 {
		t.Fatalf("the old b holds %v, want 100 (the hung Write never forwarded)", v)
	}
}

// TestApplyLiveClockSkew: the engine's clock_skew changes live (every
// mapping holds it): a source timestamp 1 s ahead is within the 2 s
// tolerance before the change and a clock anomaly (state clock) after it
// lowered the tolerance to 200 ms, with no session rebuilt.
func TestApplyLiveClockSkew(t *testing.T) {
	const n = 4
	r := &liveRig{t: t, n: n}
	r.a, r.b = startSim(t, n, "Double"), startSim(t, n, "Double")
	skew := func(d time.Duration) func(c *mapping.Config) {
		return func(c *mapping.Config) {
			c.Groups = nil
			c.Mappings[1].Group, c.Mappings[2].Group, c.Mappings[3].Group = "", "", ""
			c.Engine.ClockSkew = d
		}
	}
	r.e = runEngine(t, r.config(n, skew(2*time.Second)), nil)
	waitConnected(t, r.e, n)
	r.mirrored(0, 1.5, 1.5)
	ahead := func(v float64) {
		t.Helper()
		r.a.SetValue(0, v, time.Now().Add(time.Second))
		harness.Eventually(t, 10*time.Second, "the value 1 s ahead mirrored", func() bool { return valueOf(r.b, 0) == v })
	}
	ahead(2.5)
	if st, why := mappingState(r.e, 0, false); st != bridge.StateOK {
		t.Fatalf("1 s ahead within a 2 s clock_skew: state %s (%s), want ok", st, why)
	}
	r.apply(r.config(n, skew(200*time.Millisecond)))
	ahead(3.5)
	harness.Eventually(t, 10*time.Second, "1 s ahead beyond the new 200 ms clock_skew: state clock", func() bool {
		st, _ := mappingState(r.e, 0, false)
		return st == bridge.StateClock
	})
	for _, name := range []string{"a", "b"} {
		if st := r.server(name); st.Connects != 1 || st.Reconnects != 0 {
			t.Fatalf("%s's session rebuilt by clock_skew (connects %d, reconnects %d)", name, st.Connects, st.Reconnects)
		}
	}
}

// TestApplyLiveMaxHold: max_hold set on a running mapping by a live
// change (no rebuild): the held value is marked UncertainLastUsableValue
// after max_hold, as on an engine started with it (hold_test.go).
func TestApplyLiveMaxHold(t *testing.T) {
	a, b := startSim(t, 2, "Double"), startSim(t, 2, "Double")
	const maxHold = time.Second
	cfgWith := func(hold time.Duration) *mapping.Config {
		return pairConfig(t, a.Endpoint(), b.Endpoint(), 2, func(i int, m *mapping.Mapping) {
			if i == 0 {
				m.MaxHold = hold
			}
		})
	}
	a.SetValue(0, 7.5, time.Now())
	a.SetValue(1, 7.5, time.Now())
	e := runEngine(t, cfgWith(0), nil)
	waitConnected(t, e, 2)
	ctx, cancel := context.WithTimeout(harness.Context(t), 20*time.Second)
	defer cancel()
	if err := e.ApplyLive(ctx, cfgWith(maxHold)); err != nil {
		t.Fatalf("ApplyLive (max_hold set): %v", err)
	}
	hc := holdCase{t: t, e: e, maxHld: maxHold, read: func() ([]*ua.DataValue, error) {
		return []*ua.DataValue{b.Value(0), b.Value(1)}, nil
	}}
	hc.marksThenClears(a.SetStatus, 7.5)
	for _, s := range e.Stats().Servers {
		if s.Connects != 1 || s.Reconnects != 0 {
			t.Fatalf("%s's session rebuilt by max_hold (connects %d, reconnects %d)", s.Name, s.Connects, s.Reconnects)
		}
	}
}
