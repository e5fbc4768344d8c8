package main

import (
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/uamirror/uamirror/simserver"
)

// TestSimserverClockControl: "clock step D" moves the server's clock and
// the timestamps it stamps (issue 14 item 2).
func TestSimserverClockControl(t *testing.T) {
	srv, err := simserver.New(simserver.Config{Vars: 1, Type: "Double", Logger: zap.NewNop(), JournalMemory: true,
		ClockOffset: -5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.ClockOffset(); got != -5*time.Minute {
		t.Fatalf("offset %v, want -5m (--clock-offset)", got)
	}
	reply, err := controlLine(srv, "clock step -1h")
	if err != nil || reply != "ok clock offset -1h5m0s" {
		t.Fatalf("clock step -1h: %q, %v", reply, err)
	}
	srv.SetValue(0, 1.0, time.Time{})
	if ts := srv.Value(0).SourceTimestamp; time.Since(ts) < time.Hour {
		t.Fatalf("a value set after a step back of 1h5m is stamped %v (now %v)", ts, time.Now())
	}
	if _, err := controlLine(srv, "clock step soon"); err == nil {
		t.Fatal("clock step soon accepted")
	}
}
