package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// maxBatch bounds how many writes share one transaction.
const maxBatch = 128

// writeReq is one write waiting for the writer.
type writeReq struct {
	ctx  context.Context // only checked before fn runs
	fn   func(ctx context.Context, tx *sql.Tx) error
	done chan error
}

// write runs fn in a transaction and returns once it is committed (nil) or
// failed. Writes of this instance go through one goroutine, which commits
// those that queued up meanwhile together (each in its own savepoint, so
// one failing write does not undo the others): one commit per batch
// instead of per publish or ack, and no in-process contention for
// SQLite's single write lock. Between instances (processes) the lock goes
// round by turns (turn.go).
func (p *PubSub) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	r := writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case p.writes <- r:
	case <-p.writerDone:
		return errors.New("component is closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	// Wait for the outcome even if ctx ends: the batch is bounded by the
	// timeout metadata, and the caller must know whether fn committed.
	return <-r.done
}

// writer commits queued writes until writerStop is closed.
func (p *PubSub) writer() {
	defer close(p.writerDone)
	for {
		select {
		case r := <-p.writes:
			p.commit(r)
		case <-p.writerStop:
			return
		}
	}
}

// commit runs first and the writes queued behind it in one transaction and
// reports each write's result. The batch is collected once this instance
// has its turn (turn.go), so what queued while it waited goes along.
func (p *PubSub) commit(first writeReq) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.timeout)
	defer cancel()
	start := time.Now()
	held := p.turn.lock(ctx, p.cfg.busyTimeout)
	batch := []writeReq{first}
drain:
	for len(batch) < maxBatch {
		select {
		case r := <-p.writes:
			batch = append(batch, r)
		default:
			break drain
		}
	}
	results := make([]error, len(batch))
	err := func() error {
		tx, err := p.db.BeginTx(ctx, nil)
		p.stats.lockWait(time.Since(start))
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		defer func() { _ = tx.Rollback() }()
		single := len(batch) == 1
		for i, r := range batch {
			if err := r.ctx.Err(); err != nil {
				results[i] = err
				continue
			}
			if single {
				if results[i] = r.fn(ctx, tx); results[i] != nil {
					return nil // rolled back; the write's own error is reported
				}
				continue
			}
			if _, err := p.st.exec(ctx, tx, `SAVEPOINT w`); err != nil {
				return fmt.Errorf("savepoint: %w", err)
			}
			if results[i] = r.fn(ctx, tx); results[i] != nil {
				if _, err := p.st.exec(ctx, tx, `ROLLBACK TO w`); err != nil {
					return fmt.Errorf("rollback to savepoint: %w", err)
				}
			}
			if _, err := p.st.exec(ctx, tx, `RELEASE w`); err != nil {
				return fmt.Errorf("release savepoint: %w", err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	}()
	if held {
		p.turn.unlock()
	}
	for i, r := range batch {
		if results[i] == nil {
			results[i] = err
		}
		r.done <- results[i]
	}
}

// writeStats records how long this instance waited for the write lock (its
// turn and SQLite's lock), for the tests.
type writeStats struct {
	maxWait atomic.Int64 // nanoseconds
}

func (w *writeStats) lockWait(d time.Duration) {
	for {
		old := w.maxWait.Load()
		if int64(d) <= old || w.maxWait.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}
