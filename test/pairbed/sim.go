package pairbed

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/uamirror/uamirror/test/harness"
	"github.com/uamirror/uamirror/test/invariant"
	"github.com/uamirror/uamirror/test/netlab"
)

// Sim is a simulation OPC UA server process (always with --control, so
// that a test can set its values) serving Double variables v0…v<Vars-1>
// in the test/invariant value scheme.
type Sim struct {
	Host     string // lab host ("" on loopback)
	Proc     *harness.Proc
	Endpoint string
	Journal  string // write journal ("" without one)
	lab      *netlab.Lab
}

// SimOptions describes a simulation server to start.
type SimOptions struct {
	Vars    int
	Journal string   // path of the write journal ("" for none)
	Args    []string // extra simserver flags (--rate, --clock-offset, …)
	// Lab and Host place the server on a lab host (on the lab's fixed
	// port); a nil Lab puts it on 127.0.0.1 on an ephemeral port.
	Lab  *netlab.Lab
	Host string
}

// StartSim starts a simulation server and returns once it serves.
func StartSim(t testing.TB, o SimOptions) *Sim {
	t.Helper()
	s := &Sim{Journal: o.Journal}
	args := []string{"simserver", "--port", "0", "--vars", strconv.Itoa(o.Vars), "--type", "Double", "--control"}
	if o.Lab != nil {
		s.Host, s.lab = o.Host, o.Lab
		args = []string{"simserver", "--host", o.Lab.IP(o.Host), "--port", labSimPort, "--vars", strconv.Itoa(o.Vars), "--type", "Double", "--control"}
	}
	if o.Journal != "" {
		args = append(args, "--journal", o.Journal)
	}
	args = append(args, o.Args...)
	if s.lab != nil {
		s.Proc = harness.StartIn(t, s.lab.Exec(s.Host), s.lab.Env(), args...)
	} else {
		s.Proc = harness.Start(t, args...)
	}
	s.Endpoint = s.Proc.Ready("endpoint")
	return s
}

// SetValue sets variable i through the control channel (the simserver
// answers on stdout, which the harness drains; a test confirms by reading
// the value back or at the target).
func (s *Sim) SetValue(i int, v float64) error {
	if err := s.Proc.Send("set " + strconv.Itoa(i) + " " + strconv.FormatFloat(v, 'f', -1, 64)); err != nil {
		return fmt.Errorf("simserver control: %w", err)
	}
	return nil
}

// Set is SetValue that fails the test on an error (call it from the
// test's goroutine).
func (s *Sim) Set(t testing.TB, i int, v float64) {
	t.Helper()
	if err := s.SetValue(i, v); err != nil {
		t.Fatal(err)
	}
}

// Read returns the values and source timestamps of variables idx (read
// from inside the server's lab host in a lab).
func (s *Sim) Read(idx []int) ([]float64, []time.Time, error) {
	if s.lab == nil {
		return s.read(idx)
	}
	var vals []float64
	var tss []time.Time
	err := s.lab.InNS(s.Host, func() error {
		var err error
		vals, tss, err = s.read(idx)
		return err
	})
	return vals, tss, err
}

func (s *Sim) read(idx []int) ([]float64, []time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nodes := make([]string, len(idx))
	for k, i := range idx {
		nodes[k] = invariant.NodeID(i)
	}
	dvs, err := harness.ReadValues(ctx, s.Endpoint, nodes)
	if err != nil {
		return nil, nil, err
	}
	vals, tss := make([]float64, len(idx)), make([]time.Time, len(idx))
	for k, dv := range dvs {
		if dv == nil || dv.Value == nil {
			return nil, nil, fmt.Errorf("v%d: no value", idx[k])
		}
		f, ok := dv.Value.Value().(float64)
		if !ok {
			return nil, nil, fmt.Errorf("v%d: %T, want float64", idx[k], dv.Value.Value())
		}
		vals[k], tss[k] = f, dv.SourceTimestamp
	}
	return vals, tss, nil
}
