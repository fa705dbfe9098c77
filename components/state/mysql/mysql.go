// Package mysql is the state.mysql store on MySQL or MariaDB, with the Go
// driver github.com/go-sql-driver/mysql, in Dapr's table layout so that
// daprd and Tandem share data:
//
//   - the database schemaName (created when missing) holds the table
//     tableName: id VARCHAR(255) PRIMARY KEY, value JSON, isbinary
//     BOOLEAN, insertDate and updateDate TIMESTAMP, eTag VARCHAR(36),
//     expiredate TIMESTAMP NULL (indexed) and row_id BIGINT UNSIGNED
//     AUTO_INCREMENT (unique; the order KeysLike pages in);
//   - a fresh random UUID is the ETag of every write;
//   - a JSON value is stored as it came, a binary one as a JSON string of
//     its base64 with isbinary set;
//   - a TTL sets expiredate; expired rows are never read and are swept every
//     cleanupInterval by one of the sidecars sharing the table, which
//     records the time of the last sweep under "last-cleanup" in the table
//     metadataTableName (id, value).
//
// Tables Dapr created before 1.11 (no expiredate) and 1.17 (no row_id) get
// the column added, as daprd does. One difference: a table Tandem creates
// compares ids byte for byte (utf8mb4_bin), as every other store compares
// keys, where the server's default collation would take "Key" and "key"
// for one key.
//
// Features: ETags, transactions, TTL and KeysLike, as Dapr's; no query API.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
)

// Type is the component type this store registers as.
const Type = "state.mysql"

var (
	_ state.Store         = (*Store)(nil)
	_ state.Transactional = (*Store)(nil)
	_ state.BulkStore     = (*Store)(nil)
	_ state.KeysLiker     = (*Store)(nil)
)

// Store is one state.mysql component.
type Store struct {
	log *slog.Logger
	cfg config
	db  *sql.DB

	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
}

// New returns an uninitialised store that logs to log (nil: discard).
func New(log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{log: log, stop: make(chan struct{})}
}

// NewStore is New as a state.Store, for registries.
func NewStore(log *slog.Logger) state.Store { return New(log) }

// Features: ETags, transactions, TTL and KeysLike, as Dapr's.
func (s *Store) Features() []state.Feature {
	return []state.Feature{state.FeatureETag, state.FeatureTransactional, state.FeatureTTL, state.FeatureKeysLike}
}

// Init connects, creates the database and the tables when missing, and
// starts the sweep of expired rows.
func (s *Store) Init(ctx context.Context, md components.Metadata) error {
	cfg, err := parseConfig(md)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	if err := createSchema(ctx, cfg); err != nil {
		return fmt.Errorf("component %q: %w", md.Name, err)
	}
	dbCfg := cfg.server.Clone()
	dbCfg.DBName = cfg.schemaName
	conn, err := driver.NewConnector(dbCfg)
	if err != nil {
		return fmt.Errorf("component %q: metadata connectionString: %w", md.Name, err)
	}
	db := sql.OpenDB(conn)
	if err := createTables(ctx, db, cfg); err != nil {
		_ = db.Close()
		return fmt.Errorf("component %q: prepare tables in %s: %w", md.Name, cfg.schemaName, err)
	}
	if s.db != nil {
		// Init again after a failure: the old pool goes.
		_ = s.db.Close()
	}
	s.cfg, s.db = cfg, db
	if cfg.cleanupInterval > 0 {
		s.done.Add(1)
		go s.cleanupLoop()
	}
	s.log.Debug("mysql state store ready", "component", md.Name, "schema", cfg.schemaName, "table", cfg.tableName)
	return nil
}

