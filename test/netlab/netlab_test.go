package netlab

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestLab: a listener in h1 is reachable from h2 through the lab (via
// InNS and Dialer), not after a cut, and again after the heal.
func TestLab(t *testing.T) {
	l := New(t, 2)
	var ln net.Listener
	if err := l.InNS("h1", func() (err error) {
		ln, err = net.Listen("tcp", l.IP("h1")+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dial := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		c, err := l.Dialer("h2")(ctx, "tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("h2 → h1: %v", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), 200*time.Millisecond); err == nil {
		t.Errorf("the root namespace reached a lab address")
	}
	l.Cut("h1", "h2")
	if err := dial(); err == nil {
		t.Fatalf("h2 → h1 connected through a cut")
	}
	l.Heal("h1", "h2")
	if err := dial(); err != nil {
		t.Fatalf("h2 → h1 after the heal: %v", err)
	}
}
