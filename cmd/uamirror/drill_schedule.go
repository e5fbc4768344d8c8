package main

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/drill"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/redundancy"
)

// drillPair is what the drill schedule needs of the node
// (*redundancy.Node satisfies it). Safe for concurrent use.
type drillPair interface {
	Status() redundancy.Status
	Config() (yaml []byte, hash string)
	Switchover(ctx context.Context, to string, force bool) error
}

// drillScheduler runs the config's drill schedule (mapping.DrillSchedule)
// on a bridge node: when a drill is due and this node is the active, it
// runs one (the switchover is its own) and journals it; when the pair is
// not healthy it journals the drill as skipped. A standby only follows
// the schedule. run is its one goroutine (a member of the node's run
// group); it returns when ctx ends.
type drillScheduler struct {
	pair    drillPair
	journal *redundancy.DrillJournal
	log     *zap.Logger
	// check is how often the schedule is looked at (a config change
	// applies within it).
	check time.Duration
	// drill runs one drill (drill.Run in production).
	drill func(ctx context.Context, cfg *mapping.Config, switchover func(context.Context) error) (drill.Result, error)
	now   func() time.Time

	last time.Time // the previous drill (or the start)
}

func newDrillScheduler(pair drillPair, j *redundancy.DrillJournal, log *zap.Logger) *drillScheduler {
	return &drillScheduler{pair: pair, journal: j, log: log.Named("drill"), check: time.Minute, now: time.Now,
		drill: func(ctx context.Context, cfg *mapping.Config, sw func(context.Context) error) (drill.Result, error) {
			return drill.Run(ctx, cfg, drill.Options{Logger: log.Named("drill")}, sw)
		}}
}

// run follows the schedule until ctx ends.
func (s *drillScheduler) run(ctx context.Context) error {
	s.last = s.now()
	t := time.NewTicker(s.check)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			s.tick(ctx)
		}
	}
}

// tick runs or skips a drill that is due now.
func (s *drillScheduler) tick(ctx context.Context) {
	raw, _ := s.pair.Config()
	if len(raw) == 0 {
		return
	}
	cfg, err := mapping.ParseYAML(raw, "pair config")
	if err != nil || cfg.Drill == nil {
		return
	}
	now := s.now()
	if now.Before(cfg.Drill.Next(s.last, now)) {
		return
	}
	s.last = now
	st := s.pair.Status()
	if st.Role != redundancy.PairActive {
		return // the active runs the pair's drills
	}
	if why := drillRefusal(st); why != "" || !st.Ready {
		if why == "" {
			why = "the active is not ready: " + st.NotReady
		}
		s.journal.Record(redundancy.DrillRecord{Time: now, From: st.Node, Epoch: st.Epoch, Skipped: "scheduled drill skipped: " + why})
		s.log.Warn("scheduled drill skipped: the pair is not healthy", zap.String("why", why))
		return
	}
	s.log.Info("scheduled drill: switching over")
	res, err := s.drill(ctx, cfg, func(ctx context.Context) error { return s.pair.Switchover(ctx, "", false) })
	if err != nil {
		s.journal.Record(redundancy.DrillRecord{Time: s.now(), From: st.Node, Epoch: st.Epoch,
			Skipped: fmt.Sprintf("scheduled drill failed to run: %v", err)})
		s.log.Warn("scheduled drill did not run", zap.Error(err))
		return
	}
	after := s.pair.Status()
	rec := drillRecord(res, st.Node, after)
	s.journal.Record(rec)
	s.log.Info("scheduled drill done", zap.Bool("pass", rec.Pass), zap.String("detail", rec.Event().Detail))
}
