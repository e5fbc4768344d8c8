package pair

// The attacks of issue #12 on a running pair (real processes, TCP on
// 127.0.0.1), each reproduced and shown refused.

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"

	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/test/harness"
)

// rpcTimeoutNow is raft's TimeoutNow RPC type on the wire.
const rpcTimeoutNow = 3

// sendRaw writes msg to addr and reports whether the server closed the
// connection within 5 s (what the stream layer does to a refused RPC).
func sendRaw(t *testing.T, addr string, msg []byte) (closed bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(msg); err != nil {
		return true
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 64))
	return err != nil && !os.IsTimeout(err)
}

func timeoutNow(t *testing.T, id, addr string) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteByte(rpcTimeoutNow)
	req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: 3, ID: []byte(id), Addr: []byte(addr)}}
	if err := codec.NewEncoder(&b, &codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}}).Encode(req); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestRaftTimeoutNowInjection: the 17-byte message of #12 made the
// standby active (epoch+1, a write gap, journaled as peer-lost). Now it,
// and a TimeoutNow in the arbiter's name (not the leader), are refused
// and journaled, and the pair does not move. Without TLS a local process
// can still claim to be the leader (nothing authenticates the claim):
// that transfer is then journaled as what it was, not as peer-lost.
func TestRaftTimeoutNowInjection(t *testing.T) {
	p := startPair(t, pairOpts{})
	act, sby, epoch := p.waitStable(settle)
	if !sendRaw(t, sby.Raft, []byte("\x03\x81\xafProtocolVersion\x03")) {
		t.Error("the 17-byte TimeoutNow: connection not closed")
	}
	if !sendRaw(t, sby.Raft, timeoutNow(t, "arb", p.arb.Raft)) {
		t.Error("TimeoutNow as the arbiter: connection not closed")
	}
	harness.Holds(t, 3*time.Second, "the pair after the injected TimeoutNow", func() (bool, string) {
		s, err := p.status(sby)
		if err != nil {
			return false, err.Error()
		}
		return s.Role == "standby" && s.Epoch == epoch && s.Active == act.ID, harness.Brief(s)
	})
	for _, want := range []string{"names no member of the pair", "not the leader this member follows"} {
		harness.WaitState(t, 5*time.Second, "refusal journaled: "+want, func() (bool, string) { return hasRefusal(p, sby, want) })
	}

	// The leader impersonated (plain TCP): a transfer, journaled as such.
	if sendRaw(t, sby.Raft, timeoutNow(t, act.ID, act.Raft)) {
		t.Fatal("a TimeoutNow in the leader's name was refused (plain TCP cannot tell)")
	}
	ev := p.waitEvent(epoch+1, false, 10*time.Second)
	if ev.Reason != "transfer" || ev.To != sby.ID || !strings.Contains(ev.Detail, "by "+act.ID) {
		t.Errorf("the injected transfer was journaled as %q: %s", ev.Reason, ev.Detail)
	}
}

// TestRaftRPCWithAnotherMembersCertificate: on a secured pair, a
// connection without a member certificate never reaches raft, and the
// arbiter's own certificate cannot carry a TimeoutNow in the active's
// name: refused, journaled, the pair does not move.
func TestRaftRPCWithAnotherMembersCertificate(t *testing.T) {
	sp := startSecuredPair(t, pairOpts{})
	p := sp.pair
	act, sby, epoch := p.waitStable(settle)
	if !sendRaw(t, sby.Raft, []byte("\x03\x81\xafProtocolVersion\x03")) {
		t.Error("plain TCP to the TLS raft port: not closed")
	}
	arb := loadKeyPair(t, filepath.Join(sp.pki, "arb", "arb.crt"), filepath.Join(sp.pki, "arb", "arb.key"))
	c, err := tls.Dial("tcp", sby.Raft, &tls.Config{Certificates: []tls.Certificate{arb}, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(timeoutNow(t, act.ID, act.Raft)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 64)); err == nil || os.IsTimeout(err) {
		t.Errorf("the arbiter speaking as %s: connection not closed (%v)", act.ID, err)
	}
	harness.WaitState(t, 5*time.Second, "refusal journaled", func() (bool, string) {
		return hasRefusal(p, sby, fmt.Sprintf(`sent as member %q on a connection of member "arb"`, act.ID))
	})
	harness.Holds(t, 2*time.Second, "the pair after the arbiter's forged TimeoutNow", func() (bool, string) {
		s, err := p.status(sby)
		if err != nil {
			return false, err.Error()
		}
		return s.Role == "standby" && s.Epoch == epoch, harness.Brief(s)
	})
}

// syncBody is a sync request as an attacker on the peer link writes it.
func syncBody(t *testing.T, from string, epoch uint64, hash, id string, v any, ts time.Time) []byte {
	t.Helper()
	b, err := ua.MustVariant(v).Encode()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"from": from, "epoch": epoch, "config_hash": hash,
		"states": []map[string]any{{"id": id, "ts": ts, "v": base64.StdEncoding.EncodeToString(b)}}})
	return body
}

