package rawio

import (
	"syscall"
	"unsafe"
)

// peek looks at one byte of fd without taking it or waiting: nil when
// there is one or at end of stream, EAGAIN when there is nothing yet. A
// raw system call, so as not to wake the runtime's monitor (see Conn).
func peek(fd uintptr) error {
	var b [1]byte
	_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
