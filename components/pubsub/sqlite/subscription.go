package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tandemrun/tandem/components/pubsub"
)

// fillBatch bounds how many new messages one pull copies into the group's
// deliveries, so a large backlog is taken over in steps.
const fillBatch = 1000

// Redelivery backoff after a handler error: 100ms, doubled per attempt.
const (
	nackBackoff    = 100 * time.Millisecond
	maxNackBackoff = 10 * time.Second
)

// subscription pulls one topic for one consumer group.
type subscription struct {
	p           *PubSub
	db          *sql.DB
	topic       string
	group       string
	startFrom   string
	concurrency int
	d           *pubsub.Dispatcher
	log         *slog.Logger

	wakeCh   chan struct{} // a Publish of this instance to the topic
	freedCh  chan struct{} // a handler slot freed while all were busy
	inflight atomic.Int64  // deliveries handed to the dispatcher, not yet settled
}

// claimed is one delivery leased by this subscription.
type claimed struct {
	id          int64
	attempts    int64 // before this delivery
	data        []byte
	contentType string
	metadata    map[string]string
}

func (s *subscription) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// ensureCursor registers the group on the topic, once: from the oldest
// message held (earliest) or after the newest one (latest).
func (s *subscription) ensureCursor(ctx context.Context, tx *sql.Tx) error {
	_, err := s.p.st.exec(ctx, tx, `INSERT OR IGNORE INTO pubsub_cursors (consumer_group, topic, last_id, created_at)
		VALUES (?, ?, CASE WHEN ? THEN (SELECT COALESCE(MAX(id), 0) FROM pubsub_messages) ELSE 0 END, ?)`,
		s.group, s.topic, s.startFrom == startLatest, time.Now().UnixMilli())
	return err
}

// run pulls until ctx ends: whenever handler slots are free and there is
// work, and otherwise every pollInterval or when woken.
func (s *subscription) run(ctx context.Context) {
	cfg := s.p.cfg
	backoff := 100 * time.Millisecond
	timer := time.NewTimer(cfg.pollInterval)
	defer timer.Stop()
	for ctx.Err() == nil {
		free := s.concurrency - int(s.inflight.Load())
		if free > 0 {
			n, err := s.pull(ctx, free)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("pulling messages failed; retrying", "error", err, "retry_in", backoff.String())
				sleep(ctx, backoff)
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
			if n >= free {
				continue // the slots are full again or more is waiting
			}
		}
		timer.Reset(cfg.pollInterval)
		select {
		case <-ctx.Done():
			return
		case <-s.wakeCh:
		case <-s.freedCh:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// pull leases up to limit ready deliveries and dispatches them. It returns
// how many rows it looked at (leased or found expired).
func (s *subscription) pull(ctx context.Context, limit int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.p.cfg.timeout)
	defer cancel()
	now := time.Now().UnixMilli()
	// A read first: idle pollers must not take the write lock.
	var work bool
	err := s.p.st.queryRow(ctx, nil, `SELECT
		EXISTS (SELECT 1 FROM pubsub_messages WHERE topic = ? AND id >
			COALESCE((SELECT last_id FROM pubsub_cursors WHERE consumer_group = ? AND topic = ?), -1))
		OR EXISTS (SELECT 1 FROM pubsub_deliveries WHERE consumer_group = ? AND topic = ? AND lease_until <= ?)`,
		s.topic, s.group, s.topic, s.group, s.topic, now).Scan(&work)
	if err != nil {
		return 0, fmt.Errorf("look for messages: %w", err)
	}
	if !work {
		return 0, nil
	}
	var (
		got  []claimed
		seen int
	)
	err = s.p.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		got, seen, err = s.claim(ctx, tx, limit)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("lease messages: %w", err)
	}
	for i, c := range got {
		s.inflight.Add(1)
		if err := s.d.Dispatch(s.delivery(c)); err != nil {
			// Stopping: give back what this pull leased and did not hand over.
			s.inflight.Add(-1)
			s.release(got[i:])
			return seen, err
		}
	}
	return seen, nil
}

// claim copies new messages into the group's deliveries and leases up to
// limit ready ones, in the caller's transaction.
func (s *subscription) claim(ctx context.Context, tx *sql.Tx, limit int) ([]claimed, int, error) {
	now := time.Now().UnixMilli()
	var last int64
	err := s.p.st.queryRow(ctx, tx, `SELECT last_id FROM pubsub_cursors WHERE consumer_group = ? AND topic = ?`, s.group, s.topic).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		// Someone removed the cursor by hand: register again.
		if err = s.ensureCursor(ctx, tx); err == nil {
			err = s.p.st.queryRow(ctx, tx, `SELECT last_id FROM pubsub_cursors WHERE consumer_group = ? AND topic = ?`, s.group, s.topic).Scan(&last)
		}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read cursor: %w", err)
	}
	var upTo sql.NullInt64
	if err := s.p.st.queryRow(ctx, tx, `SELECT MAX(id) FROM (SELECT id FROM pubsub_messages WHERE topic = ? AND id > ? ORDER BY id LIMIT ?)`,
		s.topic, last, fillBatch).Scan(&upTo); err != nil {
		return nil, 0, fmt.Errorf("find new messages: %w", err)
	}
	if upTo.Valid {
		if _, err := s.p.st.exec(ctx, tx, `INSERT OR IGNORE INTO pubsub_deliveries (consumer_group, topic, message_id)
			SELECT ?, ?, id FROM pubsub_messages
			WHERE topic = ? AND id > ? AND id <= ? AND (expires_at IS NULL OR expires_at > ?)`,
			s.group, s.topic, s.topic, last, upTo.Int64, now); err != nil {
			return nil, 0, fmt.Errorf("copy new messages: %w", err)
		}
		if _, err := s.p.st.exec(ctx, tx, `UPDATE pubsub_cursors SET last_id = ? WHERE consumer_group = ? AND topic = ?`,
			upTo.Int64, s.group, s.topic); err != nil {
			return nil, 0, fmt.Errorf("advance cursor: %w", err)
		}
	}

	rows, err := s.p.st.query(ctx, tx, `SELECT d.message_id, d.attempts, m.id, m.data, m.content_type, m.metadata, m.expires_at
		FROM pubsub_deliveries d LEFT JOIN pubsub_messages m ON m.id = d.message_id
		WHERE d.consumer_group = ? AND d.topic = ? AND d.lease_until <= ?
		ORDER BY d.message_id LIMIT ?`, s.group, s.topic, now, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("read ready deliveries: %w", err)
	}
	var (
		ready []claimed
		gone  []int64 // deleted or expired messages
	)
	for rows.Next() {
		var (
			c        claimed
			present  sql.NullInt64
			ct, md   sql.NullString
			expireAt sql.NullInt64
		)
		if err := rows.Scan(&c.id, &c.attempts, &present, &c.data, &ct, &md, &expireAt); err != nil {
			_ = rows.Close()
			return nil, 0, fmt.Errorf("read ready deliveries: %w", err)
		}
		if !present.Valid || expireAt.Valid && expireAt.Int64 <= now {
			gone = append(gone, c.id)
			continue
		}
		if c.data == nil {
			c.data = []byte{}
		}
		c.contentType = ct.String
		if md.Valid && md.String != "" {
			if err := json.Unmarshal([]byte(md.String), &c.metadata); err != nil {
				s.log.Warn("message metadata is not a JSON object of strings; delivering without it", "message_id", c.id, "error", err)
			}
		}
		ready = append(ready, c)
	}
	if err := rows.Close(); err != nil {
		return nil, 0, fmt.Errorf("read ready deliveries: %w", err)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read ready deliveries: %w", err)
	}
	for _, id := range gone {
		if _, err := s.p.st.exec(ctx, tx, `DELETE FROM pubsub_deliveries WHERE consumer_group = ? AND topic = ? AND message_id = ?`,
			s.group, s.topic, id); err != nil {
			return nil, 0, fmt.Errorf("drop expired delivery: %w", err)
		}
	}
	leaseUntil := now + s.p.cfg.processingTimeout.Milliseconds()
	for _, c := range ready {
		if _, err := s.p.st.exec(ctx, tx, `UPDATE pubsub_deliveries SET lease_until = ?, lease_owner = ?, attempts = attempts + 1
			WHERE consumer_group = ? AND topic = ? AND message_id = ?`,
			leaseUntil, s.p.owner, s.group, s.topic, c.id); err != nil {
			return nil, 0, fmt.Errorf("lease delivery: %w", err)
		}
	}
	return ready, len(ready) + len(gone), nil
}

