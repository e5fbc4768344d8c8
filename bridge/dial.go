package bridge

import (
	"errors"
	"net"
	"reflect"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/uacp"
)

// sessionDialer is the dialer of every session's connection. Its sockets
// close abortively (SO_LINGER 0, where the platform allows it): closing a
// faulted session discards what the kernel still holds unsent, instead of
// retransmitting it once the network heals. Without it, a Write request
// stuck behind a cut link reached the target seconds later — after a new
// active had written newer values, and after this node had lost its
// lease — and the server applied it: an old value after a newer one and
// two writers (found by the fault matrix's soak, test/fault).
func sessionDialer() *uacp.Dialer {
	d := opcua.DefaultDialer()
	d.Dialer.Control = abortiveClose
	return d
}

// errNoSocket means a connected client's TCP socket could not be found.
var errNoSocket = errors.New("the session's TCP socket is not reachable (gopcua's Client layout changed?): the write fence could not reset it")

// clientSocket returns the TCP socket of a connected client, so that the
// lease watcher can close it itself (abortively: sessionDialer) without
// going through the client, whose Close first sends CloseSession and
// waits for the answer with the socket open.
//
// gopcua v0.9.0 keeps the socket in the unexported field Client.conn
// (*uacp.Conn, which embeds *net.TCPConn) and offers no accessor; its
// uacp.Dialer dials through a concrete *net.Dialer, so no dialer of ours
// can hand the socket back either. The field is read once, after Connect
// returned, by the goroutine that called Connect, and its type is
// checked: a gopcua upgrade that moves it fails TestClientSocket and
// every session start (errNoSocket) instead of silently losing the fence.
func clientSocket(cl *opcua.Client) (*net.TCPConn, error) {
	if cl == nil {
		return nil, errNoSocket
	}
	f := reflect.ValueOf(cl).Elem().FieldByName("conn")
	if !f.IsValid() || f.Type() != reflect.TypeOf((*uacp.Conn)(nil)) || f.IsNil() {
		return nil, errNoSocket
	}
	c := (*uacp.Conn)(f.UnsafePointer())
	if c.TCPConn == nil {
		return nil, errNoSocket
	}
	return c.TCPConn, nil
}

// abortSocket closes a session's socket at once. With SO_LINGER 0 the
// kernel sends RST and drops its send queue; every goroutine blocked on
// the socket (a keep-alive Read, a Write) returns with an error. Closing
// a net.Conn is safe concurrently with its readers and writers.
func abortSocket(c net.Conn) error { return c.Close() }
