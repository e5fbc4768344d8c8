package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/oklog/run"
)

// group runs a member's components (raft node and engine, admin API, OPC
// UA face, …) together: the first to return, with or without an error,
// stops the others by cancelling their context, and wait returns only
// after every one has returned.
//
// add must not be called after wait; wait is called once.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	g      run.Group

	mu   sync.Mutex
	errs []error
}

// newGroup returns a group whose components run under a child of ctx:
// cancelling ctx stops them all.
func newGroup(ctx context.Context) *group {
	ctx, cancel := context.WithCancel(ctx)
	return &group{ctx: ctx, cancel: cancel}
}

// add adds the component name; execute must return once its context is
// cancelled.
func (g *group) add(name string, execute func(context.Context) error) {
	g.g.Add(func() error {
		err := execute(g.ctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			g.mu.Lock()
			g.errs = append(g.errs, fmt.Errorf("%s: %w", name, err))
			g.mu.Unlock()
		}
		return err
	}, func(error) { g.cancel() })
}

// wait runs the components until the first returns, stops the rest and
// waits for them. It returns every component's error but cancellation.
func (g *group) wait() error {
	defer g.cancel()
	_ = g.g.Run() // the first error only; every one is in g.errs
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(g.errs...)
}
