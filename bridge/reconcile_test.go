package bridge_test

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/tcpproxy"
)

// TestHungTargetDelaysNoOther: at a takeover, one target server hangs
// (its link frozen, its session still looking healthy). The other target
// must be reconciled and written at once, not after the hung one's
// request timeout.
func TestHungTargetDelaysNoOther(t *testing.T) {
	const n = 4
	a, b1, b2 := startSim(t, n, "Double"), startSim(t, n, "Double"), startSim(t, n, "Double")
	p2, err := tcpproxy.New(hostPort(b2.Endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	const hungTimeout = 6 * time.Second
	cfg := &mapping.Config{
		Servers: []mapping.Server{
			{Name: "a", Endpoints: []string{a.Endpoint()}, Timeouts: fastTimeouts()},
			{Name: "b1", Endpoints: []string{b1.Endpoint()}, Timeouts: fastTimeouts()},
			// Neither the keep-alive nor the data age may notice the frozen
			// link during the test; the reconcile's reads wait hungTimeout.
			{Name: "b2", Endpoints: []string{"opc.tcp://" + p2.Addr()}, Timeouts: mapping.Timeouts{Connect: 2 * time.Second,
				Request: hungTimeout, KeepAlive: 60 * time.Second, Session: 120 * time.Second, DataAge: 120 * time.Second}},
		},
		Engine: mapping.Engine{PublishingInterval: 50 * time.Millisecond, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond},
	}
	for _, target := range []string{"b1", "b2"} {
		for i := 0; i < n; i++ {
			m := mapping.Mapping{Source: mapping.NodeRef{Server: "a", Node: node(i)}, Target: mapping.NodeRef{Server: target, Node: node(i)}}
			m.ID = mapping.DeriveID(m.Source, m.Target)
			cfg.Mappings = append(cfg.Mappings, m)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g := bridge.NewManualGate(false, 0) // standby
	e := runEngine(t, cfg, g)
	waitConnected(t, e, 2*n)
	a.SetValue(0, 123.5, time.Now())
	harness.Eventually(t, 15*time.Second, "the standby caches the new value", func() bool {
		st := e.Mapping(cfg.Mappings[0].ID)
		return len(st) == 1 && st[0].Value != nil && st[0].Value.Value() == 123.5
	})
	p2.Freeze()
	defer p2.Restore()
	start := time.Now()
	g.Set(true, 1) // takeover
	harness.Eventually(t, 15*time.Second, "b1 written", func() bool { return valueOf(b1, 0) == 123.5 })
	took := time.Since(start)
	t.Logf("b1 written %v after the takeover (b2 hung, its request timeout %v)", took.Round(time.Millisecond), hungTimeout)
	if took >= hungTimeout/2 {
		t.Errorf("b1 written %v after the takeover: delayed by the hung b2 (request timeout %v)", took, hungTimeout)
	}
}

// TestTakeoverWritesWhileReconcileReads: at a takeover a writer sends
// what its reconcile has compared while later targets are still being
// read (issue 18 item 4: the first value must not wait for the read of
// every target), and nothing else: with every Read response after the
// first held back, the first batch's targets are written, the others not
// until their reads arrive.
func TestTakeoverWritesWhileReconcileReads(t *testing.T) {
	const n = 1200 // more than one read request
	a, b := startSim(t, n, "Double"), startSim(t, n, "Double")
	p := newReadStallProxy(t, hostPort(b.Endpoint()))
	cfg := pairConfig(t, a.Endpoint(), "opc.tcp://"+p.addr(), n, nil)
	// Neither a request nor the keep-alive may time out while reads are
	// held (nor may a keep-alive Read be the one let through).
	cfg.Servers[1].Timeouts = mapping.Timeouts{Connect: 2 * time.Second, Request: 30 * time.Second,
		KeepAlive: 60 * time.Second, Session: 120 * time.Second, DataAge: 120 * time.Second}
	// Active first, then standby: every target has been read once (its
	// flow verified), so a change at the next takeover is queued at once
	// and only the writer's hold keeps it from going out uncompared.
	g := bridge.NewManualGate(true, 1)
	e := runEngine(t, cfg, g)
	waitConnected(t, e, n)
	harness.Eventually(t, 15*time.Second, "active, reconciled", func() bool { _, ok := e.Writing(); return ok })
	g.Set(false, 1)
	harness.Eventually(t, 15*time.Second, "standby", func() bool { _, ok := e.Writing(); return !ok })
	want := func(i int) float64 { return float64(i) + 0.5 }
	ts := time.Now()
	for i := 0; i < n; i++ {
		a.SetValue(i, want(i), ts)
	}
	harness.Eventually(t, 15*time.Second, "the standby caches every new value", func() bool {
		for _, st := range e.Snapshot() {
			if st.Value == nil || st.Value.Value() != want(st.Index) {
				return false
			}
		}
		return true
	})
	written := func() int {
		k := 0
		for i := 0; i < n; i++ {
			if valueOf(b, i) == want(i) {
				k++
			}
		}
		return k
	}
	// One target of the first read already holds its value: it is not
	// written, so a change of it can go out while later reads are held.
	const free = 5
	b.SetValue(free, want(free), ts)
	if w := written(); w != 1 {
		t.Fatalf("%d values written before the takeover", w-1)
	}

	p.arm(1)       // the first Read response passes, later ones are held
	g.Set(true, 2) // the takeover
	harness.Eventually(t, 15*time.Second, "targets written while the reconcile's later reads are held", func() bool {
		return written() > 1 && p.isStalled()
	})
	if _, ok := e.Writing(); ok {
		t.Fatalf("the engine reports its reconcile over while reads are held")
	}
	if w := written(); w >= n {
		t.Fatalf("all %d targets written while the reads of some were held: written without a compare", w)
	}
	t.Logf("%d of %d targets written while the later reads were held", written(), n)
	// Two changes, the second to a compared target: it goes out, the
	// first (its target's read held) waits for that read.
	now := time.Now()
	a.SetValue(n-1, 1e6, now)
	a.SetValue(free, 1e6+free, now)
	harness.Eventually(t, 15*time.Second, "a change of a compared target written", func() bool { return valueOf(b, free) == 1e6+free })
	if v := valueOf(b, n-1); v == 1e6 {
		t.Fatalf("b.v%d written before its target was read", n-1)
	}
	p.unstall()
	harness.Eventually(t, 15*time.Second, "every target written once its read arrived", func() bool {
		return written() == n-2 && valueOf(b, n-1) == 1e6 && valueOf(b, free) == 1e6+free
	})
	harness.Eventually(t, 15*time.Second, "reconcile over", func() bool { _, ok := e.Writing(); return ok })
}

// readStallProxy forwards one server's connections. Once armed with
// allow, it lets that many more Read responses through and then holds
// everything the server sends, from the next Read response on, until
// unstalled; what the client sends still reaches the server. It decodes
// unsecured OPC UA messages only.
type readStallProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	armed   bool
	allow   int
	stalled bool
	conns   []net.Conn
	closing bool

	release     chan struct{}
	releaseOnce sync.Once
	wg          sync.WaitGroup
}

// readResponseID is the binary encoding id of a ReadResponse (Part 6,
// 5.2.2.9: a four-byte NodeId in namespace 0 precedes each body).
const readResponseID = 634

func newReadStallProxy(t *testing.T, target string) *readStallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &readStallProxy{ln: ln, target: target, release: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *readStallProxy) addr() string { return p.ln.Addr().String() }

func (p *readStallProxy) arm(allow int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed, p.allow = true, allow
}

func (p *readStallProxy) isStalled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stalled
}

// unstall lets what is held, and everything after it, through.
func (p *readStallProxy) unstall() { p.releaseOnce.Do(func() { close(p.release) }) }

func (p *readStallProxy) close() {
	p.mu.Lock()
	p.closing = true
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.unstall()
	p.ln.Close()
	p.wg.Wait()
}

func (p *readStallProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		if p.closing {
			p.mu.Unlock()
			in.Close()
			out.Close()
			return
		}
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			defer out.Close()
			_, _ = io.Copy(out, in)
		}()
		go p.fromServer(out, in)
	}
}

