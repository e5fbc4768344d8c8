//go:build unix

package bridge

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestSessionDialerClosesAbortively: a session's socket ends with a
// reset, so that nothing it still holds is delivered after the close.
func TestSessionDialerClosesAbortively(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := sessionDialer().Dialer.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var srv net.Conn
	select {
	case srv = <-accepted:
	case <-ctx.Done():
		t.Fatal("no connection accepted")
	}
	defer srv.Close()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_ = srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(srv)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the peer saw %v after the close, want a reset (ECONNRESET); a graceful close would be nil (EOF)", err)
	}
}
