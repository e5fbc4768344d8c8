package bridge

import (
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
