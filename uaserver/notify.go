package uaserver

import (
	"time"

	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"
	"go.uber.org/zap"
)

// We do not call gopcua's ChangeNotification. It holds the
// MonitoredItemService lock while it sends into a subscription's
// 100-slot NotifyChannel; when that subscription's publish loop has just
// exited (its client vanished or its lifetime expired), the send blocks
// forever, and the loop's own cleanup (DeleteSubscription) then blocks on
// the same lock while holding the SubscriptionService lock: from then on
// no change is delivered and no subscription can be created. Measured
// with a bare gopcua server: 1 run in 4 after cutting a subscriber at
// 150k changes/s. Instead we look the monitored items up under the lock,
// release it, and only then send, giving up on a subscription that is
// gone or that stops taking notifications for stallTimeout.

const (
	// stallTimeout is how long a delivery waits for a live subscription
	// whose channel stays full before the subscription is marked stalled
	// (its notifications are then dropped until it takes one again). A
	// healthy publish loop empties its channel within the time it takes
	// to send one Publish response.
	stallTimeout = 2 * time.Second
	// stallCheck is how often a waiting delivery checks that its
	// subscription still exists.
	stallCheck = 50 * time.Millisecond
)

// change is a stored value to notify.
type change struct {
	idx int    // variable index; only the ticker uses it
	key string // gopcua's monitored-item key (NodeID.String())
	dv  *ua.DataValue
}

// target is one notification to hand to a subscription.
type target struct {
	sub    *server.Subscription
	handle uint32
	dv     *ua.DataValue
}

// fanOutLocked hands each change to every Reporting monitored item of the
// Value attribute of its node. The caller holds notifyMu.
func (s *Server) fanOutLocked(changes []change) {
	gs := s.lib
	if gs == nil || len(changes) == 0 {
		return
	}
	mis := gs.MonitoredItemService
	targets := s.targets[:0]
	mis.Mu.Lock()
	for _, c := range changes {
		for _, it := range mis.Nodes[c.key] {
			if it == nil || it.Mode != ua.MonitoringModeReporting ||
				it.Req.ItemToMonitor.AttributeID != ua.AttributeIDValue {
				continue
			}
			targets = append(targets, target{it.Sub, it.Req.RequestedParameters.ClientHandle, c.dv})
		}
	}
	mis.Mu.Unlock()
	if len(targets) > 0 {
		// One allocation per batch; the publish loops keep pointers into it.
		notes := make([]ua.MonitoredItemNotification, len(targets))
		for k, t := range targets {
			notes[k] = ua.MonitoredItemNotification{ClientHandle: t.handle, Value: t.dv}
			s.deliverLocked(t.sub, &notes[k])
		}
	}
	clear(targets)
	s.targets = targets[:0]
}

// deliverLocked sends n to sub's publish loop. It blocks while the loop is
// busy sending a Publish response, but never forever: see stallTimeout.
// The caller holds notifyMu and no gopcua lock.
func (s *Server) deliverLocked(sub *server.Subscription, n *ua.MonitoredItemNotification) {
	select {
	case sub.NotifyChannel <- n:
		s.notified.Add(1)
		if len(s.stalled) > 0 {
			delete(s.stalled, sub)
		}
		return
	default:
	}
	if !s.subAlive(sub) {
		delete(s.stalled, sub)
		s.dropped.Add(1)
		return
	}
	if _, ok := s.stalled[sub]; ok {
		s.dropped.Add(1)
		return
	}
	deadline := time.Now().Add(stallTimeout)
	t := time.NewTimer(stallCheck)
	defer t.Stop()
	for {
		select {
		case sub.NotifyChannel <- n:
			s.notified.Add(1)
			return
		case <-s.stop:
			s.dropped.Add(1)
			return
		case <-t.C:
			if !s.subAlive(sub) {
				s.dropped.Add(1)
				return
			}
			if time.Now().After(deadline) {
				s.stalled[sub] = struct{}{}
				s.dropped.Add(1)
				s.log.Warn("subscription stalled; dropping its notifications until it takes one again",
					zap.Uint32("subscription", sub.ID), zap.Duration("waited", stallTimeout))
				return
			}
			t.Reset(stallCheck)
		}
	}
}

// subAlive reports whether sub is still the live subscription with its id.
func (s *Server) subAlive(sub *server.Subscription) bool {
	ss := s.lib.SubscriptionService
	ss.Mu.Lock()
	defer ss.Mu.Unlock()
	return ss.Subs[sub.ID] == sub
}
