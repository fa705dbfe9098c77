package httpapi

import (
	"errors"
	"io"
	"sync/atomic"
)

// errBodyTooLarge is the read error of a body over the size limit.
var errBodyTooLarge = errors.New("request body too large")

// limitedBody fails reads once more than left bytes were read, and
// remembers it: the invoker that hit the error may report it in its own
// words, the handler still answers 413.
type limitedBody struct {
	rc       io.ReadCloser
	left     int64
	exceeded atomic.Bool
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.exceeded.Load() {
		return 0, errBodyTooLarge
	}
	// Ask for one byte more than allowed to notice an overflow.
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.rc.Read(p)
	if int64(n) > l.left {
		l.exceeded.Store(true)
		n = int(l.left)
		l.left = 0
		return n, errBodyTooLarge
	}
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

// tooLarge reports whether l (which may be nil) overflowed.
func (l *limitedBody) tooLarge() bool { return l != nil && l.exceeded.Load() }
