// Package sqlite is the state.sqlite store: embedded, persistent, pure Go
// (modernc.org/sqlite), with ETags, TTLs, transactions and KeysLike.
//
// It keeps Dapr's layout, so a database written by Dapr's state.sqlite can be
// used by Tandem and back: table "state" (key TEXT PRIMARY KEY, value TEXT,
// is_binary BOOLEAN, etag TEXT, expiration_time TIMESTAMP, update_time
// TIMESTAMP), JSON values as text, binary values base64-encoded with
// is_binary set, UUID etags, and a "metadata" table holding the migration
// level under key "migrations".
package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/internal/sqlitebusy"
)

// Type is the component type this store registers as.
const Type = "state.sqlite"

// Store is the SQLite state store.
type Store struct {
	log *slog.Logger
	cfg config
	db  *sql.DB

	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
}

var (
	_ state.Store         = (*Store)(nil)
	_ state.Transactional = (*Store)(nil)
	_ state.KeysLiker     = (*Store)(nil)
)

// New returns a store that logs to log (nil: discard).
func New(log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{log: log, stop: make(chan struct{})}
}

// NewStore is New as a state.Store, for registries.
func NewStore(log *slog.Logger) state.Store { return New(log) }

// Init opens the database, creates or migrates the tables and starts the
// periodic cleanup when cleanupInterval is set.
func (s *Store) Init(ctx context.Context, md components.Metadata) error {
	cfg, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err) // only an edit of the file fixes it
	}
	dsn, err := cfg.dsn()
	if err != nil {
		return components.Permanent(fmt.Errorf("component %q: %w", md.Name, err))
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("component %q: open sqlite: %w", md.Name, err)
	}
	// One connection: SQLite has one writer anyway, and this keeps an
	// in-memory database alive and transactions free of SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	s.cfg, s.db = cfg, db
	cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	// Sidecars starting together on one file race for the lock that WAL
	// mode and the schema need; the losers try again.
	if err := sqlitebusy.Retry(cctx, func() error { return s.migrate(cctx) }); err != nil {
		_ = db.Close()
		s.db = nil
		return fmt.Errorf("component %q: prepare tables: %w", md.Name, err)
	}
	if cfg.cleanupInterval > 0 {
		s.done.Add(1)
		go s.cleanupLoop()
	}
	s.log.Debug("sqlite state store ready", "component", md.Name, "table", cfg.tableName)
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+s.cfg.metadataTableName+` (
		key text NOT NULL PRIMARY KEY,
		value text NOT NULL
	)`); err != nil {
		return fmt.Errorf("create metadata table: %w", err)
	}
	level := 0
	var v string
	err = tx.QueryRowContext(ctx, `SELECT value FROM `+s.cfg.metadataTableName+` WHERE key = 'migrations'`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("read migration level: %w", err)
	default:
		if level, err = strconv.Atoi(v); err != nil || level < 0 {
			return fmt.Errorf("invalid migration level %q in table %s", v, s.cfg.metadataTableName)
		}
	}
	if level < 1 {
		// IF NOT EXISTS: databases from before the metadata table have the
		// state table already.
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+s.cfg.tableName+` (
			key TEXT NOT NULL PRIMARY KEY,
			value TEXT NOT NULL,
			is_binary BOOLEAN NOT NULL,
			etag TEXT NOT NULL,
			expiration_time TIMESTAMP DEFAULT NULL,
			update_time TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
		)`); err != nil {
			return fmt.Errorf("create state table: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `REPLACE INTO `+s.cfg.metadataTableName+` (key, value) VALUES ('migrations', '1')`); err != nil {
			return fmt.Errorf("record migration level: %w", err)
		}
	}
	return tx.Commit()
}

// Features: ETags, transactions, TTL and KeysLike, as Dapr's state.sqlite
// (no query API, no DeleteWithPrefix).
func (s *Store) Features() []state.Feature {
	return []state.Feature{state.FeatureETag, state.FeatureTransactional, state.FeatureTTL, state.FeatureKeysLike}
}