// createSchema creates the database schemaName unless it exists (checked
// first, as daprd does, so a user who may not create databases can use
// one made for it).
func createSchema(ctx context.Context, cfg config) error {
	conn, err := driver.NewConnector(cfg.server)
	if err != nil {
		return fmt.Errorf("metadata connectionString: %w", err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?`, cfg.schemaName).Scan(&n)
	if err != nil {
		return fmt.Errorf("connect to mysql at %s: %w (is the server up and the connectionString right?)", cfg.server.Addr, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := db.ExecContext(ctx, `CREATE DATABASE IF NOT EXISTS `+cfg.schemaName); err != nil {
		return fmt.Errorf("create database %s: %w", cfg.schemaName, err)
	}
	return nil
}

// MySQL's error numbers the store branches on.
const (
	errDupColumn  = 1060
	errDupKeyName = 1061
	errDupEntry   = 1062
)

func isMySQLError(err error, number uint16) bool {
	var me *driver.MySQLError
	return errors.As(err, &me) && me.Number == number
}

// createTables creates the state and metadata tables, and adds the columns
// of newer Dapr versions to an older table. Sidecars starting together may
// race on the ALTERs; the loser's "duplicate" error is no error.
func createTables(ctx context.Context, db *sql.DB, cfg config) error {
	t := cfg.tableName
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+t+` (
		id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
		value JSON NOT NULL,
		isbinary BOOLEAN NOT NULL,
		insertDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
		updateDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
		eTag VARCHAR(36) NOT NULL,
		expiredate TIMESTAMP NULL,
		row_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
		INDEX expiredate_idx (expiredate),
		UNIQUE KEY row_id_uidx (row_id)
	)`); err != nil {
		return fmt.Errorf("create table %s: %w", t, err)
	}
	for _, col := range []struct{ name, add string }{
		{"expiredate", `ALTER TABLE ` + t + ` ADD COLUMN expiredate TIMESTAMP NULL, ADD INDEX expiredate_idx (expiredate)`},
		{"row_id", `ALTER TABLE ` + t + ` ADD COLUMN row_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, ADD UNIQUE KEY row_id_uidx (row_id)`},
	} {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.columns
			WHERE table_schema = ? AND table_name = ? AND column_name = ?`, cfg.schemaName, t, col.name).Scan(&n); err != nil {
			return fmt.Errorf("look for column %s of %s: %w", col.name, t, err)
		}
		if n > 0 {
			continue
		}
		if _, err := db.ExecContext(ctx, col.add); err != nil && !isMySQLError(err, errDupColumn) && !isMySQLError(err, errDupKeyName) {
			return fmt.Errorf("add column %s to %s (a table of an older Dapr): %w", col.name, t, err)
		}
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+cfg.metadataTableName+` (
		id VARCHAR(255) NOT NULL PRIMARY KEY,
		value TEXT NOT NULL
	)`); err != nil {
		return fmt.Errorf("create table %s: %w", cfg.metadataTableName, err)
	}
	return nil
}

// Close stops the sweep of expired rows and closes the pool.
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

// querier is the pool or a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const (
	live = `(expiredate IS NULL OR expiredate > CURRENT_TIMESTAMP)`
	// columns are what a read selects after the key; the expiry in Unix
	// seconds, free of the session's time zone.
	columns = `value, isbinary, eTag, UNIX_TIMESTAMP(expiredate)`
)

// row is a stored value as read: decodeErr says its value could not be
// turned back into the bytes that were saved.
type row struct {
	data      []byte
	etag      string
	expires   *time.Time
	decodeErr error
}

type scanner interface{ Scan(dest ...any) error }

// scanRow reads columns (after lead).
func scanRow(sc scanner, lead ...any) (row, error) {
	var (
		r        row
		value    []byte
		isBinary bool
		expires  sql.NullFloat64
	)
	if err := sc.Scan(append(lead, &value, &isBinary, &r.etag, &expires)...); err != nil {
		return r, err
	}
	if expires.Valid {
		at := time.Unix(int64(expires.Float64), 0)
		r.expires = &at
	}
	r.data, r.decodeErr = state.FromJSONColumn(value, isBinary)
	return r, nil
}

func (s *Store) ready() error {
	if s.db == nil {
		return errNoConfig
	}
	return nil
}

