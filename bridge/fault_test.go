package bridge_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/tcpproxy"
)

// serverState returns the connection state of server name.
func serverState(e *bridge.Engine, name string) bridge.ConnState {
	for _, s := range e.Stats().Servers {
		if s.Name == name {
			return s.State
		}
	}
	return bridge.Disconnected
}

// allEqual reports whether b.v_i == a.v_i for i < n (in-process servers).
func allEqual(a, b interface{ Value(int) any }, n int) bool {
	for i := 0; i < n; i++ {
		if a.Value(i) != b.Value(i) {
			return false
		}
	}
	return true
}

type simValues struct {
	get func(i int) any
}

func (s simValues) Value(i int) any { return s.get(i) }

// TestTCPCutWhileServerRuns cuts the connection to the target server with
// a proxy (the server keeps running), changes sources during the cut, and
// checks the engine reconnects, resubscribes and resyncs.
func TestTCPCutWhileServerRuns(t *testing.T) {
	const n = 30
	a, b := startSim(t, n, "Double"), startSim(t, n, "Double")
	pa, err := tcpproxy.New(hostPort(a.Endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	defer pa.Close()
	pb, err := tcpproxy.New(hostPort(b.Endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	e := runEngine(t, pairConfig(t, "opc.tcp://"+pa.Addr(), "opc.tcp://"+pb.Addr(), n, nil), nil)
	waitConnected(t, e, 0)
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(i), time.Now())
	}
	av, bv := simValues{func(i int) any { return valueOf(a, i) }}, simValues{func(i int) any { return valueOf(b, i) }}
	harness.Eventually(t, 10*time.Second, "initial mirror", func() bool { return allEqual(av, bv, n) })

	for round, p := range []*tcpproxy.Proxy{pb, pa} {
		p.Cut()
		harness.Eventually(t, 10*time.Second, "cut noticed", func() bool {
			return serverState(e, "a") != bridge.Connected || serverState(e, "b") != bridge.Connected
		})
		for i := 0; i < n; i++ {
			a.SetValue(i, float64(1000*(round+1)+i), time.Now())
		}
		p.Restore()
		waitConnected(t, e, 0)
		harness.Eventually(t, 15*time.Second, fmt.Sprintf("round %d: targets equal sources after the cut", round), func() bool {
			return allEqual(av, bv, n)
		})
		// Subscriptions really resumed (not just the session): a new change flows.
		a.SetValue(0, float64(-1-round), time.Now())
		harness.Eventually(t, 10*time.Second, "subscription alive after reconnect", func() bool { return valueOf(b, 0) == float64(-1-round) })
	}
	var reconnects uint64
	for _, s := range e.Stats().Servers {
		reconnects += s.Reconnects
	}
	if reconnects < 2 {
		t.Fatalf("reconnects = %d, want ≥ 2", reconnects)
	}
}

// TestSilentStall freezes the connection (sockets open, no bytes move):
// only the keep-alive deadline can notice. The engine must rebuild the
// session once bytes move again and end with the right values.
func TestSilentStall(t *testing.T) {
	const n = 10
	a, b := startSim(t, n, "Double"), startSim(t, n, "Double")
	pb, err := tcpproxy.New(hostPort(b.Endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	e := runEngine(t, pairConfig(t, a.Endpoint(), "opc.tcp://"+pb.Addr(), n, nil), nil)
	waitConnected(t, e, 0)
	pb.Freeze()
	harness.Eventually(t, 10*time.Second, "stall detected by keep-alive", func() bool { return serverState(e, "b") != bridge.Connected })
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(500+i), time.Now())
	}
	pb.Restore()
	waitConnected(t, e, 0)
	harness.Eventually(t, 15*time.Second, "targets equal sources after the stall", func() bool {
		for i := 0; i < n; i++ {
			if valueOf(b, i) != float64(500+i) {
				return false
			}
		}
		return true
	})
}

// journalEntry is one line of a simserver --journal file.
type journalEntry struct {
	Node   string          `json:"node"`
	Value  json.RawMessage `json:"value"`
	Status uint32          `json:"status"`
}

func readJournal(t *testing.T, path string) []journalEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []journalEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var j journalEntry
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			t.Fatalf("journal line %q: %v", sc.Text(), err)
		}
		out = append(out, j)
	}
	return out
}

