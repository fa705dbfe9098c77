//go:build unix && !linux

package rawio

import "syscall"

// peek looks at one byte of fd without taking it or waiting: nil when
// there is one or at end of stream, EAGAIN when there is nothing yet.
func peek(fd uintptr) error {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err
}
