package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
)

// schemaVersion is the layout this code writes; a file with a newer one was
// written by a newer Tandem and is refused rather than misread.
const schemaVersion = 1

// The layout. Times are Unix milliseconds.
//
//   - pubsub_messages: every published message. AUTOINCREMENT keeps IDs
//     increasing and never reused, and SQLite has one writer at a time, so
//     a message with a smaller ID than one already seen never commits later:
//     a cursor can never skip one.
//   - pubsub_cursors: per consumer group and topic, the last message ID
//     copied into pubsub_deliveries.
//   - pubsub_deliveries: messages a group still has to handle. lease_until
//     0 or in the past means ready; a subscriber that takes one sets it to
//     now + processingTimeout and lease_owner to its token. Acknowledging
//     deletes the row.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS pubsub_meta (
		key TEXT NOT NULL PRIMARY KEY,
		value TEXT NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS pubsub_messages (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		topic TEXT NOT NULL,
		data BLOB NOT NULL,
		content_type TEXT NOT NULL DEFAULT '',
		metadata TEXT,
		published_at INTEGER NOT NULL,
		expires_at INTEGER
	)`,
	`CREATE INDEX IF NOT EXISTS pubsub_messages_topic ON pubsub_messages (topic, id)`,
	`CREATE INDEX IF NOT EXISTS pubsub_messages_published ON pubsub_messages (published_at)`,
	`CREATE INDEX IF NOT EXISTS pubsub_messages_expires ON pubsub_messages (expires_at) WHERE expires_at IS NOT NULL`,
	`CREATE TABLE IF NOT EXISTS pubsub_cursors (
		consumer_group TEXT NOT NULL,
		topic TEXT NOT NULL,
		last_id INTEGER NOT NULL,
		created_at INTEGER NOT NULL,
		PRIMARY KEY (consumer_group, topic)
	) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS pubsub_deliveries (
		consumer_group TEXT NOT NULL,
		topic TEXT NOT NULL,
		message_id INTEGER NOT NULL,
		lease_until INTEGER NOT NULL DEFAULT 0,
		lease_owner TEXT NOT NULL DEFAULT '',
		attempts INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (consumer_group, topic, message_id)
	) WITHOUT ROWID`,
	`CREATE INDEX IF NOT EXISTS pubsub_deliveries_message ON pubsub_deliveries (message_id)`,
	`CREATE INDEX IF NOT EXISTS pubsub_deliveries_owner ON pubsub_deliveries (lease_owner) WHERE lease_owner != ''`,
}

// migrate creates the tables, once per file (several sidecars may start at
// the same moment: the immediate transaction serialises them).
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, schema[0]); err != nil {
		return fmt.Errorf("create pubsub_meta: %w", err)
	}
	var v string
	err = tx.QueryRowContext(ctx, `SELECT value FROM pubsub_meta WHERE key = 'schema'`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("read schema version: %w", err)
	default:
		n, perr := strconv.Atoi(v)
		if perr != nil {
			return fmt.Errorf("schema version %q in pubsub_meta is not a number: is this file used by something else?", v)
		}
		if n > schemaVersion {
			return fmt.Errorf("the file has schema version %d, newer than this sidecar's %d: upgrade the sidecar or use another file", n, schemaVersion)
		}
		if n == schemaVersion {
			return tx.Commit()
		}
	}
	for _, stmt := range schema[1:] {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create tables: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `REPLACE INTO pubsub_meta (key, value) VALUES ('schema', ?)`, strconv.Itoa(schemaVersion)); err != nil {
		return fmt.Errorf("record schema version: %w", err)
	}
	return tx.Commit()
}
