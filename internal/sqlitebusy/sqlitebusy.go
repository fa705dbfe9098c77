// Package sqlitebusy recognises SQLite's "another connection holds the
// lock" errors (SQLITE_BUSY, SQLITE_LOCKED) from modernc.org/sqlite and
// retries an operation through them. Several sidecars start on one shared
// file at the same time; the one that loses a race for the lock at start-up
// (setting WAL mode, creating tables) gets SQLITE_BUSY at once rather than
// through busy_timeout, and should simply try again.
package sqlitebusy

import (
	"context"
	"errors"
	"fmt"
	"time"

	msqlite "modernc.org/sqlite"
)

// Is reports SQLITE_BUSY or SQLITE_LOCKED (any extended code).
func Is(err error) bool {
	var e *msqlite.Error
	if errors.As(err, &e) {
		c := e.Code() & 0xff
		return c == 5 || c == 6
	}
	return false
}

// Retry runs op until it returns nil or an error that is not Is, waiting a
// little longer after each busy attempt (50 ms, 100 ms, … capped at
// 500 ms), up to ctx.
func Retry(ctx context.Context, op func() error) error {
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || !Is(err) {
			return err
		}
		wait := time.Duration(min(attempt, 10)) * 50 * time.Millisecond
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}
