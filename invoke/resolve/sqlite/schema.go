package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/tandemrun/tandem/internal/sqlitebusy"
)

// migrationsKey is the metadata-table key holding the schema level; Dapr's
// name resolver uses the same key, so either side migrates the file once.
const migrationsKey = "nr-migrations"

// lastCleanupKey is the metadata-table key holding the time of the last
// stale-row cleanup (a CURRENT_TIMESTAMP text), shared with Dapr so that one
// process per interval does the work.
const lastCleanupKey = "nr-last-cleanup"

// migrations bring the schema to Dapr's layout. Index i takes level i to
// i+1. Level 1 is the hosts table Dapr creates; never change a step, only
// append.
func migrations(hosts string) []string {
	return []string{
		fmt.Sprintf(`CREATE TABLE %[1]s (
	registration_id TEXT NOT NULL PRIMARY KEY,
	address TEXT NOT NULL,
	app_id TEXT NOT NULL,
	namespace TEXT NOT NULL,
	last_update INTEGER NOT NULL
);
CREATE UNIQUE INDEX %[1]s_address_idx ON %[1]s (address);
CREATE INDEX %[1]s_last_update_idx ON %[1]s (last_update);`, hosts),
	}
}

// migrate creates the metadata table and runs pending migrations inside an
// exclusive transaction, so concurrent sidecars starting on one file wait
// for each other instead of racing. It retries while another process holds
// the lock, up to ctx.
func migrate(ctx context.Context, db *sql.DB, o *Options) error {
	return sqlitebusy.Retry(ctx, func() error { return migrateOnce(ctx, db, o) })
}

func migrateOnce(ctx context.Context, db *sql.DB, o *Options) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("get connection: %w", err)
	}
	defer conn.Close()

	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE TRANSACTION"); err != nil {
		return fmt.Errorf("begin exclusive transaction: %w", err)
	}
	defer func() {
		if err != nil {
			// A background context: the rollback must run even when ctx
			// is what failed.
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK TRANSACTION")
		}
	}()

	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	key text NOT NULL PRIMARY KEY,
	value text NOT NULL
)`, o.MetadataTableName)); err != nil {
		return fmt.Errorf("create metadata table %q: %w", o.MetadataTableName, err)
	}

	level := 0
	var v string
	err = conn.QueryRowContext(ctx, fmt.Sprintf("SELECT value FROM %s WHERE key = ?", o.MetadataTableName), migrationsKey).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("read migration level: %w", err)
	default:
		level, err = strconv.Atoi(v)
		if err != nil || level < 0 {
			return fmt.Errorf("metadata table %q has an invalid %q value %q: fix or delete the database file", o.MetadataTableName, migrationsKey, v)
		}
	}

	steps := migrations(o.TableName)
	for i := level; i < len(steps); i++ {
		if _, err := conn.ExecContext(ctx, steps[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("REPLACE INTO %s (key, value) VALUES (?, ?)", o.MetadataTableName), migrationsKey, strconv.Itoa(i+1)); err != nil {
			return fmt.Errorf("record migration %d: %w", i+1, err)
		}
	}

	if _, err := conn.ExecContext(ctx, "COMMIT TRANSACTION"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