// TestPeerLinkInjection: #12's standby accepted -777.5 @ 2099-01-01 on
// its peer port, wrote it at the next switchover and froze the mapping.
// Now a far-future timestamp, a value of another type than the target's
// and a request of another epoch are refused (a security event for the
// first two), the switchover writes no injected value and the mapping
// still follows its source.
func TestPeerLinkInjection(t *testing.T) {
	p := startPair(t, pairOpts{})
	act, sby, epoch := p.waitStable(settle)
	st, err := p.status(sby)
	if err != nil {
		t.Fatal(err)
	}
	v := p.static()[0]
	id := mapping.DeriveID(mapping.NodeRef{Server: "plc", Node: nodeID(v)}, mapping.NodeRef{Server: "scada", Node: nodeID(v)})
	post := func(body []byte) (int, map[string]any) {
		res, err := http.Post("http://"+sby.Peer+"/peer/v1/sync", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	far := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		body []byte
		code int
		want string
	}{
		{"far-future timestamp", syncBody(t, act.ID, epoch, st.ConfigHash, id, -777.5, far), 200, "in the future"},
		{"wrong type", syncBody(t, act.ID, epoch, st.ConfigHash, id, float32(-777.5), time.Now()), 200, "the mapping's target takes Double"},
		{"next epoch", syncBody(t, act.ID, epoch+1, st.ConfigHash, id, -777.5, time.Now()), 409, "refused"},
		{"previous epoch", syncBody(t, act.ID, epoch-1, st.ConfigHash, id, -777.5, time.Now()), 409, "refused"},
		{"not the active", syncBody(t, "arb", epoch, st.ConfigHash, id, -777.5, time.Now()), 409, "refused"},
	} {
		code, out := post(tc.body)
		msg, _ := out["error"].(string)
		if code != tc.code || !strings.Contains(msg, tc.want) || (code == 200 && out["rejected"] != 1.0) {
			t.Errorf("%s: %d %v; want %d, %q", tc.name, code, out, tc.code, tc.want)
		}
	}
	for _, want := range []string{"in the future", "target takes Double"} {
		harness.WaitState(t, 5*time.Second, "refusal journaled: "+want, func() (bool, string) { return hasRefusal(p, sby, want) })
	}
	if err := p.switchover(act); err != nil {
		t.Fatal(err)
	}
	p.waitActive(sby, epoch+1, 15*time.Second)
	p.setStatic(t)
	p.waitMirrored(p.static(), 15*time.Second) // not frozen
	for _, w := range p.journal() {
		if f, ok := w.Value.(float64); ok && f == -777.5 {
			t.Fatalf("the injected value reached the target: %+v", w)
		}
	}
}

// rssKB returns a process's resident set (VmRSS) in KiB.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// flood opens n connections to addr, each sending nothing (or hello),
// and holds them for hold; then, until the server has closed want of them
// or grace has passed, it looks again which it closed. It closes them all
// and returns how many the server had closed. (Under load the last of the
// n connections is dialed seconds after the first, and the server's
// admission deadlines fire late: one look right after hold failed at
// load 23.)
func flood(t *testing.T, addr string, n int, hello []byte, hold, grace time.Duration, want int) (closedByServer int) {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			closedByServer++
			continue
		}
		if hello != nil {
			_, _ = c.Write(hello)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	time.Sleep(hold) // the flood's duration, not a synchronisation
	closed := make([]bool, len(conns))
	look := func() int {
		var mu sync.Mutex
		var wg sync.WaitGroup
		found := 0
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := i; k < len(conns); k += 8 {
					if closed[k] {
						continue
					}
					_ = conns[k].SetReadDeadline(time.Now().Add(time.Millisecond))
					if _, err := conns[k].Read(make([]byte, 1)); err != nil && !os.IsTimeout(err) {
						closed[k] = true // each goroutine its own k
						mu.Lock()
						found++
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		return found
	}
	closedByServer += look()
	end := time.Now().Add(grace)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for closedByServer < want && time.Now().Before(end) {
		<-tick.C
		closedByServer += look()
	}
	return closedByServer
}

// TestConnectionFlood: 5,000 idle connections to the active's raft port
// and to the standby's peer port, plain and secured. #12 measured 181 MB
// → 1.12 GB on the raft port; before the fix this test measured +45 MB,
// none closed, and the pair switched over under the flood. The memory
// stays bounded, the server closes the connections (at once past the
// admission limit, the rest after the admission deadline), and the pair
// does not move.
func TestConnectionFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods")
	}
	for _, secured := range []bool{false, true} {
		name := "plain"
		if secured {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			var p *pair
			if secured {
				p = startSecuredPair(t, pairOpts{}).pair
			} else {
				p = startPair(t, pairOpts{})
			}
			act, sby, epoch := p.waitStable(settle)
			for _, tgt := range []struct {
				what string
				m    *member
				addr string
			}{{"raft port of the active", act, act.Raft}, {"peer port of the standby", sby, sby.Peer}} {
				before := rssKB(t, tgt.m.Proc.Pid())
				var peak int
				done := make(chan struct{})
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					tick := time.NewTicker(100 * time.Millisecond)
					defer tick.Stop()
					for {
						if r := rssKB(t, tgt.m.Proc.Pid()); r > peak {
							peak = r
						}
						select {
						case <-done:
							return
						case <-tick.C:
						}
					}
				}()
				t0 := time.Now()
				closed := flood(t, tgt.addr, 5000, nil, 6*time.Second, 20*time.Second, 4900)
				close(done)
				wg.Wait()
				time.Sleep(5 * time.Second) // a measurement interval: RSS after the server released the flood
				after := rssKB(t, tgt.m.Proc.Pid())
				t.Logf("%s %s: 5000 idle connections (%.1fs): RSS %d → peak %d → after %d KiB; %d closed by the server while held",
					name, tgt.what, time.Since(t0).Seconds(), before, peak, after, closed)
				// Before the fix: +45 MB on the raft port, +41 MB on the peer
				// port (plain build), and growing with the number of
				// connections (256 KiB each on raft). Under the race detector
				// every goroutine the server briefly holds costs several times
				// more: CI measured +89 MB peak on the plain peer port, still
				// far under the unbounded 5000 × 256 KiB.
				limit := int64(16 << 10)
				if harness.RaceEnabled() {
					limit = 160 << 10
				}
				if int64(peak-before) > limit {

					t.Errorf("%s: RSS grew by %d KiB under the flood", tgt.what, peak-before)
				}
				if closed < 4900 {
					t.Errorf("%s: only %d of 5000 idle connections closed by the server", tgt.what, closed)
				}
			}
			s, err := p.status(act)
			if err != nil || s.Role != "active" || s.Epoch != epoch {
				t.Errorf("after the flood: %v %s", err, harness.Brief(s))
			}
		})
	}
}

