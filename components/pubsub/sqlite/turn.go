package sqlite

import (
	"context"
	"errors"
	"os"
	"time"
)

// Why a turn. SQLite has one write lock per file and hands it to whoever
// asks at the right moment: a process that cannot get it sleeps in the busy
// handler (1, 2, 5, ... then 100ms between tries), while the process that
// holds it commits and begins its next transaction microseconds later. An
// instance whose writer always has work queued (a publisher, or a
// subscriber taking and acking a busy topic) therefore keeps the lock for
// as long as it has writes, and the other instances of its consumer group
// wait: hundreds of milliseconds under load, up to busyTimeout, while it
// takes every message.
//
// The turn is taken around every write transaction of this package, on two
// small files beside the database, with flock(2) locks (they belong to an
// open file, so instances in one process exclude each other too, and the
// kernel drops them when a process dies):
//
//   - <file>-tandem-turn is locked exclusively by the instance whose
//     transaction runs;
//   - <file>-tandem-wait is share-locked by instances waiting for it.
//
// A waiter polls the turn every turnPoll instead of sleeping up to 100ms.
// The holder, when it releases the turn and sees waiters, keeps it for its
// next transactions only until they have waited turnQuantum; then it lets
// one of them go first (up to turnYield). So an instance waits about
// turnQuantum per other busy instance, and an instance alone pays a few
// syscalls per transaction. SQLite's lock and busy_timeout stay as they
// were: the turn only orders this package's writers among themselves, and
// correctness never depends on it (other programs, and an instance that
// could not open the files, use SQLite's lock alone).
const (
	turnPoll    = 500 * time.Microsecond // how often a waiter tries the turn
	turnQuantum = 10 * time.Millisecond  // how long the holder keeps it while others wait
	turnYield   = 20 * time.Millisecond  // how long it waits for a waiter to take it over
)

// turn is this instance's side of the handoff. Only the writer goroutine
// uses it.
type turn struct {
	lockFile *os.File // flock LOCK_EX while this instance's transaction runs
	waitFile *os.File // flock LOCK_SH while this instance waits for lockFile

	contended time.Time // first release in this run at which others waited
	yield     bool      // let a waiter go first before the next transaction
}

// errNoFlock is returned by tryFlock where flock(2) does not exist.
var errNoFlock = errors.New("flock is not available on this platform")

// Lock kinds of tryFlock.
const (
	lockShared = iota
	lockExclusive
	lockNone // unlock
)

// openTurn opens (creating) the two lock files beside the database file.
func openTurn(dbPath string) (*turn, error) {
	if !flockSupported {
		return nil, errNoFlock
	}
	lf, err := openLockFile(dbPath + "-tandem-turn")
	if err != nil {
		return nil, err
	}
	wf, err := openLockFile(dbPath + "-tandem-wait")
	if err != nil {
		_ = lf.Close()
		return nil, err
	}
	return &turn{lockFile: lf, waitFile: wf}, nil
}

// openLockFile opens a lock file for writing, or for reading where the
// folder or file is not writable (flock needs either).
func openLockFile(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		if f, rerr := os.Open(name); rerr == nil {
			return f, nil
		}
	}
	return f, err
}

// lock waits for the turn, up to limit or until ctx ends. It reports whether
// this instance holds it; false (waited too long, or the lock files fail)
// means the transaction goes ahead on SQLite's lock alone.
func (t *turn) lock(ctx context.Context, limit time.Duration) bool {
	if t == nil {
		return false
	}
	deadline := time.Now().Add(limit)
	if t.yield {
		t.yield = false
		t.contended = time.Time{}
		t.letWaiterGo(ctx, time.Now().Add(min(limit, turnYield)))
	}
	if ok, err := tryFlock(t.lockFile, lockExclusive); ok || err != nil {
		return ok
	}
	// Someone holds it: say so, and poll.
	marked := false
	defer func() {
		if marked {
			_, _ = tryFlock(t.waitFile, lockNone)
		}
	}()
	timer := time.NewTimer(turnPoll)
	defer timer.Stop()
	for {
		if !marked {
			// Fails only while a holder checks for waiters; try again next time.
			marked, _ = tryFlock(t.waitFile, lockShared)
		}
		if ok, err := tryFlock(t.lockFile, lockExclusive); ok || err != nil {
			// It was someone else's turn: a new run starts.
			t.contended = time.Time{}
			return ok
		}
		if !time.Now().Before(deadline) {
			return false
		}
		timer.Reset(turnPoll)
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
		}
	}
}

// letWaiterGo returns once an instance that was waiting has taken the
// turn, nobody waits any more, or deadline passes.
func (t *turn) letWaiterGo(ctx context.Context, deadline time.Time) {
	timer := time.NewTimer(turnPoll)
	defer timer.Stop()
	for time.Now().Before(deadline) && t.othersWaiting() {
		ok, err := tryFlock(t.lockFile, lockExclusive)
		if err != nil || !ok {
			return // taken over (or the files fail: lock finds out)
		}
		// Nobody took it yet: give it back and look again.
		if _, err := tryFlock(t.lockFile, lockNone); err != nil {
			return
		}
		timer.Reset(turnPoll)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// unlock releases the turn after a transaction and decides whether the
// next one waits for others first.
func (t *turn) unlock() {
	if t == nil {
		return
	}
	_, _ = tryFlock(t.lockFile, lockNone)
	if !t.othersWaiting() {
		t.contended = time.Time{}
		return
	}
	now := time.Now()
	if t.contended.IsZero() {
		t.contended = now
	}
	if now.Sub(t.contended) >= turnQuantum {
		t.yield = true
	}
}

// othersWaiting reports whether another instance share-locks the wait
// file. This instance must not hold it itself.
func (t *turn) othersWaiting() bool {
	ok, err := tryFlock(t.waitFile, lockExclusive)
	if err != nil {
		return false
	}
	if !ok {
		return true
	}
	_, _ = tryFlock(t.waitFile, lockNone)
	return false
}

// close releases the files (and with them any lock).
func (t *turn) close() {
	if t == nil {
		return
	}
	_ = t.lockFile.Close()
	_ = t.waitFile.Close()
}
