//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sqlite

import (
	"errors"
	"os"
	"syscall"
)

const flockSupported = true

// tryFlock takes (lockShared, lockExclusive) or releases (lockNone) a
// flock(2) lock on f without blocking; false means another open file holds
// a conflicting lock.
func tryFlock(f *os.File, kind int) (bool, error) {
	how := syscall.LOCK_UN
	switch kind {
	case lockShared:
		how = syscall.LOCK_SH | syscall.LOCK_NB
	case lockExclusive:
		how = syscall.LOCK_EX | syscall.LOCK_NB
	}
	for {
		err := syscall.Flock(int(f.Fd()), how)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		default:
			return false, err
		}
	}
}
