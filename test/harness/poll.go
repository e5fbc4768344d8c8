package harness

import (
	"net/http"
	"testing"
	"time"
)

// PollEvery is how often WaitState and Holds poll: members are
// race-instrumented processes on a small shared machine, and polling
// every few milliseconds would load them more than the test. A test
// package may set it once, in init, before any test runs.
var PollEvery = 25 * time.Millisecond

// WaitState polls cond until it reports true and fails the test after
// timeout with msg and the last state cond described.
func WaitState(t testing.TB, timeout time.Duration, msg string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(PollEvery)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last seen: %s", timeout, msg, state)
		}
		<-tick.C
	}
}

// Holds is WaitState's opposite for things that must NOT happen: it
// polls cond for the whole of d and fails the test at the first poll
// where it is false. "Nothing happens" has no event to wait on, so d is
// chosen as several times the timer that would make it happen.
func Holds(t testing.TB, d time.Duration, msg string, cond func() (bool, string)) (polls int) {
	t.Helper()
	end := time.Now().Add(d)
	tick := time.NewTicker(4 * PollEvery)
	defer tick.Stop()
	for {
		ok, state := cond()
		if !ok {
			t.Fatalf("%s broke after %d polls: %s", msg, polls, state)
		}
		polls++
		if time.Now().After(end) {
			return polls
		}
		<-tick.C
	}
}

// TokenTransport sends a bearer token (an admin API token) with every
// request through Base.
type TokenTransport struct {
	Token string
	Base  http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *TokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.Token)
	return t.Base.RoundTrip(r)
}
