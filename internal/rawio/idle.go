package rawio

import (
	"errors"
	"net"
	"syscall"
)

// IdleOpen reports whether an idle connection can still carry a request:
// one non-blocking peek at its socket finds nothing to read. End of
// stream (the peer closed it), an error (a reset) or bytes nobody asked
// for (a goaway, a TLS alert) mean it cannot. A connection that is not a
// socket, or a system without the peek, counts as open: a request on a
// closed one then fails and is retried by its caller's rules.
func IdleOpen(c net.Conn) bool {
	if open, ok := connIdleOpen(c); ok {
		return open
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := true
	err = rc.Read(func(fd uintptr) bool {
		open = peekOpen(fd)
		return true // never wait: one look is the answer
	})
	return err == nil && open
}

// peekOpen is IdleOpen's look at fd.
func peekOpen(fd uintptr) bool {
	for {
		switch err := peek(fd); {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, errNoPeek):
			return true
		default:
			return false // nil: end of stream or data; else an error
		}
	}
}

// errNoPeek: this system cannot peek at a socket.
var errNoPeek = errors.New("rawio: no peek here")