// delivery wraps a leased message for the dispatcher.
func (s *subscription) delivery(c claimed) pubsub.Delivery {
	return pubsub.Delivery{
		Msg: &pubsub.Message{
			Topic:       s.topic,
			Data:        c.data,
			ContentType: c.contentType,
			Metadata:    c.metadata,
			ID:          strconv.FormatInt(c.id, 10),
			Redelivered: c.attempts > 0,
		},
		Ack: func(ctx context.Context) error {
			return s.p.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
				_, err := s.p.st.exec(ctx, tx, `DELETE FROM pubsub_deliveries WHERE consumer_group = ? AND topic = ? AND message_id = ?`,
					s.group, s.topic, c.id)
				return err
			})
		},
		Nack: func(ctx context.Context, cause error) error {
			return s.unlease(ctx, c.id, nackDelay(c.attempts+1, cause))
		},
		Done: func() {
			if s.inflight.Add(-1) == int64(s.concurrency-1) {
				s.signal(s.freedCh)
			}
		},
	}
}

// unlease makes a delivery this instance leased ready again after delay.
// A lease that expired and was taken by another instance is left alone.
func (s *subscription) unlease(ctx context.Context, id int64, delay time.Duration) error {
	return s.p.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := s.p.st.exec(ctx, tx, `UPDATE pubsub_deliveries SET lease_until = ?, lease_owner = ''
			WHERE consumer_group = ? AND topic = ? AND message_id = ? AND lease_owner = ?`,
			time.Now().Add(delay).UnixMilli(), s.group, s.topic, id, s.p.owner)
		return err
	})
}

// release gives back leased deliveries that were never handed to the
// handler, so another instance takes them at once.
func (s *subscription) release(cs []claimed) {
	ctx, cancel := context.WithTimeout(context.Background(), s.p.cfg.timeout)
	defer cancel()
	for _, c := range cs {
		if err := s.unlease(ctx, c.id, 0); err != nil {
			s.log.Warn("releasing a leased message failed; it is redelivered when its lease expires",
				"message_id", c.id, "error", err)
		}
	}
}

// nackDelay is how long a message waits after its attempt-th delivery
// failed. A delivery given back because the subscription stopped is ready
// at once.
func nackDelay(attempt int64, cause error) time.Duration {
	if errors.Is(cause, context.Canceled) {
		return 0
	}
	d := nackBackoff
	for i := int64(1); i < attempt && d < maxNackBackoff; i++ {
		d *= 2
	}
	return min(d, maxNackBackoff)
}
