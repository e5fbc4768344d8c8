package bridge_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/simserver"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/nodeopcua"
)

// Indexes of the cycling simulation types (simserver.Types).
const (
	simString     = 11
	simByteString = 13
	simDoubleArr  = 14
	simCycle      = 16
)

func bigDoubles(n int, seed float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = seed + float64(i)
	}
	return v
}

func serverStats(e *bridge.Engine, name string) bridge.ServerStats {
	for _, s := range e.Stats().Servers {
		if s.Name == name {
			return s
		}
	}
	return bridge.ServerStats{}
}

// largeConfig mirrors, from each source, the simCycle variables i to the
// target's variables i + k*simCycle (the same types).
func largeConfig(t *testing.T, srcs []string, target string, timeouts mapping.Timeouts) *mapping.Config {
	t.Helper()
	cfg := &mapping.Config{
		Servers: []mapping.Server{{Name: "b", Endpoints: []string{target}, Timeouts: timeouts}},
		Engine:  mapping.Engine{PublishingInterval: 50 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond},
	}
	for k, ep := range srcs {
		name := fmt.Sprintf("a%d", k)
		cfg.Servers = append(cfg.Servers, mapping.Server{Name: name, Endpoints: []string{ep}, Timeouts: timeouts})
		for i := 0; i < simCycle; i++ {
			m := mapping.Mapping{Source: mapping.NodeRef{Server: name, Node: node(i)},
				Target: mapping.NodeRef{Server: "b", Node: node(i + k*simCycle)}}
			m.ID = mapping.DeriveID(m.Source, m.Target)
			cfg.Mappings = append(cfg.Mappings, m)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// largeTimeouts give 1 MB values time on a loaded machine.
func largeTimeouts() mapping.Timeouts {
	to := fastTimeouts()
	to.Connect = 10 * time.Second
	to.Request = 10 * time.Second
	to.KeepAlive = time.Second
	to.DataAge = 30 * time.Second
	return to
}

// TestLargeValuesSim mirrors two Double[] of 100k elements, two 1 MB
// Strings and two 1 MB ByteStrings, with small values beside them, from
// six simulation servers (one large value each: a gopcua server cannot
// publish more than its 2 MiB message size in one response) into one:
// ~5.6 MB of values at once, more than one Write request may carry
// (gopcua's default message size is 2 MiB). Every value must arrive, and
// the target's session must never be faulted by a request too large.
func TestLargeValuesSim(t *testing.T) {
	// gopcua v0.9.0 decodes no array longer than ua.MaxVariantArrayLength
	// (65535, a package variable): neither the client reading the source
	// nor the gopcua server decoding the Write would take 100k elements.
	// Raised for this test (restored after everything else has stopped).
	old := ua.MaxVariantArrayLength
	ua.MaxVariantArrayLength = 1 << 20
	t.Cleanup(func() { ua.MaxVariantArrayLength = old })
	const srcs = 6
	b := startSim(t, srcs*simCycle, "")
	var eps []string
	var sims []*simserver.Server
	for k := 0; k < srcs; k++ {
		a := startSim(t, simCycle, "")
		sims = append(sims, a)
		eps = append(eps, a.Endpoint())
	}
	e := runEngine(t, largeConfig(t, eps, b.Endpoint(), largeTimeouts()), nil)
	waitConnected(t, e, srcs*simCycle)

	type big struct {
		src, i int
		v      any
	}
	var want []big
	for k := 0; k < 2; k++ {
		want = append(want,
			big{3 * k, simDoubleArr, bigDoubles(100_000, float64(k)+0.5)},
			big{3*k + 1, simString, strings.Repeat(string(rune('a'+k)), 1<<20)},
			big{3*k + 2, simByteString, bytes.Repeat([]byte{byte(0xA0 + k)}, 1<<20)})
	}
	for _, w := range want {
		sims[w.src].SetValue(w.i, w.v, time.Now())
	}
	equal := func(got, want any) bool {
		switch w := want.(type) {
		case []float64:
			g, ok := got.([]float64)
			return ok && slices.Equal(g, w)
		case []byte:
			g, ok := got.([]byte)
			return ok && bytes.Equal(g, w)
		}
		return got == want
	}
	missing := func() []int {
		var out []int
		for _, w := range want {
			if !equal(valueOf(b, w.i+w.src*simCycle), w.v) {
				out = append(out, w.i+w.src*simCycle)
			}
		}
		return out
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("missing on b: %v; stats %+v", missing(), e.Stats().Servers)
			for _, m := range e.Snapshot() {
				if m.State != bridge.StateOK {
					t.Logf("mapping %d: %s %s", m.Index, m.State, m.Reason)
				}
			}
		}
	})
	harness.Eventually(t, 60*time.Second, "every large value written to b", func() bool { return len(missing()) == 0 })
	// The small values keep flowing beside them.
	sims[0].SetValue(10, 42.25, time.Now())
	harness.Eventually(t, 15*time.Second, "a small value after the large ones", func() bool { return valueOf(b, 10) == 42.25 })
	if st := serverStats(e, "b"); st.Connects != 1 || st.WriteErrors != 0 {
		t.Errorf("target b: %d connects, %d write errors (last error %q); want 1 and 0", st.Connects, st.WriteErrors, st.LastError)
	}
	for _, m := range e.Snapshot() {
		if m.State != bridge.StateOK {
			t.Errorf("mapping %d: %s %s", m.Index, m.State, m.Reason)
		}
	}
}

// nodeRef is variable i of a node-opcua server.
func nodeRef(no *nodeopcua.Server, i int) string {
	return fmt.Sprintf("nsu=%s;s=v%d", no.Namespace(), i)
}

// TestUnadvertisedWriteLimit writes 200 values into a node-opcua server
// that refuses a Write of more than 10 values and a Read of more than 20
// (BadTooManyOperations) but advertises no limit. The writer must split
// its batches and learn the size, the target type and reconcile reads
// must split theirs, every value must arrive, and the session must not
// be faulted.
func TestUnadvertisedWriteLimit(t *testing.T) {
	const n = 200
	sim := startSim(t, n, "Double")
	no := nodeopcua.Start(t, nodeopcua.Options{Vars: n, Type: "Double", MaxNodesPerWrite: 10, MaxNodesPerRead: 20, HideLimits: true})
	cfg := &mapping.Config{
		Servers: []mapping.Server{
			{Name: "sim", Endpoints: []string{sim.Endpoint()}, Timeouts: largeTimeouts()},
			{Name: "node", Endpoints: []string{no.Endpoint()}, Timeouts: largeTimeouts()},
		},
		Engine: mapping.Engine{PublishingInterval: 50 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond},
	}
	var refs []string
	for i := 0; i < n; i++ {
		m := mapping.Mapping{Source: mapping.NodeRef{Server: "sim", Node: node(i)}, Target: mapping.NodeRef{Server: "node", Node: nodeRef(no, i)}}
		m.ID = mapping.DeriveID(m.Source, m.Target)
		cfg.Mappings = append(cfg.Mappings, m)
		refs = append(refs, nodeRef(no, i))
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e := runEngine(t, cfg, nil)
	for i := 0; i < n; i++ {
		sim.SetValue(i, 1000.5+float64(i), time.Now())
	}
	ctx := harness.Context(t)
	harness.Eventually(t, 60*time.Second, "every value written to node-opcua", func() bool {
		for k := 0; k < n; k += 20 {
			vals, err := harness.ReadValues(ctx, no.Endpoint(), refs[k:k+20])
			if err != nil {
				return false
			}
			for i, v := range vals {
				if v.Value == nil || v.Value.Value() != 1000.5+float64(k+i) {
					return false
				}
			}
		}
		return true
	})
	// No reconnect loop (before the fix: 116 reconnects in 60 s and
	// nothing written). One reconnect is tolerated: the server may close
	// the channel on the first request over its limit before the size
	// that works is learnt.
	if st := serverStats(e, "node"); st.Connects > 2 {
		t.Errorf("node: %d connects (last error %q); want at most 2", st.Connects, st.LastError)
	}
	for _, m := range e.Snapshot() {
		if m.State != bridge.StateOK {
			t.Errorf("mapping %d: %s %s", m.Index, m.State, m.Reason)
		}
	}
}

// TestLargeValuesNodeOPCUA writes a Double[] of 100k elements, a 1 MB
// String and a 1 MB ByteString, beside a small Double, into a node-opcua
// server whose MaxArrayLength is 1000 and MaxStringLength 4096. The
// large values are refused once, their mappings bad with the reason; the
// small value is written and the session never faulted.
func TestLargeValuesNodeOPCUA(t *testing.T) {
	old := ua.MaxVariantArrayLength // see TestLargeValuesSim
	ua.MaxVariantArrayLength = 1 << 20
	t.Cleanup(func() { ua.MaxVariantArrayLength = old })
	sim := startSim(t, simCycle, "")
	no := nodeopcua.Start(t, nodeopcua.Options{Vars: simCycle, MaxArrayLength: 1000, MaxStringLength: 4096})
	cfg := &mapping.Config{
		Servers: []mapping.Server{
			{Name: "sim", Endpoints: []string{sim.Endpoint()}, Timeouts: largeTimeouts()},
			{Name: "node", Endpoints: []string{no.Endpoint()}, Timeouts: largeTimeouts()},
		},
		Engine: mapping.Engine{PublishingInterval: 50 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond},
	}
	const small = 10
	large := []int{simDoubleArr, simString, simByteString}
	for _, i := range append([]int{small}, large...) {
		m := mapping.Mapping{Source: mapping.NodeRef{Server: "sim", Node: node(i)}, Target: mapping.NodeRef{Server: "node", Node: nodeRef(no, i)}}
		m.ID = mapping.DeriveID(m.Source, m.Target)
		cfg.Mappings = append(cfg.Mappings, m)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e := runEngine(t, cfg, nil)
	waitConnected(t, e, len(cfg.Mappings))
	// One value per publish: a gopcua server drops a Publish response
	// larger than its message size (2 MiB) without a word.
	for k, v := range []any{bigDoubles(100_000, 0.5), strings.Repeat("x", 1<<20), bytes.Repeat([]byte{0xA5}, 1<<20)} {
		sim.SetValue(large[k], v, time.Now())
		id := cfg.Mappings[1+k].ID
		harness.Eventually(t, 30*time.Second, "the engine received large value "+id, func() bool {
			st := e.Mapping(id)
			return len(st) == 1 && st[0].Value != nil && variantLen(st[0].Value.Value()) == variantLen(v)
		})
	}
	sim.SetValue(small, 77.25, time.Now())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stats: %+v", e.Stats().Servers)
			for _, m := range e.Snapshot() {
				t.Logf("mapping %d: %s %s", m.Index, m.State, m.Reason)
			}
		}
	})
	ctx := harness.Context(t)
	harness.Eventually(t, 60*time.Second, "the small value written, the large ones refused", func() bool {
		vals, err := harness.ReadValues(ctx, no.Endpoint(), []string{nodeRef(no, small)})
		if err != nil || vals[0].Value == nil || vals[0].Value.Value() != 77.25 {
			return false
		}
		bad := 0
		for _, m := range e.Snapshot() {
			if m.State == bridge.StateBad && strings.Contains(m.Reason, "EncodingLimitsExceeded") {
				bad++
			}
		}
		return bad == len(large)
	})
	st := serverStats(e, "node")
	if st.Connects != 1 {
		t.Errorf("node: %d connects (last error %q); want 1", st.Connects, st.LastError)
	}
	if st.WriteErrors != uint64(len(large)) {
		t.Errorf("node: %d write errors, want %d (one per large value, never retried)", st.WriteErrors, len(large))
	}
}

// variantLen is the number of elements or bytes of a large value.
func variantLen(v any) int {
	switch x := v.(type) {
	case []float64:
		return len(x)
	case string:
		return len(x)
	case []byte:
		return len(x)
	}
	return -1
}