// TestPeerLinkBigAndSlowBodies: 6 × 60 MB bodies took #12's standby
// from 101 to 505 MB, and slow request bodies were held forever on the
// peer link and the admin API (300 of 300 open after 40 s). Now a body
// over the config's limit is refused with 413 after the limit, one at a
// time, and slow bodies are cut off after the read deadline (5 s on the
// peer link, 15 s on the admin API).
func TestPeerLinkBigAndSlowBodies(t *testing.T) {
	p := startPair(t, pairOpts{})
	act, sby, _ := p.waitStable(settle)
	before := rssKB(t, sby.Proc.Pid())
	var wg sync.WaitGroup
	codes := make([]int, 6)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := io.MultiReader(strings.NewReader(`{"from":"a","states":[{"id":"`), &zeros{n: 60 << 20})
			req, _ := http.NewRequest(http.MethodPost, "http://"+sby.Peer+"/peer/v1/sync", body)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				codes[i] = -1 // the server closed the connection mid-body
				return
			}
			codes[i] = res.StatusCode
			res.Body.Close()
		}()
	}
	wg.Wait()
	after := rssKB(t, sby.Proc.Pid())
	t.Logf("6 × 60 MB bodies to the peer link: codes %v; standby RSS %d → %d KiB", codes, before, after)
	for _, c := range codes {
		if c == http.StatusOK {
			t.Errorf("a 60 MB body was accepted: %v", codes)
		}
	}
	if after-before > 64<<10 {
		t.Errorf("standby RSS grew by %d KiB", after-before)
	}

	slow := func(addr, path string, within time.Duration) {
		t.Helper()
		const n = 50
		conns := make([]net.Conn, 0, n)
		for range n {
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", path)
			conns = append(conns, c)
		}
		t0 := time.Now()
		open := n
		pace := time.NewTicker(250 * time.Millisecond) // the attack's pace: a byte per connection every 250 ms
		defer pace.Stop()
		for open > 0 && time.Since(t0) < within {
			open = 0
			for _, c := range conns {
				// A byte every 250 ms keeps a body "in progress".
				_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				if _, err := c.Write([]byte(" ")); err != nil {
					continue
				}
				_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
				if _, err := c.Read(make([]byte, 512)); err != nil && !os.IsTimeout(err) {
					continue
				}
				open++
			}
			<-pace.C
		}
		t.Logf("slow bodies on %s: %d of %d still open after %.1fs", path, open, n, time.Since(t0).Seconds())
		if open > 0 {
			t.Errorf("%s: %d of %d slow bodies still open after %s", path, open, n, within)
		}
	}
	slow(sby.Peer, "/peer/v1/sync", 10*time.Second)
	slow(act.Admin, "/api/v1/mappings", 25*time.Second)
}

// zeros yields n '0' bytes.
type zeros struct{ n int }

func (z *zeros) Read(b []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	k := min(len(b), z.n)
	for i := range b[:k] {
		b[i] = '0'
	}
	z.n -= k
	return k, nil
}
