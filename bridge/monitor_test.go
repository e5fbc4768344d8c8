package bridge_test

import (
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/test/harness"
)

// TestMonitorBatches creates the monitored items in many small batches
// (conn.monitor): every item ends up monitored and flowing, and an item
// the server rejects quarantines its own mapping only, whichever batch it
// is in.
func TestMonitorBatches(t *testing.T) {
	const n = 40
	missing := map[int]bool{5: true, 22: true, 39: true}
	a, b := startSim(t, n, "Double"), startSim(t, n, "Double")
	cfg := pairConfig(t, a.Endpoint(), b.Endpoint(), n, func(i int, m *mapping.Mapping) {
		if missing[i] {
			m.Source.Node = "nsu=" + simNS + ";s=missing"
		}
	})
	cfg.Engine.SubscribeBatch = 3 // 14 requests
	e := runEngine(t, cfg, nil)
	now := time.Now()
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(1000+i), now)
	}
	harness.Eventually(t, 15*time.Second, "every mapping but the missing ones flows", func() bool {
		for i := 0; i < n; i++ {
			if !missing[i] && valueOf(b, i) != float64(1000+i) {
				return false
			}
		}
		return true
	})
	harness.Eventually(t, 10*time.Second, "the missing ones quarantined, the others ok", func() bool {
		for _, m := range e.Snapshot() {
			want := bridge.StateOK
			if missing[m.Index] {
				want = bridge.StateQuarantined
			}
			if m.State != want {
				return false
			}
		}
		return true
	})
}

// TestMonitorRequestsInFlight: the monitored items of a session are
// created with several CreateMonitoredItems requests in flight at once.
// A proxy holds the server's answers until four requests are
// outstanding; created one request at a time, the first answer would be
// held for ever and the second request never sent.
func TestMonitorRequestsInFlight(t *testing.T) {
	const n, per, inFlight = 40, 4, 4
	a, b := startSim(t, n, "Double"), startSim(t, n, "Double")
	p := newCreateHoldProxy(t, hostPort(a.Endpoint()), inFlight)
	cfg := pairConfig(t, "opc.tcp://"+p.ln.Addr().String(), b.Endpoint(), n, nil)
	// The held requests must not time out meanwhile.
	cfg.Servers[0].Timeouts = mapping.Timeouts{Connect: 2 * time.Second, Request: 30 * time.Second,
		KeepAlive: 60 * time.Second, Session: 120 * time.Second, DataAge: 120 * time.Second}
	cfg.Engine.SubscribeBatch = per // 10 requests
	e := runEngine(t, cfg, nil)
	harness.Eventually(t, 15*time.Second, "4 CreateMonitoredItems requests in flight at once", func() bool {
		return p.maxInFlight() >= inFlight
	})
	now := time.Now()
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(2000+i), now)
	}
	waitConnected(t, e, n)
	harness.Eventually(t, 15*time.Second, "every mapping flows", func() bool {
		for i := 0; i < n; i++ {
			if valueOf(b, i) != float64(2000+i) {
				return false
			}
		}
		return true
	})
	if got := p.maxInFlight(); got > inFlight {
		t.Fatalf("%d CreateMonitoredItems requests in flight at once, want at most %d", got, inFlight)
	}
}

// createHoldProxy forwards one server's connections and counts the
// CreateMonitoredItems requests in flight (sent, not yet answered). It
// holds the server's answers to them until want were in flight at once,
// then lets everything through. It decodes unsecured OPC UA messages only.
type createHoldProxy struct {
	ln     net.Listener
	target string
	want   int

	mu          sync.Mutex
	inFlight    int
	maxIn       int
	conns       []net.Conn
	closing     bool
	release     chan struct{}
	releaseOnce sync.Once
	wg          sync.WaitGroup
}

// The binary encoding ids of CreateMonitoredItems (Part 6, 5.2.2.9: a
// four-byte NodeId in namespace 0 precedes each body).
const (
	createItemsRequestID  = 751
	createItemsResponseID = 754
)

func newCreateHoldProxy(t *testing.T, target string, want int) *createHoldProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &createHoldProxy{ln: ln, target: target, want: want, release: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *createHoldProxy) maxInFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxIn
}

func (p *createHoldProxy) close() {
	p.mu.Lock()
	p.closing = true
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.releaseOnce.Do(func() { close(p.release) })
	p.ln.Close()
	p.wg.Wait()
}

func (p *createHoldProxy) accept() {
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
		go p.forward(in, out, p.request)
		go p.forward(out, in, p.response)
	}
}

// request counts a message the client sent, by its type id.
func (p *createHoldProxy) request(id uint16) {
	if id != createItemsRequestID {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight++
	p.maxIn = max(p.maxIn, p.inFlight)
	if p.inFlight >= p.want {
		p.releaseOnce.Do(func() { close(p.release) })
	}
}

// response holds an answer to CreateMonitoredItems until released.
func (p *createHoldProxy) response(id uint16) {
	if id != createItemsResponseID {
		return
	}
	<-p.release
	p.mu.Lock()
	p.inFlight--
	p.mu.Unlock()
}

// forward copies OPC UA chunks (Part 6, 6.7.2: type, chunk flag, size;
// for MSG the channel, token, sequence and request ids, so the body of a
// message's first chunk starts at 24) from src to dst, calling seen with
// the type id of each message before its first chunk is passed on.
func (p *createHoldProxy) forward(src, dst net.Conn, seen func(id uint16)) {
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
				if first && size >= 28 && chunk[24] == 0x01 && chunk[25] == 0 {
					seen(binary.LittleEndian.Uint16(chunk[26:28]))
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
