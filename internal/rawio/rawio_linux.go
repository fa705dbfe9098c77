//go:build linux && !race

package rawio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Enabled reports whether this build makes raw reads and writes.
const Enabled = true

// maxRW caps one read or write, as package net does (1 GiB).
const maxRW = 1 << 30

// Conn is a TCP connection whose Read and Write make raw system calls.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu     sync.Mutex
	rbuf    []byte
	rn      int
	rerr    syscall.Errno
	readFn  func(uintptr) bool
	wmu     sync.Mutex
	wbuf    []byte
	wn      int
	werr    syscall.Errno
	wzero   bool // a write took nothing, with no error
	writeFn func(uintptr) bool
	// peekFn is IdleOpen's RawConn callback; it sets idle under rmu.
	peekFn func(uintptr) bool
	idle   bool
}

// Wrap returns c as a Conn when it is a *net.TCPConn, else c itself.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	rw := &Conn{TCPConn: tc, rc: rc}
	rw.readFn = rw.read
	rw.writeFn = rw.write
	rw.peekFn = rw.peek
	return rw
}

// read is the RawConn callback of Read: false asks it to wait until the
// socket is readable.
func (c *Conn) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch e {
		case 0:
			c.rn, c.rerr = int(n), 0
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.rn, c.rerr = 0, e
		return true
	}
}

// Read reads as net.TCPConn.Read does.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return c.TCPConn.Read(p)
	}
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	c.rmu.Lock()
	c.rbuf = p
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerr
	c.rbuf = nil
	c.rmu.Unlock()
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// write is the RawConn callback of Write: it writes the rest of c.wbuf,
// and returns false to wait until the socket is writable.
func (c *Conn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		p := c.wbuf[c.wn:]
		if len(p) > maxRW {
			p = p[:maxRW]
		}
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case 0:
			if n == 0 {
				c.wzero = true
				return true
			}
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = e
			return true
		}
	}
	return true
}

// Write writes all of p, as net.TCPConn.Write does.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return c.TCPConn.Write(p)
	}
	c.wmu.Lock()
	c.wbuf, c.wn, c.werr, c.wzero = p, 0, 0, false
	err := c.rc.Write(c.writeFn)
	n, errno, zero := c.wn, c.werr, c.wzero
	c.wbuf = nil
	c.wmu.Unlock()
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	case zero:
		return n, c.opError("write", io.ErrUnexpectedEOF)
	}
	return n, nil
}

// opError shapes an error as package net's: an *net.OpError whose Err is
// the RawConn's own cause (net.ErrClosed, os.ErrDeadlineExceeded) or the
// system call's. The RawConn's error is an *net.OpError made for this
// call ("raw-read"): it is renamed rather than copied, since net/http's
// server ends a background read by a deadline on every request.
func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		oe.Op, oe.Net, oe.Source, oe.Addr = op, "tcp", c.LocalAddr(), c.RemoteAddr()
		return oe
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// peek is the RawConn callback of IdleOpen.
func (c *Conn) peek(fd uintptr) bool {
	c.idle = peekOpen(fd)
	return true
}

// connIdleOpen is IdleOpen for a Conn, with callbacks made once (the
// generic one allocates a closure per look).
func connIdleOpen(nc net.Conn) (open, ok bool) {
	c, ok := nc.(*Conn)
	if !ok {
		return false, false
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.idle = false
	err := c.rc.Read(c.peekFn)
	return err == nil && c.idle, true
}
