//go:build linux || darwin || freebsd

package transport

import (
	"errors"
	"net"
	"syscall"
)

// peerClosed reports whether an idle connection can no longer carry a
// call: the peer closed it, reset it, or sent something (a goaway, a TLS
// alert) although no call is open. One non-blocking peek at the socket.
func peerClosed(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr != nil:
			closed = !errors.Is(rerr, syscall.EAGAIN) && !errors.Is(rerr, syscall.EWOULDBLOCK) && !errors.Is(rerr, syscall.EINTR)
		default:
			closed = n >= 0 // 0: end of stream; more: data nobody asked for
		}
		return true
	})
	return closed || err != nil
}
