//go:build !unix

package bridge

import "syscall"

// abortiveClose is a no-op where SO_LINGER is not set this way.
func abortiveClose(_, _ string, _ syscall.RawConn) error { return nil }
