package redundancytest

import (
	"fmt"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"
)

// TestStandbyLearnsTheSourceStatus (issue 14 item 3): the active's
// writes reach the standby's mirror over the peer link with the source's
// status, and a status change with the same value (the fake writes 1
// every time) reaches it too: Good, Bad, Good again.
func TestStandbyLearnsTheSourceStatus(t *testing.T) {
	c, active, standby := activePair(t, Options{})
	sm, am := c.Member(standby).Mirror(), c.Member(active).Mirror()
	wait := func(code ua.StatusCode) {
		t.Helper()
		c.WaitFor(5*time.Second, fmt.Sprintf("the standby to observe status %v", code), func() bool {
			s, n := sm.LastObserved()
			return n > 0 && s.StatusKnown && s.Status == code && s.Value.Value() == float64(1)
		})
	}
	wait(ua.StatusGood)
	am.Set(MirrorOptions{Status: ua.StatusBadSensorFailure})
	wait(ua.StatusBadSensorFailure)
	am.Set(MirrorOptions{})
	wait(ua.StatusGood)
	noViolations(t, c)
}
