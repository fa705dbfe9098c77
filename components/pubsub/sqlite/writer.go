package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
// SQLite's single write lock. Other processes wait in busy_timeout.
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
		var batch []writeReq
		select {
		case r := <-p.writes:
			batch = append(batch, r)
		case <-p.writerStop:
			return
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-p.writes:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		p.commit(batch)
	}
}

// commit runs one batch in one transaction and reports each write's result.
func (p *PubSub) commit(batch []writeReq) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.timeout)
	defer cancel()
	results := make([]error, len(batch))
	err := func() error {
		tx, err := p.db.BeginTx(ctx, nil)
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
	for i, r := range batch {
		if results[i] == nil {
			results[i] = err
		}
		r.done <- results[i]
	}
}
