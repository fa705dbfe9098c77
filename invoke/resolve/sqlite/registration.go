package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tandemrun/tandem/internal/sqlitebusy"
)

// errRegistrationLost means our row is gone (deleted by another process's
// cleanup, or taken over by a sidecar with the same address).
var errRegistrationLost = errors.New("host registration lost")

// register inserts this sidecar's row. The address is unique: REPLACE takes
// over the row of a previous process that listened on the same address.
func (r *Resolver) register(ctx context.Context) error {
	if r.regID == "" {
		r.regID = newRegistrationID()
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	_, err := r.db.ExecContext(ctx, fmt.Sprintf(
		`REPLACE INTO %s (registration_id, address, app_id, namespace, last_update)
VALUES (?, ?, ?, ?, unixepoch(CURRENT_TIMESTAMP))`, r.opts.TableName),
		r.regID, r.addr, r.self.AppID, r.self.Namespace)
	return err
}

// renew refreshes last_update; errRegistrationLost when the row is gone.
func (r *Resolver) renew(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	q := fmt.Sprintf(`UPDATE %s SET last_update = unixepoch(CURRENT_TIMESTAMP)
WHERE registration_id = ? AND address = ?`, r.opts.TableName)
	for {
		res, err := r.db.ExecContext(ctx, q, r.regID, r.addr)
		if err == nil {
			if n, _ := res.RowsAffected(); n == 0 {
				return errRegistrationLost
			}
			return nil
		}
		// Retry briefly while another process holds the write lock.
		if !sqlitebusy.Is(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *Resolver) deregister(ctx context.Context) error {
	res, err := r.db.ExecContext(ctx, fmt.Sprintf(
		"DELETE FROM %s WHERE registration_id = ? AND address = ?", r.opts.TableName),
		r.regID, r.addr)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errors.New("no row deleted (already removed by another process)")
	}
	return nil
}

// heartbeat renews the row every updateInterval - timeout, so a renewal
// that takes the whole timeout still lands before the row goes stale.
func (r *Resolver) heartbeat(ctx context.Context) {
	t := time.NewTicker(r.opts.UpdateInterval - r.opts.Timeout)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := r.renew(ctx)
		if errors.Is(err, errRegistrationLost) {
			// Dapr exits here; re-inserting keeps the sidecar reachable.
			r.log.Warn("name resolution row was removed by another process; registering again", "address", r.addr)
			err = r.register(ctx)
		}
		if err != nil && ctx.Err() == nil {
			r.log.Error("renew name resolution registration", "address", r.addr, "error", err)
		}
	}
}

// cleanupLoop deletes stale rows now and every cleanupInterval.
func (r *Resolver) cleanupLoop(ctx context.Context) {
	t := time.NewTicker(r.opts.CleanupInterval)
	defer t.Stop()
	for {
		n, err := r.cleanup(ctx, r.staleAfter())
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("remove stale name resolution rows", "error", err)
		case n > 0:
			r.log.Info("removed stale name resolution rows", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// staleAfter is the age at which cleanup deletes a row. It is longer than
// updateInterval (when Resolve stops returning the row) so a live but slow
// sidecar — a daprd exits when it loses its row — is not deleted.
func (r *Resolver) staleAfter() time.Duration {
	return 3 * r.opts.UpdateInterval
}

// cleanup deletes rows older than staleAfter, unless another process
// cleaned up within cleanupInterval: the "nr-last-cleanup" metadata row is
// updated atomically and only the process that updates it proceeds.
func (r *Resolver) cleanup(ctx context.Context, staleAfter time.Duration) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	res, err := r.db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %s (key, value)
VALUES (?, CURRENT_TIMESTAMP)
ON CONFLICT (key) DO UPDATE SET value = CURRENT_TIMESTAMP
WHERE unixepoch(CURRENT_TIMESTAMP) - unixepoch(value) > ?`, r.opts.MetadataTableName),
		lastCleanupKey, int64(r.opts.CleanupInterval.Seconds())-1)
	if err != nil {
		return 0, fmt.Errorf("update %s: %w", lastCleanupKey, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, nil // someone cleaned up recently
	}
	res, err = r.db.ExecContext(ctx, fmt.Sprintf(
		"DELETE FROM %s WHERE unixepoch(CURRENT_TIMESTAMP) - last_update >= ?", r.opts.TableName),
		int64(staleAfter.Seconds()))
	if err != nil {
		return 0, fmt.Errorf("delete stale rows: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
