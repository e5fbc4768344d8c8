package uaserver

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
)

// front is the listener clients connect to. Each accepted connection is
// relayed byte for byte to gopcua's own listener on a loopback port, so
// that we hold every client socket and can close them all (gopcua's Close
// leaves them open and offers no way to reach them).
//
// The front owns its accept goroutine and two copy goroutines per
// connection; close waits for all of them.
type front struct {
	ln       net.Listener
	upstream string // host:port of gopcua's listener
	log      *zap.Logger

	wg   sync.WaitGroup
	done chan struct{} // closed by close

	mu     sync.Mutex
	closed bool
	conns  map[*relay]struct{}
}

// relay is one client connection and its upstream twin.
type relay struct {
	client, server net.Conn
	once           sync.Once
}

func (r *relay) close() {
	r.once.Do(func() {
		_ = r.client.Close()
		_ = r.server.Close()
	})
}

func newFront(ln net.Listener, log *zap.Logger) *front {
	return &front{ln: ln, log: log, done: make(chan struct{}), conns: map[*relay]struct{}{}}
}

// start begins accepting; upstream must be listening.
func (f *front) start(upstream string) {
	f.upstream = upstream
	f.wg.Add(1)
	go f.acceptLoop()
}

func (f *front) acceptLoop() {
	defer f.wg.Done()
	backoff := time.Millisecond
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || f.isClosed() {
				return
			}
			// Out of file descriptors and the like: back off like net/http.
			f.log.Warn("accept failed", zap.Error(err), zap.Duration("retry_in", backoff))
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-f.done:
				t.Stop()
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = time.Millisecond
		f.wg.Add(1)
		go f.connect(c)
	}
}

func (f *front) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// connect dials upstream for client c and relays until either side ends.
func (f *front) connect(c net.Conn) {
	defer f.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	var d net.Dialer
	u, err := d.DialContext(ctx, "tcp", f.upstream)
	cancel()
	if err != nil {
		f.log.Warn("relay: dialing gopcua listener failed", zap.Error(err))
		_ = c.Close()
		return
	}
	r := &relay{client: c, server: u}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		r.close()
		return
	}
	f.conns[r] = struct{}{}
	f.mu.Unlock()

	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_, _ = io.Copy(u, c)
		r.close()
	}()
	_, _ = io.Copy(c, u)
	r.close()

	f.mu.Lock()
	delete(f.conns, r)
	f.mu.Unlock()
}

// drop closes every current client connection and returns how many.
func (f *front) drop() int {
	f.mu.Lock()
	rs := make([]*relay, 0, len(f.conns))
	for r := range f.conns {
		rs = append(rs, r)
	}
	f.mu.Unlock()
	for _, r := range rs {
		r.close()
	}
	return len(rs)
}

// close stops accepting, closes every connection and waits for the
// front's goroutines.
func (f *front) close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	close(f.done)
	err := f.ln.Close()
	f.drop()
	f.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