// Get returns a live value or nil.
func (s *Store) Get(ctx context.Context, req *state.GetRequest) (*state.GetResponse, error) {
	if req.Key == "" {
		return nil, errors.New("get: missing key")
	}
	if err := s.ready(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	r, err := scanRow(s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM `+s.cfg.tableName+` WHERE id = ? AND `+live, req.Key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err == nil {
		err = r.decodeErr
	}
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", req.Key, err)
	}
	resp := &state.GetResponse{Data: r.data, ETag: &r.etag}
	if r.expires != nil {
		resp.Metadata = state.ExpireTimeMetadata(*r.expires)
	}
	return resp, nil
}

// BulkGet reads all keys in one query.
func (s *Store) BulkGet(ctx context.Context, reqs []state.GetRequest) ([]state.BulkGetResponse, error) {
	if len(reqs) == 0 {
		return []state.BulkGetResponse{}, nil
	}
	if err := s.ready(); err != nil {
		return nil, err
	}
	args := make([]any, len(reqs))
	for i, r := range reqs {
		args[i] = r.Key
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, `SELECT id, `+columns+` FROM `+s.cfg.tableName+`
		WHERE id IN (?`+strings.Repeat(",?", len(reqs)-1)+`) AND `+live, args...)
	if err != nil {
		return nil, fmt.Errorf("bulk get: %w", err)
	}
	defer rows.Close()
	found := make(map[string]state.BulkGetResponse, len(reqs))
	for rows.Next() {
		var key string
		r, err := scanRow(rows, &key)
		if err != nil {
			return nil, fmt.Errorf("bulk get: %w", err)
		}
		resp := state.BulkGetResponse{Key: key, Data: r.data, ETag: &r.etag}
		if r.decodeErr != nil {
			resp = state.BulkGetResponse{Key: key, Error: r.decodeErr.Error()}
		} else if r.expires != nil {
			resp.Metadata = state.ExpireTimeMetadata(*r.expires)
		}
		found[key] = resp
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bulk get: %w", err)
	}
	out := make([]state.BulkGetResponse, len(reqs))
	for i, r := range reqs {
		if f, ok := found[r.Key]; ok {
			out[i] = f
		} else {
			out[i] = state.BulkGetResponse{Key: r.Key}
		}
	}
	return out, nil
}

// Set writes one key.
func (s *Store) Set(ctx context.Context, req *state.SetRequest) error {
	if err := s.ready(); err != nil {
		return err
	}
	return s.set(ctx, s.db, req)
}

func (s *Store) set(ctx context.Context, db querier, req *state.SetRequest) error {
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
	value, isBinary, err := state.JSONColumn(req)
	if err != nil {
		return fmt.Errorf("set %q: %w", req.Key, err)
	}
	// ttl is an integer parsed above, never the request's text.
	expire := "NULL"
	if ttl > 0 {
		expire = "CURRENT_TIMESTAMP + INTERVAL " + strconv.Itoa(ttl) + " SECOND"
	}
	t, etag := s.cfg.tableName, uuid.NewString() // a fresh random ETag per write, as in Dapr
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	switch {
	case state.HasETag(req.ETag):
		res, err := db.ExecContext(ctx, `UPDATE `+t+` SET value = ?, isbinary = ?, eTag = ?, expiredate = `+expire+`
			WHERE id = ? AND eTag = ? AND `+live, value, isBinary, etag, req.Key, *req.ETag)
		if err != nil {
			return fmt.Errorf("set %q: %w", req.Key, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return errors.Join(state.SetConflict(req.Key, req.ETag), err)
		}
		return nil
	case req.Options.Concurrency == state.FirstWrite:
		// A plain insert: the primary key lets exactly one of several
		// first writes in. An expired row not yet swept does not count.
		if _, err := db.ExecContext(ctx, `DELETE FROM `+t+` WHERE id = ? AND NOT `+live, req.Key); err != nil {
			return fmt.Errorf("set %q: %w", req.Key, err)
		}
		_, err := db.ExecContext(ctx, `INSERT INTO `+t+` (id, value, isbinary, eTag, expiredate)
			VALUES (?, ?, ?, ?, `+expire+`)`, req.Key, value, isBinary, etag)
		if isMySQLError(err, errDupEntry) {
			return state.SetConflict(req.Key, nil)
		}
		if err != nil {
			return fmt.Errorf("set %q: %w", req.Key, err)
		}
		return nil
	default:
		_, err := db.ExecContext(ctx, `INSERT INTO `+t+` (id, value, isbinary, eTag, expiredate)
			VALUES (?, ?, ?, ?, `+expire+`)
			ON DUPLICATE KEY UPDATE value = VALUES(value), isbinary = VALUES(isbinary), eTag = VALUES(eTag),
				expiredate = VALUES(expiredate)`, req.Key, value, isBinary, etag)
		if err != nil {
			return fmt.Errorf("set %q: %w", req.Key, err)
		}
		return nil
	}
}

// Delete removes one key.
func (s *Store) Delete(ctx context.Context, req *state.DeleteRequest) error {
	if err := s.ready(); err != nil {
		return err
	}
	return s.delete(ctx, s.db, req)
}

func (s *Store) delete(ctx context.Context, db querier, req *state.DeleteRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	if !state.HasETag(req.ETag) {
		if _, err := db.ExecContext(ctx, `DELETE FROM `+s.cfg.tableName+` WHERE id = ?`, req.Key); err != nil {
			return fmt.Errorf("delete %q: %w", req.Key, err)
		}
		return nil
	}
	res, err := db.ExecContext(ctx, `DELETE FROM `+s.cfg.tableName+` WHERE id = ? AND eTag = ? AND `+live, req.Key, *req.ETag)
	if err != nil {
		return fmt.Errorf("delete %q: %w", req.Key, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.Join(fmt.Errorf("delete %q: %w", req.Key, state.ErrETagMismatch), err)
	}
	return nil
}

// Multi applies a transaction atomically in one database transaction (none
// for a single operation).
func (s *Store) Multi(ctx context.Context, req *state.TransactionRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	if err := s.ready(); err != nil {
		return err
	}
	switch len(req.Operations) {
	case 0:
		return nil
	case 1:
		return s.apply(ctx, s.db, req.Operations[0])
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	for _, op := range req.Operations {
		if err := s.apply(ctx, tx, op); err != nil {
			return errors.Join(err, rollback(tx))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// rollback rolls tx back; a connection the failed statement broke is no
// second error worth reporting.
func rollback(tx *sql.Tx) error {
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) && !errors.Is(err, driver.ErrInvalidConn) {
		return fmt.Errorf("roll back: %w", err)
	}
	return nil
}

func (s *Store) apply(ctx context.Context, db querier, op state.Operation) error {
	if op.Upsert != nil {
		return s.set(ctx, db, op.Upsert)
	}
	return s.delete(ctx, db, op.Delete)
}

// BulkSet writes every key in one transaction: all or nothing.
func (s *Store) BulkSet(ctx context.Context, reqs []state.SetRequest) error {
	return s.Multi(ctx, &state.TransactionRequest{Operations: state.UpsertOps(reqs)})
}

// BulkDelete deletes every key in one transaction.
func (s *Store) BulkDelete(ctx context.Context, reqs []state.DeleteRequest) error {
	return s.Multi(ctx, &state.TransactionRequest{Operations: state.DeleteOps(reqs)})
}

// KeysLike lists the live keys matching a LIKE pattern (backslash
// escapes), in row_id order; the continuation token is the row_id of the
// last key returned, as in Dapr.
func (s *Store) KeysLike(ctx context.Context, req *state.KeysLikeRequest) (*state.KeysLikeResponse, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if err := s.ready(); err != nil {
		return nil, err
	}
	q := `SELECT id, row_id FROM ` + s.cfg.tableName + ` WHERE id LIKE ? AND ` + live
	args := []any{req.Pattern}
	if req.ContinuationToken != nil && *req.ContinuationToken != "" {
		after, err := strconv.ParseUint(*req.ContinuationToken, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("keys like: continuation token %q is not one this store returned", *req.ContinuationToken)
		}
		q += ` AND row_id > ?`
		args = append(args, after)
	}
	q += ` ORDER BY row_id`
	var size uint32
	if req.PageSize != nil && *req.PageSize > 0 {
		size = *req.PageSize
		q += ` LIMIT ?`
		args = append(args, uint64(size)+1) // one more says whether a next page exists
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("keys like %q: %w", req.Pattern, err)
	}
	defer rows.Close()
	resp := &state.KeysLikeResponse{Keys: []string{}}
	var last uint64
	for rows.Next() {
		var (
			key string
			id  uint64
		)
		if err := rows.Scan(&key, &id); err != nil {
			return nil, fmt.Errorf("keys like %q: %w", req.Pattern, err)
		}
		if size > 0 && len(resp.Keys) == int(size) {
			tok := strconv.FormatUint(last, 10)
			resp.ContinuationToken = &tok
			break
		}
		resp.Keys, last = append(resp.Keys, key), id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("keys like %q: %w", req.Pattern, err)
	}
	return resp, nil
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
			n, err := s.CleanupExpired(context.Background(), s.cfg.cleanupInterval)
			if err != nil {
				s.log.Warn("removing expired state failed; will retry", "table", s.cfg.tableName, "error", err)
				continue
			}
			s.log.Debug("removed expired state", "table", s.cfg.tableName, "rows", n)
		}
	}
}

// CleanupExpired deletes expired rows unless another sidecar did within
// the last interval: the time of the last sweep is kept under
// "last-cleanup" in the metadata table, as Dapr keeps it, so the sidecars
// sharing a table do not all sweep it.
func (s *Store) CleanupExpired(ctx context.Context, interval time.Duration) (int64, error) {
	if err := s.ready(); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO `+s.cfg.metadataTableName+` (id, value) VALUES ('last-cleanup', CURRENT_TIMESTAMP)
		ON DUPLICATE KEY UPDATE value = IF(CURRENT_TIMESTAMP > DATE_ADD(value, INTERVAL ?*1000 MICROSECOND), CURRENT_TIMESTAMP, value)`,
		interval.Milliseconds()-100)
	if err != nil {
		return 0, errors.Join(err, rollback(tx))
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return 0, errors.Join(err, rollback(tx))
	}
	res, err = tx.ExecContext(ctx, `DELETE FROM `+s.cfg.tableName+` WHERE expiredate IS NOT NULL AND expiredate <= CURRENT_TIMESTAMP`)
	if err != nil {
		return 0, errors.Join(err, rollback(tx))
	}
	n, _ := res.RowsAffected()
	return n, tx.Commit()
}
