package main

import (
	"os"
	"syscall"
	"unsafe"
)

// unreadBytes returns how many bytes written to the pipe f are not read
// yet; ok is false when f is not a pipe.
func unreadBytes(f *os.File) (n int, ok bool) {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		return 0, false
	}
	var v int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TIOCINQ, uintptr(unsafe.Pointer(&v))); errno != 0 {
		return 0, false
	}
	return int(v), true
}
