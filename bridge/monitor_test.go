package bridge_test

import (
	"encoding/binary"
	"net"
	"strings"
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
// A proxy holds the server's answers from the second on until four
// requests are outstanding; created one request at a time, the second
// answer would be held for ever and the third request never sent.
func TestMonitorRequestsInFlight(t *testing.T) {
	const n, per, inFlight = 40, 4, 4
	a, b := startSim(t, n, "Double"), startSim(t, n, "Double")
	p := newCreateProxy(t, hostPort(a.Endpoint()), inFlight, 0)
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

// TestMonitorSlowServer: a source server that takes 400 ms over each
// CreateMonitoredItems request, with a request timeout of 1 s. Sent one
// at a time, every request is answered in time; four sent at once, the
// third and fourth would wait for those before them and time out, and
// every new session would time out the same way. The pacer keeps them
// one at a time: the session comes up once, without a fault.
func TestMonitorSlowServer(t *testing.T) {
	const n, per = 24, 4
	a, b := startSim(t, n, "Double"), startSim(t, n, "Double")
	p := newCreateProxy(t, hostPort(a.Endpoint()), 0, 400*time.Millisecond)
	cfg := pairConfig(t, "opc.tcp://"+p.ln.Addr().String(), b.Endpoint(), n, nil)
	cfg.Servers[0].Timeouts = mapping.Timeouts{Connect: 2 * time.Second, Request: time.Second,
		KeepAlive: 10 * time.Second, Session: 30 * time.Second, DataAge: 30 * time.Second}
	cfg.Engine.SubscribeBatch = per // 6 requests
	e := runEngine(t, cfg, nil)
	now := time.Now()
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(3000+i), now)
	}
	waitConnected(t, e, n)
	for _, sv := range e.Stats().Servers {
		if sv.Name == "a" && (sv.Connects != 1 || sv.Reconnects != 0) {
			t.Fatalf("source: %d sessions up, %d ended (last error %q): want one, none ended",
				sv.Connects, sv.Reconnects, sv.LastError)
		}
	}
}

// TestResyncAfterSourcesSubscribed: at start a target session's resync
// waits for the source still subscribing (here slowly: 500 ms a request)
// and compares the targets with the values the source delivered, queuing
// those that differ itself (ReconcileWrites); it used to read the targets
// before any source value had come and queue nothing. A target already
// holding its source's value is not written either way.
func TestResyncAfterSourcesSubscribed(t *testing.T) {
	const n, per = 16, 2
	a, b := startSim(t, n, "Double"), startSim(t, n, "Double")
	now := time.Now()
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(4000+i), now)
	}
	b.SetValue(0, 4000.0, now) // already holds its source's value
	p := newCreateProxy(t, hostPort(a.Endpoint()), 0, 500*time.Millisecond)
	cfg := pairConfig(t, "opc.tcp://"+p.ln.Addr().String(), b.Endpoint(), n, nil)
	cfg.Servers[0].Timeouts = mapping.Timeouts{Connect: 2 * time.Second, Request: 10 * time.Second,
		KeepAlive: 10 * time.Second, Session: 30 * time.Second, DataAge: 30 * time.Second}
	cfg.Engine.SubscribeBatch = per // 8 requests
	e := runEngine(t, cfg, nil)
	waitConnected(t, e, n)
	harness.Eventually(t, 15*time.Second, "every target written", func() bool {
		for i := 0; i < n; i++ {
			if valueOf(b, i) != float64(4000+i) {
				return false
			}
		}
		return true
	})
	if st := e.Stats(); st.ReconcileWrites == 0 {
		t.Fatal("the targets' resync queued no value: it compared them before the source delivered any")
	}
	for _, j := range b.Journal() {
		if strings.HasSuffix(j.Node, ";s=v0") {
			t.Fatalf("the target already holding its value was written: %+v", j)
		}
	}
}

// createProxy forwards one server's connections and counts the
// CreateMonitoredItems requests in flight (sent, not yet answered). With
// hold > 0 it holds the server's answers to them, from the second on,
// until hold were in flight at once; with service > 0 it plays a server that takes service
// over each, one after the other (an answer goes service after its
// request arrived or the answer before it went, whichever is later). It
// decodes unsecured OPC UA messages only.
type createProxy struct {
	ln      net.Listener
	target  string
	hold    int
	service time.Duration

	mu          sync.Mutex
	inFlight    int
	maxIn       int
	arrived     []time.Time // of the requests not yet answered, in order
	lastOut     time.Time   // when the last answer went
	answered    bool        // the first answer went
	conns       []net.Conn
	closing     bool
	release     chan struct{}
	releaseOnce sync.Once
	done        chan struct{} // closed by close
	wg          sync.WaitGroup
}

