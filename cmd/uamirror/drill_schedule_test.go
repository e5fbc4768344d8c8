package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/drill"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/redundancy"
)

type fakeDrillPair struct {
	st       redundancy.Status
	yaml     string
	switched int
}

func (p *fakeDrillPair) Status() redundancy.Status { return p.st }
func (p *fakeDrillPair) Config() ([]byte, string)  { return []byte(p.yaml), "h" }
func (p *fakeDrillPair) Switchover(context.Context, string, bool) error {
	p.switched++
	return nil
}

const scheduledYAML = `servers:
  - {name: plc, endpoints: ["opc.tcp://127.0.0.1:1"]}
mappings: []
drill: {every: 24h, at: "03:00"}
`

// TestDrillSchedule: a due drill runs on the active of a healthy pair,
// is skipped and journaled when the standby is not READY, and nothing
// happens before it is due or on the standby.
func TestDrillSchedule(t *testing.T) {
	now := time.Date(2026, 12, 3, 2, 59, 0, 0, time.Local)
	healthy := redundancy.Status{Node: "a", Role: redundancy.PairActive, Active: "a", Epoch: 3, Ready: true, StandbyReady: true}
	newS := func(st redundancy.Status) (*drillScheduler, *fakeDrillPair, *redundancy.DrillJournal) {
		p := &fakeDrillPair{st: st, yaml: scheduledYAML}
		j := &redundancy.DrillJournal{}
		s := newDrillScheduler(p, j, zap.NewNop())
		s.now = func() time.Time { return now }
		s.last = now.Add(-30 * time.Hour)
		s.drill = func(ctx context.Context, _ *mapping.Config, sw func(context.Context) error) (drill.Result, error) {
			if err := sw(ctx); err != nil {
				return drill.Result{}, err
			}
			return drill.Result{Pass: true, End: now, Targets: []drill.Target{{Server: "scada", Gap: 80 * time.Millisecond, Pass: true}}}, nil
		}
		return s, p, j
	}
	ctx := context.Background()

	s, p, j := newS(healthy)
	s.tick(ctx) // 02:59: not due
	if _, ok := j.Last(); ok || p.switched != 0 {
		t.Fatal("a drill before it was due")
	}
	now = now.Add(time.Minute) // 03:00
	s.tick(ctx)
	d, ok := j.Last()
	if !ok || p.switched != 1 || !d.Pass || d.Skipped != "" || len(d.Targets) != 1 || *d.Targets[0].GapMS != 80 {
		t.Fatalf("due drill on a healthy pair: switched %d, %+v", p.switched, d)
	}
	s.tick(ctx) // done for today
	if p.switched != 1 {
		t.Fatal("the drill ran twice")
	}

	notReady := healthy
	notReady.StandbyReady = false
	s, p, j = newS(notReady)
	s.tick(ctx)
	d, ok = j.Last()
	if !ok || p.switched != 0 || d.Event().Reason != "drill skipped" {
		t.Fatalf("due drill, standby not READY: switched %d, %+v", p.switched, d.Event())
	}

	standby := healthy
	standby.Role, standby.Active = redundancy.PairStandby, "b"
	s, p, j = newS(standby)
	s.tick(ctx)
	if _, ok := j.Last(); ok || p.switched != 0 {
		t.Fatal("the standby ran or journaled a drill")
	}

	// A drill that cannot run (the switchover refused) is journaled.
	s, p, j = newS(healthy)
	s.drill = func(context.Context, *mapping.Config, func(context.Context) error) (drill.Result, error) {
		return drill.Result{}, errors.New("refused")
	}
	s.tick(ctx)
	if d, ok := j.Last(); !ok || d.Event().Reason != "drill skipped" {
		t.Fatalf("a drill that failed to run: %+v", d)
	}
}
