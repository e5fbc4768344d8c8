package bridge_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/simserver"
	"github.com/uamirror/uamirror/test/harness"
)

// TestApplyLiveServerSet, hot and warm: mappings of a redundant source
// set (a: members a1, a2) added, removed and changed live take effect
// through the member in use, and after a switch through the other
// member (whose monitored items followed the change); the set's member
// sessions and b's session are those of the start and b's untouched
// targets are not written. Then the set's endpoints change live: a
// member added opens one session, the member in use staying in use; the
// member in use removed, the set switches to another without a new
// session; b's session is that of the start, its targets holding their
// values are not written, and values flow from the member in use.
func TestApplyLiveServerSet(t *testing.T) {
	for _, mode := range []string{mapping.SetHot, mapping.SetWarm} {
		t.Run(mode, func(t *testing.T) { testApplyLiveServerSet(t, mode) })
	}
}

func testApplyLiveServerSet(t *testing.T, mode string) {
	const n = 8
	a1, a2, a3, b := startSim(t, n, "Double"), startSim(t, n, "Double"), startSim(t, n, "Double"), startSim(t, n, "Double")
	as := []*simserver.Server{a1, a2, a3}
	// a2 is reached through a proxy: its session's end is seen there.
	p2 := proxy(t, a2)
	epOf := func(s *simserver.Server) string {
		if s == a2 {
			return "opc.tcp://" + p2.Addr()
		}
		return s.Endpoint()
	}
	// setA gives v_i the same value on every member.
	setA := func(i int, v float64) {
		now := time.Now()
		for _, s := range as {
			s.SetValue(i, v, now)
		}
	}
	for i := 0; i < n; i++ {
		setA(i, float64(i)+0.5)
	}
	// cfgFor mirrors a.v_i → b.v_i for i in mapped; v_scaled (if ≥ 0) is
	// scaled ×2.
	cfgFor := func(members []*simserver.Server, mapped []int, scaled int) *mapping.Config {
		var eps []string
		for _, s := range members {
			eps = append(eps, epOf(s))
		}
		cfg := setConfig(t, eps, []string{b.Endpoint()}, mode, 0)
		for _, i := range mapped {
			m := mapping.Mapping{Source: mapping.NodeRef{Server: "a", Node: node(i)}, Target: mapping.NodeRef{Server: "b", Node: node(i)}}
			m.ID = mapping.DeriveID(m.Source, m.Target)
			if i == scaled {
				m.Scaling = &mapping.Scaling{RawLow: 0, RawHigh: 100, EngLow: 0, EngHigh: 200}
			}
			cfg.Mappings = append(cfg.Mappings, m)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	r := &liveRig{t: t, a: a1, b: b}
	var log switchLog
	r.e = runSetEngine(t, cfgFor(as[:2], []int{0, 1, 2, 3}, -1), &log)
	waitConnected(t, r.e, 4)
	if ep, _ := inUse(r.e, "a"); ep != a1.Endpoint() {
		t.Fatalf("member in use %q, want a1", ep)
	}
	holds := func(want map[int]float64) func() bool {
		return func() bool {
			for i, v := range want {
				if valueOf(b, i) != v {
					return false
				}
			}
			return true
		}
	}
	harness.Eventually(t, 10*time.Second, "b mirrors a", holds(map[int]float64{0: 0.5, 1: 1.5, 2: 2.5, 3: 3.5}))
	r.idle("b")
	r.step("start", 0, 1, 2, 3)
	before := map[string]bridge.ServerStats{"a": r.server("a"), "b": r.server("b")}
	mirrored := func(what string, i int, v, want float64) {
		t.Helper()
		setA(i, v)
		harness.Eventually(t, 10*time.Second, what, func() bool { return valueOf(b, i) == want })
	}

	// +2 mappings on the set.
	r.apply(cfgFor(as[:2], []int{0, 1, 2, 3, 4, 5}, -1))
	harness.Eventually(t, 10*time.Second, "the added mappings reconciled", holds(map[int]float64{4: 4.5, 5: 5.5}))
	mirrored("an added mapping's source change mirrored", 5, 55, 55)
	r.step("+2 mappings", 4, 5)

	// One mapping's scaling.
	r.apply(cfgFor(as[:2], []int{0, 1, 2, 3, 4, 5}, 1))
	harness.Eventually(t, 10*time.Second, "the new scaling applied", holds(map[int]float64{1: 3}))
	mirrored("a change through the new scaling", 1, 10, 20)
	r.step("scaling of one", 1)

	// −1 mapping: its item is deleted (no notification of it arrives).
	r.apply(cfgFor(as[:2], []int{1, 2, 3, 4, 5}, 1))
	notes := r.server("a").Notifications
	setA(0, 99) // the removed mapping's source
	mirrored("a change mirrored", 2, 22, 22)
	if got := r.server("a").Notifications - notes; got != 1 {
		t.Fatalf("after −1 mapping: %d notifications for one change of a mapped source and one of the removed one's, want 1", got)
	}
	r.step("−1", 2)
	untouched(t, r, "mappings of the set changed", before)
	if v := valueOf(b, 0); v != 0.5 {
		t.Fatalf("the removed mapping's target was written: %v", v)
	}

	// The other member in use: its items followed the changes (hot: kept
	// on it all along; warm: created at the switch).
	a1.SetServiceLevel(0)
	harness.Eventually(t, 10*time.Second, "switch to a2", func() bool {
		ep, ok := inUse(r.e, "a")
		return ep == epOf(a2) && ok
	})
	mirrored("an added mapping through a2", 4, 44, 44)
	mirrored("the scaled mapping through a2", 1, 30, 60)
	setA(0, 98)
	mirrored("a change through a2", 3, 33, 33)
	if v := valueOf(b, 0); v != 0.5 {
		t.Fatalf("the removed mapping's target was written through a2: %v", v)
	}
	r.idle("b")
	r.step("switched", 1, 3, 4)
	a1.SetServiceLevel(255)
	harness.Eventually(t, 10*time.Second, "a1's ServiceLevel back to 255", func() bool {
		ms := r.server("a").Members
		return len(ms) > 0 && ms[0].ServiceLevel == 255
	})

	// The set's endpoints: a3 added. Only a3's session is new; a2 stays
	// in use on its session.
	aBefore := r.server("a")
	membersUp := func(want ...*simserver.Server) func() bool {
		return func() bool {
			st := r.server("a")
			if st.State != bridge.Connected || len(st.Members) != len(want) {
				return false
			}
			for k, m := range st.Members {
				if m.State != bridge.Connected || m.Endpoint != epOf(want[k]) {
					return false
				}
			}
			return true
		}
	}
	r.apply(cfgFor(as, []int{1, 2, 3, 4, 5}, 1))
	harness.Eventually(t, 10*time.Second, "a3 added to the set and up", membersUp(a1, a2, a3))
	if st := r.server("a"); st.Connects != aBefore.Connects+1 || st.Reconnects != aBefore.Reconnects {
		t.Fatalf("a3 added: a's connects %d→%d, reconnects %d→%d; want one new session (a3's), none ended",
			aBefore.Connects, st.Connects, aBefore.Reconnects, st.Reconnects)
	}
	if ep, _ := inUse(r.e, "a"); ep != epOf(a2) {
		t.Fatalf("member in use %q after a3 was added, want a2 still", ep)
	}
	mirrored("a change through a2, a3 added", 4, 4.25, 4.25)

	// a2, the member in use, removed: its session closes and the set
	// takes a1 (first listed) without opening a session.
	switches := len(log.all())
	r.apply(cfgFor([]*simserver.Server{a1, a3}, []int{1, 2, 3, 4, 5}, 1))
	harness.Eventually(t, 10*time.Second, "a2 removed, a1 in use", func() bool {
		ep, ok := inUse(r.e, "a")
		return ok && ep == a1.Endpoint() && membersUp(a1, a3)()
	})
	if st := r.server("a"); st.Connects != aBefore.Connects+1 {
		t.Fatalf("a2 removed: a's connects %d→%d, want no new session", aBefore.Connects+1, st.Connects)
	}
	harness.Eventually(t, 10*time.Second, "a2's session closed", func() bool { return p2.Open() == 0 })
	harness.Eventually(t, 10*time.Second, "a switch to a1 reported", func() bool {
		evs := log.all()
		return len(evs) > switches && evs[len(evs)-1].To == a1.Endpoint()
	})
	mirrored("a change through the new set", 5, 5.25, 5.25)
	r.idle("b")
	r.step("endpoints changed", 4, 5)
	untouched(t, r, "the set's endpoints changed", map[string]bridge.ServerStats{"b": before["b"]})
	if got := fmt.Sprint(len(r.e.Snapshot())); got != "5" {
		t.Fatalf("%s flows, want 5", got)
	}
}

// TestApplyLiveServerBecomesSet: a single source server's entry turned
// into a redundant set live, and back into a single server (another
// endpoint): each time only that server's sessions are rebuilt, b's
// session is the one of the start and its targets, which hold their
// values, are not written; values flow through the new entry.
func TestApplyLiveServerBecomesSet(t *testing.T) {
	const n = 4
	a1, a2, b := startSim(t, n, "Double"), startSim(t, n, "Double"), startSim(t, n, "Double")
	setA := func(i int, v float64) {
		now := time.Now()
		a1.SetValue(i, v, now)
		a2.SetValue(i, v, now)
	}
	for i := 0; i < n; i++ {
		setA(i, float64(i)+0.5)
	}
	cfgFor := func(eps ...string) *mapping.Config {
		return setConfig(t, eps, []string{b.Endpoint()}, mapping.SetHot, n)
	}
	r := &liveRig{t: t, a: a1, b: b}
	r.e = runEngine(t, cfgFor(a1.Endpoint()), nil)
	waitConnected(t, r.e, n)
	harness.Eventually(t, 10*time.Second, "b mirrors a", mirrorsOn(a1, b, 0, n))
	r.idle("b")
	r.step("start", 0, 1, 2, 3)
	before := map[string]bridge.ServerStats{"b": r.server("b")}
	mirrored := func(what string, i int, v float64) {
		t.Helper()
		setA(i, v)
		harness.Eventually(t, 10*time.Second, what, func() bool { return valueOf(b, i) == v })
	}

	r.apply(cfgFor(a1.Endpoint(), a2.Endpoint()))
	harness.Eventually(t, 10*time.Second, "a is a set of two members, one in use", func() bool {
		ep, ok := inUse(r.e, "a")
		return ok && ep != "" && len(r.server("a").Members) == 2
	})
	mirrored("a change through the set", 1, 11)
	r.idle("b")
	r.step("single → set", 1)

	r.apply(cfgFor(a2.Endpoint()))
	harness.Eventually(t, 10*time.Second, "a is a single server on a2", func() bool {
		st := r.server("a")
		return st.State == bridge.Connected && st.Endpoint == a2.Endpoint() && len(st.Members) == 0
	})
	mirrored("a change through a2", 2, 22)
	r.idle("b")
	r.step("set → single", 2)
	untouched(t, r, "a's entry changed", before)
}

// TestApplyLiveServerSetTarget: mappings writing to a redundant target
// set (b: members b1, b2) added and removed live: the member in use (b1)
// is written the added mapping's value (reconciled, then its source's
// changes), its untouched targets are not written, the member not in use
// is not written at all, and no session is rebuilt.
func TestApplyLiveServerSetTarget(t *testing.T) {
	const n = 4
	a, b1, b2 := startSim(t, n, "Double"), startSim(t, n, "Double"), startSim(t, n, "Double")
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(i)+0.5, time.Now())
	}
	cfgFor := func(mapped int) *mapping.Config {
		return setConfig(t, []string{a.Endpoint()}, []string{b1.Endpoint(), b2.Endpoint()}, mapping.SetHot, mapped)
	}
	r := &liveRig{t: t, a: a, b: b1}
	r.e = runEngine(t, cfgFor(2), nil)
	waitConnected(t, r.e, 2)
	if ep, _ := inUse(r.e, "b"); ep != b1.Endpoint() {
		t.Fatalf("member in use %q, want b1", ep)
	}
	harness.Eventually(t, 10*time.Second, "b1 mirrors a", mirrorsOn(a, b1, 0, 2))
	r.idle("b")
	r.step("start", 0, 1)
	before := map[string]bridge.ServerStats{"a": r.server("a"), "b": r.server("b")}

	r.apply(cfgFor(3))
	harness.Eventually(t, 10*time.Second, "the added mapping reconciled on b1", mirrorsOn(a, b1, 2, 3))
	r.mirrored(2, 22, 22)
	r.mirrored(1, 11, 11)
	r.idle("b")
	r.step("+1 mapping on the target set", 1, 2)

	r.apply(cfgFor(2))
	r.a.SetValue(2, 99.0, time.Now())
	r.mirrored(0, 10, 10)
	r.idle("b")
	if v := valueOf(b1, 2); v != 22.0 {
		t.Fatalf("the removed mapping's target was written: %v", v)
	}
	r.step("−1 mapping on the target set", 0)
	if j := b2.Journal(); len(j) != 0 {
		t.Fatalf("the member not in use was written: %v", j[0])
	}
	untouched(t, r, "mappings of the target set changed", before)
}
