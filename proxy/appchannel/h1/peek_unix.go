//go:build unix

package h1

import (
	"errors"
	"net"
	"syscall"
)

// peerOpen reports whether an idle connection is still usable: a
// non-blocking peek finds nothing to read (EAGAIN). End of file means the
// server closed it; bytes mean it broke the protocol.
func peerOpen(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK)
		return true // never wait: one look is the answer
	})
	return err == nil && open
}