// fromServer forwards the server's chunks (Part 6, 6.7.2: type, chunk
// flag, size, then for MSG the channel, token, sequence and request ids:
// the body of a message's first chunk starts at 24), holding from the
// first Read response beyond those allowed.
func (p *readStallProxy) fromServer(src, dst net.Conn) {
	defer p.wg.Done()
	defer dst.Close()
	buf := make([]byte, 64<<10)
	var pend []byte
	first := true // the next MSG chunk begins a message
	for {
		n, err := src.Read(buf)
		pend = append(pend, buf[:n]...)
		for len(pend) >= 8 {
			size := int(binary.LittleEndian.Uint32(pend[4:8]))
			if size < 8 || len(pend) < size {
				break
			}
			chunk := pend[:size]
			if string(chunk[:3]) == "MSG" {
				if first && size >= 28 && chunk[24] == 0x01 && chunk[25] == 0 &&
					binary.LittleEndian.Uint16(chunk[26:28]) == readResponseID {
					p.mu.Lock()
					hold := p.armed && p.allow == 0
					if p.armed && p.allow > 0 {
						p.allow--
					}
					if hold {
						p.stalled = true
					}
					p.mu.Unlock()
					if hold {
						<-p.release
					}
				}
				first = chunk[3] != 'C'
			}
			if _, werr := dst.Write(chunk); werr != nil {
				return
			}
			pend = pend[size:]
		}
		if err != nil {
			return
		}
	}
}
