package postgresql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
)

// conn is what both layouts share: the pool, the configuration, the
// migrations, the background sweep of expired rows, and (rows.go) the
// reads and writes, each on the SQL of the layout l. Store and StoreV2
// embed it and add their Init and Features (and v1 its Query).
type conn struct {
	log *slog.Logger
	cfg config
	l   layout
	db  *pgxpool.Pool

	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
}

func newConn(log *slog.Logger) conn {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return conn{log: log, stop: make(chan struct{})}
}

// dbtx is the pool or a transaction.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// layout is one version's table format: how to bring the tables up to
// date, how to remove expired rows, and the SQL of reads and writes. The
// stores' shared methods (Get, Set, Delete, Multi…) run on it.
type layout struct {
	// migrationKey is the metadata table's key holding the migration
	// level; migrations are the steps, in order.
	migrationKey string
	migrations   []func(ctx context.Context, tx pgx.Tx) error
	// check, when set, runs after the migrations to refuse a table of
	// another layout.
	check func(ctx context.Context, db dbtx) error
	// cleanupKey is the metadata table's key holding the time of the last
	// sweep; deleteExpired removes expired rows.
	cleanupKey    string
	deleteExpired string

	// table holds the rows; live is the SQL condition of a row that has
	// not expired, and expired that of an upsert's existing row t that has.
	table, live, expired string
	// columns are what a read selects after the key; read scans them,
	// after lead (the key, in bulk reads).
	columns string
	read    func(sc scanner, lead ...any) (stored, error)
	// values are a write's parameters after the key ($2, …); upsert and
	// update are its SQL given the expiry expression, update ending in
	// "WHERE key = $1" for the ETag condition to follow.
	values func(req *state.SetRequest) ([]any, error)
	upsert func(expire string) string
	update func(expire string) string
	// etag parses a request's ETag into the parameter etagIs compares;
	// its error wraps state.ErrETagInvalid or state.ErrETagMismatch.
	etag   func(s string) (any, error)
	etagIs func(param string) string
}

// scanner is a pgx.Row or pgx.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// stored is a row as read: decodeErr says its value could not be turned
// back into the bytes that were saved.
type stored struct {
	data      []byte
	etag      string
	expires   *time.Time
	decodeErr error
}

// open connects, migrates the tables and starts the sweep of expired rows.
func (c *conn) open(ctx context.Context, md components.Metadata, cfg config, l layout) error {
	pcfg, err := pgxpool.ParseConfig(cfg.connectionString)
	if err != nil {
		// pgx errors can echo the connection string, which may hold a password.
		return fmt.Errorf("component %q: metadata connectionString is malformed", md.Name)
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	db, err := pgxpool.NewWithConfig(cctx, pcfg)
	if err != nil {
		return fmt.Errorf("component %q: connect to postgresql: %w", md.Name, err)
	}
	if err := db.Ping(cctx); err != nil {
		db.Close()
		return fmt.Errorf("component %q: connect to postgresql at %s:%d: %w (is the server up and the connectionString right?)", md.Name, pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, err)
	}
	c.cfg, c.db, c.l = cfg, db, l
	err = c.migrate(cctx, l)
	if err == nil && l.check != nil {
		err = l.check(cctx, db)
	}
	if err != nil {
		db.Close()
		c.db = nil
		return fmt.Errorf("component %q: prepare tables: %w", md.Name, err)
	}
	if cfg.cleanupInterval > 0 {
		c.done.Add(1)
		go c.cleanupLoop()
	}
	c.log.Debug("postgresql state store ready", "component", md.Name, "version", md.Version, "table", cfg.tableName)
	return nil
}

// migrate runs the steps of l above the level recorded in the metadata
// table, in one transaction. The lock is Dapr's: the row "lock" of the
// metadata table held FOR UPDATE, so Tandem and daprd sidecars starting
// together take turns.
func (c *conn) migrate(ctx context.Context, l layout) error {
	meta := c.cfg.metadataTableName
	var err error
	for range 5 {
		// Creating the same table at once can fail on a catalog unique
		// index, as duplicate_table (42P07) or as duplicate_object (42710,
		// the table's row type) despite IF NOT EXISTS; the loser tries
		// again and finds it.
		_, err = c.db.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+meta+` (
			key text NOT NULL PRIMARY KEY,
			value text NOT NULL
		)`)
		if !lostCreateRace(err) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("create metadata table: %w", err)
	}
	if _, err := c.db.Exec(ctx, `INSERT INTO `+meta+` (key, value) VALUES ('lock', 'lock') ON CONFLICT (key) DO NOTHING`); err != nil {
		return fmt.Errorf("create migration lock row: %w", err)
	}
	return pgx.BeginFunc(ctx, c.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT value FROM `+meta+` WHERE key = 'lock' FOR UPDATE`); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		level := 0
		var v string
		err := tx.QueryRow(ctx, `SELECT value FROM `+meta+` WHERE key = $1`, l.migrationKey).Scan(&v)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("read migration level: %w", err)
		default:
			if level, err = strconv.Atoi(v); err != nil || level < 0 {
				return fmt.Errorf("invalid migration level %q under key %q in table %s", v, l.migrationKey, meta)
			}
		}
		for i := level; i < len(l.migrations); i++ {
			if err := l.migrations[i](ctx, tx); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+meta+` (key, value) VALUES ($1, $2)
				ON CONFLICT (key) DO UPDATE SET value = excluded.value`, l.migrationKey, strconv.Itoa(i+1)); err != nil {
				return fmt.Errorf("record migration level: %w", err)
			}
		}
		return nil
	})
}

// lostCreateRace reports whether err is how PostgreSQL fails a CREATE ...
// IF NOT EXISTS that raced another: unique_violation (23505, a catalog
// index), duplicate_table (42P07) or duplicate_object (42710).
func lostCreateRace(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "23505", "42P07", "42710":
		return true
	}
	return false
}

// Close stops the sweep of expired rows and closes the pool.
func (c *conn) Close() error {
	c.stopOnce.Do(func() { close(c.stop) })
	c.done.Wait()
	if c.db != nil {
		c.db.Close()
		c.db = nil
	}
	return nil
}

func (c *conn) cleanupLoop() {
	defer c.done.Done()
	t := time.NewTicker(c.cfg.cleanupInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			n, err := c.CleanupExpired(context.Background(), c.cfg.cleanupInterval)
			if err != nil {
				c.log.Warn("removing expired state failed; will retry", "table", c.cfg.tableName, "error", err)
				continue
			}
			c.log.Debug("removed expired state", "table", c.cfg.tableName, "rows", n)
		}
	}
}

// CleanupExpired deletes expired rows unless another instance did within
// the last interval (recorded in the metadata table under "last-cleanup"
// for v1, "last-cleanup-state-v2-"+tablePrefix for v2, as Dapr does, so
// many sidecars sharing a table do not all sweep it).
func (c *conn) CleanupExpired(ctx context.Context, interval time.Duration) (int64, error) {
	l := c.l
	ctx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
	defer cancel()
	meta := c.cfg.metadataTableName
	var n int64
	err := pgx.BeginFunc(ctx, c.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO `+meta+` (key, value) VALUES ($1, now()::text)
			ON CONFLICT (key) DO UPDATE SET value = now()::text
			WHERE (EXTRACT('epoch' FROM now() - `+meta+`.value::timestamp with time zone) * 1000)::bigint > $2`,
			l.cleanupKey, interval.Milliseconds()-100)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		tag, err = tx.Exec(ctx, l.deleteExpired)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}
