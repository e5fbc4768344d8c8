//go:build unix

package bridge

import (
	"errors"
	"syscall"
)

// abortiveClose sets SO_LINGER 0 on a new socket: close sends RST and
// drops unsent data.
func abortiveClose(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptLinger(int(fd), syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
	})
	return errors.Join(err, serr)
}