// TestTargetServerKilledAndRestarted kills the target server process
// (kill -9), changes the sources while it is down, restarts it on the same
// port (its values come back as defaults), and checks the engine rewrites
// every target and never writes a bad value.
func TestTargetServerKilledAndRestarted(t *testing.T) {
	const n = 40
	a := startSim(t, n, "Double")
	port := harness.FreePort(t)
	dir := t.TempDir()
	journal := filepath.Join(dir, "b.journal")
	b := harness.Start(t, "simserver", "--port", strconv.Itoa(port), "--vars", strconv.Itoa(n), "--type", "Double", "--journal", journal)
	bEP := b.Ready("endpoint")
	e := runEngine(t, pairConfig(t, a.Endpoint(), bEP, n, nil), nil)
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(i)+0.25, time.Now())
	}
	ctx := harness.Context(t)
	nodes := make([]string, n)
	for i := range nodes {
		nodes[i] = node(i)
	}
	targetsEqual := func(want func(i int) float64) func() bool {
		return func() bool {
			vals, err := harness.ReadValues(ctx, bEP, nodes)
			if err != nil {
				return false
			}
			for i, v := range vals {
				if v.Value == nil || v.Value.Value() != want(i) {
					return false
				}
			}
			return true
		}
	}
	harness.Eventually(t, 15*time.Second, "initial mirror", targetsEqual(func(i int) float64 { return float64(i) + 0.25 }))

	b.Kill()
	harness.Eventually(t, 10*time.Second, "outage noticed", func() bool { return serverState(e, "b") != bridge.Connected })
	for i := 0; i < n; i++ {
		a.SetValue(i, float64(i)+0.75, time.Now())
	}
	b.Restart()
	harness.Eventually(t, 20*time.Second, "targets equal sources after restart", targetsEqual(func(i int) float64 { return float64(i) + 0.75 }))
	// Values flow again (subscriptions on a untouched, writer on b rebuilt).
	a.SetValue(5, 555.0, time.Now())
	harness.Eventually(t, 10*time.Second, "live after restart", func() bool {
		vals, err := harness.ReadValues(ctx, bEP, []string{node(5)})
		return err == nil && vals[0].Value != nil && vals[0].Value.Value() == 555.0
	})
	b.Stop(5 * time.Second)
	for _, j := range readJournal(t, journal) {
		if j.Status>>30 != 0 {
			t.Fatalf("bad status written to the target: %+v", j)
		}
		if string(j.Value) == "0" || string(j.Value) == "null" {
			t.Fatalf("zero/default value written to the target: %+v", j)
		}
	}
}

// TestSourceServerKilledAndRestarted restarts the source server process:
// subscriptions must be rebuilt on the new process and values flow again.
func TestSourceServerKilledAndRestarted(t *testing.T) {
	const n = 20
	port := harness.FreePort(t)
	a := harness.Start(t, "simserver", "--port", strconv.Itoa(port), "--vars", strconv.Itoa(n), "--type", "Double", "--rate", "200", "--changing", "2", "--control")
	b := startSim(t, n, "Double")
	e := runEngine(t, pairConfig(t, a.Ready("endpoint"), b.Endpoint(), n, nil), nil)
	waitConnected(t, e, n)
	before := b.WriteCount()
	harness.Eventually(t, 10*time.Second, "changes flow", func() bool { return b.WriteCount() > before+20 })
	a.Kill()
	harness.Eventually(t, 10*time.Second, "outage noticed", func() bool { return serverState(e, "a") != bridge.Connected })
	a.Restart()
	waitConnected(t, e, n)
	mid := b.WriteCount()
	harness.Eventually(t, 15*time.Second, "changes flow after the source restarted", func() bool { return b.WriteCount() > mid+20 })
	// And a specific value set through the control channel arrives.
	if err := a.Send("set 3 12345"); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 10*time.Second, "control value mirrored", func() bool { return valueOf(b, 3) == 12345.0 })
}

func hostPort(endpoint string) string {
	const p = "opc.tcp://"
	if len(endpoint) > len(p) && endpoint[:len(p)] == p {
		return endpoint[len(p):]
	}
	return endpoint
}

// TestQuarantinedTargetRecovers: a target node the server does not have
// quarantines its mapping (the others flow); when the server comes back
// with that node, the mapping resolves and its last good value is written.
func TestQuarantinedTargetRecovers(t *testing.T) {
	a := startSim(t, 6, "Double")
	port := harness.FreePort(t)
	b := harness.Start(t, "simserver", "--port", strconv.Itoa(port), "--vars", "5", "--type", "Double")
	bEP := b.Ready("endpoint")
	e := runEngine(t, pairConfig(t, a.Endpoint(), bEP, 6, nil), nil) // b has no v5
	for i := 0; i < 6; i++ {
		a.SetValue(i, float64(i)+0.5, time.Now())
	}
	ctx := harness.Context(t)
	harness.Eventually(t, 15*time.Second, "v5 quarantined with a reason, the others flow", func() bool {
		vals, err := harness.ReadValues(ctx, bEP, []string{node(0), node(4)})
		if err != nil || vals[0].Value == nil || vals[0].Value.Value() != 0.5 || vals[1].Value == nil || vals[1].Value.Value() != 4.5 {
			return false
		}
		for _, m := range e.Snapshot() {
			if m.Index == 5 {
				return m.State == bridge.StateQuarantined && m.Reason != ""
			}
		}
		return false
	})
	b.Kill()
	harness.Start(t, "simserver", "--port", strconv.Itoa(port), "--vars", "6", "--type", "Double")
	harness.Eventually(t, 20*time.Second, "v5 resolved and written after the server has it", func() bool {
		vals, err := harness.ReadValues(ctx, bEP, []string{node(5)})
		return err == nil && vals[0].Value != nil && vals[0].Value.Value() == 5.5
	})
}
