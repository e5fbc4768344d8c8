package bridge_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/test/harness"
)

// sinkProxy forwards one server's connections until frozen; frozen, it
// forwards nothing more but keeps reading what the client sends (a link
// that swallows it), so that it sees at once how the client's socket
// ends: RST (an abortive close) or FIN. It decodes the request type of
// every unsecured OPC UA message the client sends while frozen.
type sinkProxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	frozen   bool
	reqs     map[uint16]int // request type id → count, while frozen
	ends     map[net.Conn]end
	watched  []net.Conn // client connections open when frozen
	conns    []net.Conn
	wg       sync.WaitGroup
	stopping bool
}

// OPC UA binary encoding ids of requests (Part 6, 5.2.2.9: a four-byte
// NodeID in namespace 0 precedes each body).
const (
	readRequestID  = 631
	writeRequestID = 673
)

// end is how and when a client connection ended.
type end struct {
	err error
	at  time.Time
}

func newSinkProxy(t *testing.T, target string) *sinkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &sinkProxy{ln: ln, target: target, reqs: map[uint16]int{}, ends: map[net.Conn]end{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *sinkProxy) addr() string { return p.ln.Addr().String() }

func (p *sinkProxy) freeze() {
	p.mu.Lock()
	p.frozen = true
	for i := 0; i < len(p.conns); i += 2 {
		if _, gone := p.ends[p.conns[i]]; !gone {
			p.watched = append(p.watched, p.conns[i])
		}
	}
	p.mu.Unlock()
}

func (p *sinkProxy) seen(req uint16) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reqs[req]
}

// ended reports how the first client connection open at the freeze
// ended (nil error: all still open).
func (p *sinkProxy) ended() (error, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.watched {
		if e, ok := p.ends[c]; ok {
			return e.err, e.at
		}
	}
	return nil, time.Time{}
}

func (p *sinkProxy) watching() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.watched)
}

func (p *sinkProxy) close() {
	p.mu.Lock()
	p.stopping = true
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

func (p *sinkProxy) accept() {
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
		if p.stopping {
			p.mu.Unlock()
			in.Close()
			out.Close()
			return
		}
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out, true)
		go p.pipe(out, in, false)
	}
}

