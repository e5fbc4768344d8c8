package main

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestGroupOneFailingStopsAll: when one component fails, the others are
// cancelled, wait returns only after all have returned, and the error
// names the component.
func TestGroupOneFailingStopsAll(t *testing.T) {
	g := newGroup(context.Background())
	var stopped atomic.Int32
	for _, name := range []string{"admin API", "OPC UA endpoint"} {
		g.add(name, func(ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(20 * time.Millisecond) // a slow shutdown: wait must wait for it
			stopped.Add(1)
			return ctx.Err()
		})
	}
	boom := errors.New("raft: data dir not writable")
	g.add("pair node", func(context.Context) error { return boom })
	done := make(chan error, 1)
	go func() { done <- g.wait() }()
	select {
	case err := <-done:
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "pair node: ") {
			t.Errorf("wait = %v, want the node's error, named", err)
		}
		if n := stopped.Load(); n != 2 {
			t.Errorf("wait returned with %d of 2 components stopped", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("one component failed and the group did not stop")
	}
}

// TestGroupCleanReturnStopsAll: a component that returns without an
// error (an admin API whose listener closed) also stops the member;
// cancellation of the parent is no error.
func TestGroupCleanReturnStopsAll(t *testing.T) {
	for _, tc := range []struct {
		name   string
		parent bool // stop by cancelling the parent instead
	}{{"component returns", false}, {"parent cancelled", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			g := newGroup(ctx)
			blocked := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
			g.add("pair node", blocked)
			g.add("OPC UA endpoint", blocked)
			if tc.parent {
				g.add("admin API", blocked)
				cancel()
			} else {
				g.add("admin API", func(context.Context) error { return nil })
			}
			done := make(chan error, 1)
			go func() { done <- g.wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("wait = %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the group did not stop")
			}
		})
	}
}