// KeysLike lists the live keys matching the pattern with SQLite's LIKE
// (backslash escapes; like Dapr's state.sqlite, SQLite's LIKE ignores ASCII
// case), in the order they were first written (rowid), as Dapr's
// state.sqlite does; the continuation token is the rowid of the previous
// page's last key.
func (s *Store) KeysLike(ctx context.Context, req *state.KeysLikeRequest) (*state.KeysLikeResponse, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	q := `SELECT key, rowid FROM ` + s.cfg.tableName + ` WHERE key LIKE ? ESCAPE '\' AND ` + notExpired
	args := []any{req.Pattern}
	if req.ContinuationToken != nil {
		after, err := strconv.ParseInt(*req.ContinuationToken, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("keys like: continuation token %q is not one this store returned", *req.ContinuationToken)
		}
		q += ` AND rowid > ?`
		args = append(args, after)
	}
	q += ` ORDER BY rowid`
	limit := 0
	if req.PageSize != nil && *req.PageSize > 0 {
		// One more than asked: whether more remain decides the token.
		limit = int(*req.PageSize)
		q += ` LIMIT ?`
		args = append(args, limit+1)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("keys like %q: %w", req.Pattern, err)
	}
	defer func() { _ = rows.Close() }()
	resp := &state.KeysLikeResponse{}
	var rowids []int64
	for rows.Next() {
		var k string
		var id int64
		if err := rows.Scan(&k, &id); err != nil {
			return nil, fmt.Errorf("keys like %q: %w", req.Pattern, err)
		}
		resp.Keys = append(resp.Keys, k)
		rowids = append(rowids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("keys like %q: %w", req.Pattern, err)
	}
	if limit > 0 && len(resp.Keys) > limit {
		resp.Keys = resp.Keys[:limit]
		last := strconv.FormatInt(rowids[limit-1], 10)
		resp.ContinuationToken = &last
	}
	return resp, nil
}

// Close stops the cleanup and closes the database.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.done.Wait()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// querier is *sql.DB or *sql.Tx.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const notExpired = `(expiration_time IS NULL OR expiration_time > CURRENT_TIMESTAMP)`

// Get returns a live value or nil.
func (s *Store) Get(ctx context.Context, req *state.GetRequest) (*state.GetResponse, error) {
	if req.Key == "" {
		return nil, errors.New("get: missing key")
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	var (
		value    string
		isBinary bool
		etag     string
		expires  any
	)
	err := s.db.QueryRowContext(ctx, `SELECT value, is_binary, etag, expiration_time FROM `+s.cfg.tableName+
		` WHERE key = ? AND `+notExpired, req.Key).Scan(&value, &isBinary, &etag, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", req.Key, err)
	}
	data := []byte(value)
	if isBinary {
		if data, err = base64.StdEncoding.DecodeString(value); err != nil {
			return nil, fmt.Errorf("get %q: stored binary value is not base64: %w", req.Key, err)
		}
	}
	resp := &state.GetResponse{Data: data, ETag: &etag}
	if t, ok := timestamp(expires); ok {
		resp.Metadata = state.ExpireTimeMetadata(t)
	}
	return resp, nil
}

// timestamp reads a TIMESTAMP column, which the driver may return as
// time.Time or as SQLite's "YYYY-MM-DD HH:MM:SS" text.
func timestamp(v any) (time.Time, bool) {
	switch t := v.(type) {
	case time.Time:
		return t, true
	case string:
		p, err := time.Parse(time.DateTime, t)
		return p, err == nil
	case []byte:
		p, err := time.Parse(time.DateTime, string(t))
		return p, err == nil
	}
	return time.Time{}, false
}

// Set writes one key.
func (s *Store) Set(ctx context.Context, req *state.SetRequest) error {
	return s.doSet(ctx, s.db, req)
}

func (s *Store) doSet(ctx context.Context, db querier, req *state.SetRequest) error {
	if req.Key == "" {
		return errors.New("set: missing key")
	}
	if err := req.Options.Validate(); err != nil {
		return fmt.Errorf("set %q: %w", req.Key, err)
	}
	ttl, _, err := state.TTLSeconds(req.Metadata)
	if err != nil {
		return fmt.Errorf("set %q: %w", req.Key, err)
	}
	value := string(req.Value)
	if req.IsBinary {
		value = base64.StdEncoding.EncodeToString(req.Value)
	}
	expiration := "NULL"
	if ttl > 0 {
		expiration = "DATETIME(CURRENT_TIMESTAMP, '+" + strconv.Itoa(ttl) + " seconds')"
	}
	etag := uuid.NewString()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	t := s.cfg.tableName
	var res sql.Result
	if state.HasETag(req.ETag) {
		res, err = db.ExecContext(ctx, `UPDATE `+t+` SET value = ?, is_binary = ?, etag = ?,
			update_time = CURRENT_TIMESTAMP, expiration_time = `+expiration+`
			WHERE key = ? AND etag = ? AND `+notExpired,
			value, req.IsBinary, etag, req.Key, *req.ETag)
	} else {
		// An upsert in both modes because the row may exist but be expired;
		// first-write only replaces an expired row.
		where := ""
		if req.Options.Concurrency == state.FirstWrite {
			where = ` WHERE ` + t + `.expiration_time IS NOT NULL AND ` + t + `.expiration_time <= CURRENT_TIMESTAMP`
		}
		res, err = db.ExecContext(ctx, `INSERT INTO `+t+` (key, value, is_binary, etag, update_time, expiration_time)
			VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP, `+expiration+`)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, is_binary = excluded.is_binary,
				etag = excluded.etag, update_time = CURRENT_TIMESTAMP, expiration_time = excluded.expiration_time`+where,
			req.Key, value, req.IsBinary, etag)
	}
	if err != nil {
		return fmt.Errorf("set %q: %w", req.Key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("set %q: %w", req.Key, err)
	}
	if n == 0 {
		return state.SetConflict(req.Key, req.ETag)
	}
	return nil
}

// Delete removes one key.
func (s *Store) Delete(ctx context.Context, req *state.DeleteRequest) error {
	return s.doDelete(ctx, s.db, req)
}

func (s *Store) doDelete(ctx context.Context, db querier, req *state.DeleteRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	if !state.HasETag(req.ETag) {
		if _, err := db.ExecContext(ctx, `DELETE FROM `+s.cfg.tableName+` WHERE key = ?`, req.Key); err != nil {
			return fmt.Errorf("delete %q: %w", req.Key, err)
		}
		return nil
	}
	res, err := db.ExecContext(ctx, `DELETE FROM `+s.cfg.tableName+` WHERE key = ? AND etag = ? AND `+notExpired, req.Key, *req.ETag)
	if err != nil {
		return fmt.Errorf("delete %q: %w", req.Key, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("delete %q: %w", req.Key, errors.Join(err, state.ErrETagMismatch))
	}
	return nil
}

// Multi applies a transaction atomically.
func (s *Store) Multi(ctx context.Context, req *state.TransactionRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, op := range req.Operations {
		if op.Upsert != nil {
			err = s.doSet(ctx, tx, op.Upsert)
		} else {
			err = s.doDelete(ctx, tx, op.Delete)
		}
		if err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

func (s *Store) cleanupLoop() {
	defer s.done.Done()
	t := time.NewTicker(s.cfg.cleanupInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			n, err := s.CleanupExpired(context.Background())
			if err != nil {
				s.log.Warn("removing expired state failed; will retry", "table", s.cfg.tableName, "error", err)
				continue
			}
			s.log.Debug("removed expired state", "table", s.cfg.tableName, "rows", n)
		}
	}
}

// CleanupExpired deletes expired rows now and records the time under key
// "last-cleanup" of the metadata table, as Dapr does. Reads never return
// expired rows; this only reclaims space.
func (s *Store) CleanupExpired(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `DELETE FROM `+s.cfg.tableName+` WHERE expiration_time IS NOT NULL AND expiration_time <= CURRENT_TIMESTAMP`)
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `REPLACE INTO `+s.cfg.metadataTableName+` (key, value) VALUES ('last-cleanup', CURRENT_TIMESTAMP)`); err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return n, tx.Commit()
}