// pipe copies src to dst until frozen, then discards; fromClient pipes
// record requests and the end of the client's socket.
func (p *sinkProxy) pipe(src, dst net.Conn, fromClient bool) {
	defer p.wg.Done()
	defer dst.Close()
	buf := make([]byte, 64<<10)
	var pend []byte // client bytes read while frozen, not yet decoded
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		frozen := p.frozen
		if frozen && fromClient && n > 0 {
			pend = append(pend, buf[:n]...)
			for len(pend) >= 8 {
				size := int(binary.LittleEndian.Uint32(pend[4:8]))
				if size < 8 || len(pend) < size {
					break
				}
				if string(pend[:3]) == "MSG" && size >= 28 && pend[24] == 0x01 && pend[25] == 0 {
					p.reqs[binary.LittleEndian.Uint16(pend[26:28])]++
				}
				pend = pend[size:]
			}
		}
		if _, gone := p.ends[src]; err != nil && fromClient && !gone && !p.stopping {
			p.ends[src] = end{err, time.Now()}
		}
		p.mu.Unlock()
		if n > 0 && !frozen {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestFenceResetsSocketAtOnce: when the write lease lapses (on the clock,
// unsignalled) or AbortWrites is called while a Write is unanswered and
// the session's own loop is blocked in a keep-alive Read on the stalled
// link, the session's socket is reset (RST, not a graceful FIN after a
// CloseSession) within LeaseAbortBound — not when the keep-alive or the
// request times out (30 s here).
func TestFenceResetsSocketAtOnce(t *testing.T) {
	// The bound is for a running process; on a loaded 2-core CI host the
	// watcher goroutine may wait for a core this long on top.
	const schedSlack = 250 * time.Millisecond
	for _, tc := range []struct {
		name    string
		trigger func(e *bridge.Engine, g *leaseGate)
	}{
		{"lease lapses on the clock", func(_ *bridge.Engine, g *leaseGate) { g.set(true, false, false) }},
		{"AbortWrites after a planned close", func(e *bridge.Engine, g *leaseGate) {
			g.set(false, true, true)
			if n := e.AbortWrites(); n != 1 {
				t.Errorf("AbortWrites reset %d sessions, want 1", n)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 2
			a, b := startSim(t, n, "Double"), startSim(t, n, "Double")
			pb := newSinkProxy(t, hostPort(b.Endpoint()))
			cfg := pairConfig(t, a.Endpoint(), "opc.tcp://"+pb.addr(), n, nil)
			// The keep-alive runs often (so the loop is soon inside one) and
			// neither it nor the Write may time out during the test.
			cfg.Servers[1].Timeouts = mapping.Timeouts{Connect: 2 * time.Second, Request: 30 * time.Second,
				KeepAlive: 50 * time.Millisecond, Session: 60 * time.Second, DataAge: 60 * time.Second}
			g := &leaseGate{open: true, lease: true, changed: make(chan struct{}, 1)}
			e := runEngine(t, cfg, g)
			waitConnected(t, e, n)
			harness.Eventually(t, 10*time.Second, "writing (reconciled)", func() bool { _, ok := e.Writing(); return ok })
			bStats := func() bridge.ServerStats { return e.Stats().Servers[1] }
			// A first value through the live link: the flow is verified
			// (its target read, first writes compare) and has a good value,
			// so the next change goes out as a Write, not a Read first.
			a.SetValue(0, 100.0, time.Now())
			harness.Eventually(t, 10*time.Second, "b.v0 = 100 through the live link", func() bool { return valueOf(b, 0) == 100.0 })
			harness.Eventually(t, 10*time.Second, "no Write queued or in flight", func() bool {
				st := bStats()
				return st.InFlight == 0 && st.Pending == 0
			})

			pb.freeze()
			a.SetValue(0, 101.0, time.Now())
			if !harness.WaitFor(10*time.Second, func() bool {
				return bStats().InFlight > 0 && pb.seen(writeRequestID) > 0 && pb.seen(readRequestID) > 0
			}) {
				t.Fatalf("no Write and keep-alive Read unanswered on the stalled link after 10 s: in flight %d, Writes seen %d, Reads seen %d (stats %+v)",
					bStats().InFlight, pb.seen(writeRequestID), pb.seen(readRequestID), bStats())
			}
			if pb.watching() != 1 {
				t.Fatalf("%d client connections open at the freeze, want the session's only", pb.watching())
			}
			if err, _ := pb.ended(); err != nil {
				t.Fatalf("the client's socket ended before the trigger: %v", err)
			}

			start := time.Now()
			tc.trigger(e, g)
			if !harness.WaitFor(5*time.Second, func() bool { err, _ := pb.ended(); return err != nil }) {
				t.Fatalf("the session's socket is still open 5 s after the trigger (stats %+v)", bStats())
			}
			err, at := pb.ended()
			took := at.Sub(start)
			t.Logf("socket reset %v after the trigger (LeaseAbortBound %v)", took.Round(time.Millisecond), bridge.LeaseAbortBound)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the client's socket ended with %v, want a reset (ECONNRESET); EOF is a graceful close", err)
			}
			if errors.Is(err, io.EOF) {
				t.Errorf("graceful close (FIN) instead of a reset")
			}
			if took > bridge.LeaseAbortBound+schedSlack {
				t.Errorf("socket reset %v after the trigger, want within LeaseAbortBound %v (+%v scheduling slack)", took, bridge.LeaseAbortBound, schedSlack)
			}
			if got := bStats().LeaseAborts; got != 1 {
				t.Errorf("LeaseAborts %d, want 1", got)
			}
		})
	}
}

// frozenGate is the gate as a process sees it that stood still (SIGSTOP,
// a starved scheduler) right after the gate's last Permit: that Permit
// said yes, and the lease, measured on the monotonic clock, ran out
// meanwhile — unsignalled, and before the lease watcher's next tick.
type frozenGate struct {
	*leaseGate
	frozen atomic.Bool
}

func (g *frozenGate) Permit() (uint64, bool) {
	if g.frozen.Load() {
		return 1, true
	}
	return g.leaseGate.Permit()
}

// TestFenceLeaseCheckedAtSend: a Write that passed the gate but was not
// yet sent when the lease lapsed is not sent (cause 3 of the starved mode,
// docs/RELIABILITY.md): the lease is asked again immediately before the
// request goes to the socket, not only at the gate.
func TestFenceLeaseCheckedAtSend(t *testing.T) {
	const n = 2
	a, b := startSim(t, n, "Double"), startSim(t, n, "Double")
	cfg := pairConfig(t, a.Endpoint(), b.Endpoint(), n, nil)
	g := &frozenGate{leaseGate: &leaseGate{open: true, lease: true, changed: make(chan struct{}, 1)}}
	e := runEngine(t, cfg, g)
	waitConnected(t, e, n)
	harness.Eventually(t, 10*time.Second, "writing (reconciled)", func() bool { _, ok := e.Writing(); return ok })
	bStats := func() bridge.ServerStats { return e.Stats().Servers[1] }
	harness.Eventually(t, 10*time.Second, "no Write queued or in flight", func() bool {
		st := bStats()
		return st.InFlight == 0 && st.Pending == 0
	})
	before := bStats().WriteRequests

	g.frozen.Store(true)
	g.set(true, false, false) // the lease lapsed, unsignalled
	a.SetValue(0, 303.0, time.Now())
	harness.Eventually(t, 10*time.Second, "a Write of the new value past the gate", func() bool {
		return bStats().WriteRequests > before
	})
	if harness.WaitFor(time.Second, func() bool { return valueOf(b, 0) == 303.0 }) {
		t.Fatalf("a Write sent after the lease lapsed landed on the target (stats %+v)", bStats())
	}
}