// The binary encoding ids of CreateMonitoredItems (Part 6, 5.2.2.9: a
// four-byte NodeId in namespace 0 precedes each body).
const (
	createItemsRequestID  = 751
	createItemsResponseID = 754
)

func newCreateProxy(t *testing.T, target string, hold int, service time.Duration) *createProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &createProxy{ln: ln, target: target, hold: hold, service: service,
		release: make(chan struct{}), done: make(chan struct{})}
	if hold == 0 {
		p.releaseOnce.Do(func() { close(p.release) })
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *createProxy) maxInFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxIn
}

func (p *createProxy) close() {
	p.mu.Lock()
	p.closing = true
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.releaseOnce.Do(func() { close(p.release) })
	close(p.done)
	p.ln.Close()
	p.wg.Wait()
}

func (p *createProxy) accept() {
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
func (p *createProxy) request(id uint16) {
	if id != createItemsRequestID {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight++
	p.maxIn = max(p.maxIn, p.inFlight)
	p.arrived = append(p.arrived, time.Now())
	if p.hold > 0 && p.inFlight >= p.hold {
		p.releaseOnce.Do(func() { close(p.release) })
	}
}

// response holds an answer to CreateMonitoredItems until released, and
// then until the played server would have answered it.
func (p *createProxy) response(id uint16) {
	if id != createItemsResponseID {
		return
	}
	p.mu.Lock()
	first := !p.answered
	p.answered = true
	p.mu.Unlock()
	if !first {
		<-p.release
	}
	p.mu.Lock()
	var arrived time.Time
	if len(p.arrived) > 0 {
		arrived, p.arrived = p.arrived[0], p.arrived[1:]
	}
	out := arrived
	if p.lastOut.After(out) {
		out = p.lastOut
	}
	out = out.Add(p.service)
	p.lastOut = out
	p.mu.Unlock()
	if d := time.Until(out); d > 0 && p.service > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-p.done:
			t.Stop()
		}
	}
	p.mu.Lock()
	p.inFlight--
	p.mu.Unlock()
}

// forward copies OPC UA chunks (Part 6, 6.7.2: type, chunk flag, size;
// for MSG the channel, token, sequence and request ids, so the body of a
// message's first chunk starts at 24) from src to dst, calling seen with
// the type id of each message before its first chunk is passed on.
func (p *createProxy) forward(src, dst net.Conn, seen func(id uint16)) {
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

// TestResyncDoesNotWaitForADialingSource: a source whose socket accepts
// but never answers (a blackholed or hung server) is still dialling; the
// target's resync does not wait for it (awaitSources waits only for a
// source building a session on an open socket), so the other sources'
// values reach the target long before that source's connect timeout or
// sourcesWaitMax (10 s).
func TestResyncDoesNotWaitForADialingSource(t *testing.T) {
	const n = 8
	a, b := startSim(t, n, "Double"), startSim(t, n, "Double")
	now := time.Now()
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(7000+i), now)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // never answered
			mu.Unlock()
		}
	}()
	var once sync.Once
	release := func() {
		once.Do(func() { // the engine's Run waits for the dial to end
			ln.Close()
			wg.Wait()
			mu.Lock()
			for _, c := range held {
				c.Close()
			}
			mu.Unlock()
		})
	}
	t.Cleanup(release)
	cfg := pairConfig(t, a.Endpoint(), b.Endpoint(), n, nil)
	to := fastTimeouts()
	to.Connect = 30 * time.Second // beyond sourcesWaitMax
	cfg.Servers = append(cfg.Servers, mapping.Server{Name: "silent", Endpoints: []string{"opc.tcp://" + ln.Addr().String()}, Timeouts: to})
	last := &cfg.Mappings[n-1]
	last.Source.Server = "silent"
	last.ID = mapping.DeriveID(last.Source, last.Target)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	runEngine(t, cfg, nil)
	harness.Eventually(t, 7*time.Second, "the live sources' targets written while a source is still dialling", func() bool {
		for i := 0; i < n-1; i++ {
			if valueOf(b, i) != float64(7000+i) {
				return false
			}
		}
		return true
	})
	release()
}
