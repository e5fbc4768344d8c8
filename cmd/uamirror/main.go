// Command uamirror mirrors process data between OPC UA servers and keeps
// doing so through the failure of a machine, a process or a link.
//
// This package is the composition root: the only place that reads flags,
// environment and config files and wires the library packages together.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// exitError carries a process exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "uamirror:", ee.err)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "uamirror:", err)
	os.Exit(1)
}

var (
	errNoConfig  = errors.New("no config: pass --config FILE (or set UAMIRROR_CONFIG)")
	errBadConfig = errors.New("config is not valid; not started")
)
