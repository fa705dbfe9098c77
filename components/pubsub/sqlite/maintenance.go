package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// renewLoop extends this instance's leases while their handlers run, so a
// handler slower than processingTimeout is not handed to another instance
// meanwhile. Leases of a killed process are not renewed and expire.
func (p *PubSub) renewLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.processingTimeout / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		idle := len(p.subs) == 0
		p.mu.Unlock()
		if idle {
			continue
		}
		wctx, cancel := context.WithTimeout(context.Background(), p.cfg.timeout)
		err := p.write(wctx, func(ctx context.Context, tx *sql.Tx) error {
			_, err := p.st.exec(ctx, tx, `UPDATE pubsub_deliveries SET lease_until = ? WHERE lease_owner = ?`,
				time.Now().Add(p.cfg.processingTimeout).UnixMilli(), p.owner)
			return err
		})
		cancel()
		if err != nil {
			p.log.Warn("renewing message leases failed; messages whose handlers run longer than processingTimeout may be redelivered meanwhile", "error", err)
		}
	}
}

// cleanupLoop deletes old messages now and every cleanupInterval.
func (p *PubSub) cleanupLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.cleanupInterval)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(context.Background(), p.cfg.timeout)
		n, err := p.cleanup(cctx, time.Now())
		cancel()
		switch {
		case err != nil:
			p.log.Warn("deleting old messages failed; will retry", "error", err)
		case n > 0:
			p.log.Debug("deleted old messages", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// cleanup deletes expired messages (and their deliveries) and messages
// older than retention that no consumer group of their topic still needs.
// Several processes may run it at once: it only deletes what is finished.
func (p *PubSub) cleanup(ctx context.Context, now time.Time) (int64, error) {
	var deleted int64
	err := p.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		nowMS := now.UnixMilli()
		if _, err := p.st.exec(ctx, tx, `DELETE FROM pubsub_deliveries WHERE message_id IN
			(SELECT id FROM pubsub_messages WHERE expires_at IS NOT NULL AND expires_at <= ?)`, nowMS); err != nil {
			return fmt.Errorf("delete deliveries of expired messages: %w", err)
		}
		res, err := p.st.exec(ctx, tx, `DELETE FROM pubsub_messages WHERE expires_at IS NOT NULL AND expires_at <= ?`, nowMS)
		if err != nil {
			return fmt.Errorf("delete expired messages: %w", err)
		}
		n1, _ := res.RowsAffected()
		res, err = p.st.exec(ctx, tx, `DELETE FROM pubsub_messages
			WHERE published_at < ?
			AND NOT EXISTS (SELECT 1 FROM pubsub_deliveries d WHERE d.message_id = pubsub_messages.id)
			AND NOT EXISTS (SELECT 1 FROM pubsub_cursors c WHERE c.topic = pubsub_messages.topic AND c.last_id < pubsub_messages.id)`,
			now.Add(-p.cfg.retention).UnixMilli())
		if err != nil {
			return fmt.Errorf("delete delivered messages older than retention: %w", err)
		}
		n2, _ := res.RowsAffected()
		deleted = n1 + n2
		return nil
	})
	return deleted, err
}
