// Package drill owns the failover drill: a planned switchover measured
// from the targets' own view. For the duration of the drill it keeps, per
// target server, a sampling subscription (fast publishing) on a share of
// the mapped targets, triggers the switchover through a function the
// caller gives it, and judges what the targets showed: per target server
// the gap (the longest time without a new value across the handover), and
// every Bad/Uncertain or default value, every value older than the one
// before it and every duplicate.
//
// The package reads the mirror config (mapping) and talks OPC UA to the
// target servers; it never imports bridge or redundancy and never writes
// to a server: how the switchover is asked for is the caller's business.
package drill

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/gopcua/opcua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/mapping"
)

// ErrNoTargets means the config has no enabled mapping whose target the
// drill could sample.
var ErrNoTargets = errors.New("drill: no mapped targets to sample")

// ErrSwitchover wraps the error of the switchover the drill asked for.
var ErrSwitchover = errors.New("drill: switchover")

// Options tune a drill. Zero values mean the defaults (Default).
type Options struct {
	// Share of the mapped targets sampled per target server, in (0, 1]
	// (default 1: all). At least one target per server is sampled.
	Share float64
	// PublishingInterval of the sampling subscriptions (default 10ms).
	PublishingInterval time.Duration
	// Lead is how long the targets are sampled before the switchover
	// (default 1s); Settle how long after it answered (default 3s).
	Lead, Settle time.Duration
	// MaxGap is the longest gap that passes (default 2s).
	MaxGap time.Duration
	// ClientOptions, if set, gives the gopcua options (security, user) of
	// a target server's session; nil: security None, anonymous.
	ClientOptions func(ctx context.Context, srv *mapping.Server, endpoint string) ([]opcua.Option, error)
	// Logger receives the drill's logs (nil: none).
	Logger *zap.Logger
}

// Default returns the default options.
func Default() Options {
	return Options{Share: 1, PublishingInterval: 10 * time.Millisecond, Lead: time.Second,
		Settle: 3 * time.Second, MaxGap: 2 * time.Second}
}

func (o Options) withDefaults() Options {
	d := Default()
	if o.Share <= 0 || o.Share > 1 {
		o.Share = d.Share
	}
	if o.PublishingInterval <= 0 {
		o.PublishingInterval = d.PublishingInterval
	}
	if o.Lead <= 0 {
		o.Lead = d.Lead
	}
	if o.Settle <= 0 {
		o.Settle = d.Settle
	}
	if o.MaxGap <= 0 {
		o.MaxGap = d.MaxGap
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

// Result is what a drill found.
type Result struct {
	// Start is when sampling began; Switch when the switchover was asked
	// for, Switched when it answered; End when sampling ended.
	Start, Switch, Switched, End time.Time
	// Targets holds one line per target server, in config order.
	Targets []Target
	// Pass is the verdict: every target server passed.
	Pass bool
}

// Target is the drill's view of one target server.
type Target struct {
	Server string
	// Sampled is the number of target nodes sampled, Values the values
	// they delivered.
	Sampled, Values int
	// Gap is the handover's gap: the time without a new value on any
	// sampled node across the handover, by the server's timestamps (see
	// judgeGap); GapFrom and GapTo bound it. Longest is the longest such
	// time from the switchover to the end of the drill, Usual the longest
	// before the switchover (the pair's ordinary cadence). NoChange is set
	// when the targets delivered no new value during the drill (static
	// sources): the gap is then unknown.
	Gap            time.Duration
	GapFrom, GapTo time.Time
	Longest, Usual time.Duration
	NoChange       bool
	// Anomalies, counted: Bad or Uncertain status, a default value (null,
	// numeric zero, empty string), a source timestamp older than the
	// node's previous one, a value (with its source timestamp) seen
	// before on that node.
	Bad, Defaults, Older, Duplicates int
	// Examples are the first few anomalies, for the operator.
	Examples []string
	// Err is why the server could not be sampled (empty: it was).
	Err string
	// Pass: sampled, no anomaly, and a gap within MaxGap.
	Pass bool
}

// Anomalies is the sum of the anomaly counts.
func (t Target) Anomalies() int { return t.Bad + t.Defaults + t.Older + t.Duplicates }

// GapMS is the gap in milliseconds (NaN when unknown).
func (t Target) GapMS() float64 {
	if t.NoChange || t.Err != "" {
		return math.NaN()
	}
	return float64(t.Gap) / float64(time.Millisecond)
}

// Run runs a drill on the pair mirroring cfg: it samples the targets for
// Lead, calls switchover (which must return once the pair has handed
// over, or with the error that refused it), samples for Settle more and
// judges. A refused switchover ends the drill with an error wrapping
// ErrSwitchover and the switchover's own error. Run owns every goroutine
// and session it starts and returns only after they ended.
func Run(ctx context.Context, cfg *mapping.Config, o Options, switchover func(context.Context) error) (Result, error) {
	o = o.withDefaults()
	plan := planTargets(cfg, o.Share)
	if len(plan) == 0 {
		return Result{}, ErrNoTargets
	}
	res := Result{Start: time.Now()}
	samplers := make([]*sampler, len(plan))
	for i, p := range plan {
		samplers[i] = newSampler(p, o)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	started := make(chan struct{}, len(samplers))
	done := make(chan struct{}, len(samplers))
	for _, s := range samplers {
		go func() {
			defer func() { done <- struct{}{} }()
			s.run(sctx, started)
		}()
	}
	wait := func() {
		stop()
		for range samplers {
			<-done
		}
	}
	// Every sampler subscribed (or failed) before the lead time counts.
	for range samplers {
		select {
		case <-started:
		case <-ctx.Done():
			wait()
			return res, ctx.Err()
		}
	}
	if err := sleepCtx(ctx, o.Lead); err != nil {
		wait()
		return res, err
	}
	res.Switch = time.Now()
	err := switchover(ctx)
	res.Switched = time.Now()
	if err != nil {
		wait()
		return res, fmt.Errorf("%w: %w", ErrSwitchover, err)
	}
	serr := sleepCtx(ctx, o.Settle)
	res.End = time.Now()
	wait()
	if serr != nil {
		return res, serr
	}
	res.Pass = true
	for _, s := range samplers {
		t := s.judge(res.Start, res.Switch, res.Switched, res.End, o.MaxGap)
		res.Pass = res.Pass && t.Pass
		res.Targets = append(res.Targets, t)
	}
	return res, nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// targetPlan is the sampled nodes of one target server.
type targetPlan struct {
	srv   *mapping.Server
	nodes []string
}

// planTargets picks, per target server in config order, the share of the
// targets of enabled read and both mappings: every k-th, so the pick is
// stable and spread over the config.
func planTargets(cfg *mapping.Config, share float64) []targetPlan {
	by := map[string][]string{}
	for i := range cfg.Mappings {
		m := &cfg.Mappings[i]
		if !m.IsEnabled() || m.Direction == mapping.Write {
			continue
		}
		by[m.Target.Server] = append(by[m.Target.Server], m.Target.Node)
	}
	var out []targetPlan
	for i := range cfg.Servers {
		srv := &cfg.Servers[i]
		all := by[srv.Name]
		if len(all) == 0 {
			continue
		}
		n := max(1, int(math.Ceil(share*float64(len(all)))))
		step := float64(len(all)) / float64(n)
		nodes := make([]string, 0, n)
		for k := 0; k < n; k++ {
			nodes = append(nodes, all[int(float64(k)*step)])
		}
		sort.Strings(nodes) // deterministic order for the tests and logs
		out = append(out, targetPlan{srv: srv, nodes: nodes})
	}
	return out
}
