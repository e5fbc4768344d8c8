package bridge

import (
	"context"
	"testing"
	"time"

	"github.com/gopcua/opcua"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/simserver"
)

// TestClientSocket: the fence finds the TCP socket of a connected gopcua
// client (an unexported field, dial.go); a gopcua upgrade that moves it
// must fail here, not leave the fence without a socket to reset.
func TestClientSocket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := simserver.New(simserver.Config{Vars: 1, Type: "Double", Logger: zap.NewNop(), JournalMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cl, err := opcua.NewClient(s.Endpoint(), opcua.AutoReconnect(false), opcua.Dialer(sessionDialer()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clientSocket(cl); err == nil {
		t.Error("a socket before Connect")
	}
	if err := cl.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer cl.Close(ctx)
	sock, err := clientSocket(cl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.NamespaceArray(ctx); err != nil {
		t.Fatalf("session unusable before the reset: %v", err)
	}
	if err := abortSocket(sock); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	start := time.Now()
	if _, err := cl.NamespaceArray(rctx); err == nil {
		t.Fatal("a request succeeded on the reset socket: clientSocket returned another socket")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a request on the reset socket failed only after %v", d)
	}
}
