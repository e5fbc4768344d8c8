package pairbed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uamirror/uamirror/diagnostics"
	"github.com/uamirror/uamirror/redundancy"
	"github.com/uamirror/uamirror/test/harness"
)

// Admin is m's admin API client.
func (p *Pair) Admin(m *Member) harness.Admin { return harness.NewAdmin(m.ID, m.URL, m.Client) }

// Get GETs path from m's admin API into out.
func (p *Pair) Get(m *Member, path string, out any) error { return p.Admin(m).Get(path, out) }

// Status is m's GET /api/v1/status; a member not running is an error
// without a request.
func (p *Pair) Status(m *Member) (redundancy.Status, error) {
	if !m.running() {
		return redundancy.Status{}, fmt.Errorf("%s is not running", m.ID)
	}
	return p.Admin(m).Status()
}

// Events returns the switchover journal: the longest one the running
// members answer with (a member that just restarted may not have caught
// up with the replicated state yet).
func (p *Pair) Events() ([]redundancy.Event, error) {
	var errs []error
	var best []redundancy.Event
	answered := false
	for _, m := range []*Member{p.A, p.B, p.Arb} {
		if !m.running() {
			continue
		}
		evs, err := p.Admin(m).Events()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		answered = true
		if len(evs) > len(best) {
			best = evs
		}
	}
	if !answered {
		return nil, errors.Join(append(errs, errors.New("no member answered"))...)
	}
	return best, nil
}

// Switchover asks m (POST /api/v1/switchover) to hand the active role
// over.
func (p *Pair) Switchover(m *Member) error {
	if _, err := p.Admin(m).Switchover(context.Background(), diagnostics.SwitchoverRequest{}); err != nil {
		return fmt.Errorf("switchover on %s: %w", m.ID, err)
	}
	return nil
}

// Other is the node that is not m.
func (p *Pair) Other(m *Member) *Member {
	if m == p.A {
		return p.B
	}
	return p.A
}

// PendingOf lists m's pending mappings from its admin API.
func (p *Pair) PendingOf(m *Member) func() (diagnostics.MappingPage, error) {
	return p.Admin(m).Pending
}

// WaitStable waits until one node is active and writing, the other is a
// READY standby that the active sees as READY, both agree on the epoch,
// the active and the config CfgHash (harness.StablePair), and returns
// them. A standby that reports pending mappings for PendingLimit fails
// the test naming them.
func (p *Pair) WaitStable(timeout time.Duration) (act, sby *Member, epoch uint64) {
	p.T.Helper()
	pw := harness.PendingWatch{Limit: p.O.PendingLimit}
	harness.WaitState(p.T, timeout, "a stable pair (one active, one READY standby)", func() (bool, string) {
		sa, err := p.Status(p.A)
		if err != nil {
			return false, err.Error()
		}
		sb, err := p.Status(p.B)
		if err != nil {
			return false, err.Error()
		}
		ok, bActive, ep, state := harness.StablePair(sa, sb, p.CfgHash)
		act, sby, epoch = p.A, p.B, ep
		sSby := sb
		if bActive {
			act, sby, sSby = p.B, p.A, sa
		}
		if !ok {
			pw.Check(p.T, sSby, p.PendingOf(sby))
		}
		return ok, state
	})
	return act, sby, epoch
}

// WaitActive waits until m is the active, writing under epoch.
func (p *Pair) WaitActive(m *Member, epoch uint64, timeout time.Duration) {
	p.T.Helper()
	harness.WaitState(p.T, timeout, fmt.Sprintf("%s active under epoch %d", m.ID, epoch), func() (bool, string) {
		st, err := p.Status(m)
		if err != nil {
			return false, err.Error()
		}
		return st.Role == "active" && st.Ready && st.Epoch == epoch && st.Active == m.ID, m.ID + ": " + harness.Brief(st)
	})
}

// WaitActiveAfter waits until m is the active, writing under an epoch
// after `after` (a lab fault may take more than one election), and
// returns that epoch.
func (p *Pair) WaitActiveAfter(m *Member, after uint64, timeout time.Duration) uint64 {
	p.T.Helper()
	var epoch uint64
	harness.WaitState(p.T, timeout, fmt.Sprintf("%s active under an epoch after %d", m.ID, after), func() (bool, string) {
		st, err := p.Status(m)
		if err != nil {
			return false, err.Error()
		}
		epoch = st.Epoch
		return st.Role == "active" && st.Ready && st.Epoch > after && st.Active == m.ID, m.ID + ": " + harness.Brief(st)
	})
	return epoch
}

// WaitStandby waits until m is a READY standby of the other node under
// epoch.
func (p *Pair) WaitStandby(m *Member, epoch uint64, timeout time.Duration) {
	p.T.Helper()
	pw := harness.PendingWatch{Limit: p.O.PendingLimit}
	harness.WaitState(p.T, timeout, fmt.Sprintf("%s READY standby under epoch %d", m.ID, epoch), func() (bool, string) {
		st, err := p.Status(m)
		if err != nil {
			return false, err.Error()
		}
		pw.Check(p.T, st, p.PendingOf(m))
		return st.Role == "standby" && st.Ready && st.Epoch == epoch && st.Active == p.Other(m).ID, m.ID + ": " + harness.Brief(st)
	})
}

// WaitEvent waits for the journal event of epoch (and, with gap, until
// its gap is measured) and returns it.
func (p *Pair) WaitEvent(epoch uint64, gap bool, timeout time.Duration) redundancy.Event {
	p.T.Helper()
	var ev redundancy.Event
	harness.WaitState(p.T, timeout, fmt.Sprintf("journal event of epoch %d (gap measured: %v)", epoch, gap), func() (bool, string) {
		evs, err := p.Events()
		if err != nil {
			return false, err.Error()
		}
		for _, e := range evs {
			if e.Epoch == epoch {
				ev = e
				return !gap || e.GapMS != nil, fmt.Sprintf("%+v", e)
			}
		}
		return false, fmt.Sprintf("%d events, none of epoch %d", len(evs), epoch)
	})
	return ev
}
