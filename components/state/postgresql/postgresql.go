// Package postgresql is the state.postgresql store (Dapr's default version,
// v1) on github.com/jackc/pgx/v5, with ETags, TTLs, transactions and the
// query API.
//
// It keeps the layout of Dapr's v1 component, so Dapr and Tandem share
// tables: table "state" (key text PRIMARY KEY, value jsonb, isbinary boolean,
// insertdate, updatedate, expiredate timestamptz), the row's xmin as ETag,
// binary values stored as a JSON string of their base64 with isbinary set,
// and table "dapr_metadata" (key, value) with the migration level under
// "migrations" and the last garbage collection under "last-cleanup".
package postgresql

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
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

// Type is the component type this store registers as.
const Type = "state.postgresql"

// Store is the PostgreSQL state store.
type Store struct {
	log *slog.Logger
	cfg config
	db  *pgxpool.Pool

	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
}

var (
	_ state.Store         = (*Store)(nil)
	_ state.Transactional = (*Store)(nil)
	_ state.BulkStore     = (*Store)(nil)
	_ state.Querier       = (*Store)(nil)
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

// Init connects, migrates the tables and starts the garbage collection of
// expired rows.
func (s *Store) Init(ctx context.Context, md components.Metadata) error {
	cfg, err := parseConfig(md)
	if err != nil {
		return err
	}
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
	s.cfg, s.db = cfg, db
	if err := s.migrate(cctx); err != nil {
		db.Close()
		s.db = nil
		return fmt.Errorf("component %q: prepare tables: %w", md.Name, err)
	}
	if cfg.cleanupInterval > 0 {
		s.done.Add(1)
		go s.cleanupLoop()
	}
	s.log.Debug("postgresql state store ready", "component", md.Name, "table", cfg.tableName)
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		// Serialise migrations of sidecars starting together.
		h := fnv.New64a()
		_, _ = h.Write([]byte("tandem-state-migrations:" + s.cfg.metadataTableName))
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64())); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.cfg.metadataTableName+` (
			key text NOT NULL PRIMARY KEY,
			value text NOT NULL
		)`); err != nil {
			return fmt.Errorf("create metadata table: %w", err)
		}
		level := 0
		var v string
		err := tx.QueryRow(ctx, `SELECT value FROM `+s.cfg.metadataTableName+` WHERE key = 'migrations'`).Scan(&v)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("read migration level: %w", err)
		default:
			if level, err = strconv.Atoi(v); err != nil || level < 0 {
				return fmt.Errorf("invalid migration level %q in table %s", v, s.cfg.metadataTableName)
			}
		}
		if level < 1 {
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.cfg.tableName+` (
				key text NOT NULL PRIMARY KEY,
				value jsonb NOT NULL,
				isbinary boolean NOT NULL,
				insertdate TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
				updatedate TIMESTAMP WITH TIME ZONE NULL
			)`); err != nil {
				return fmt.Errorf("create state table: %w", err)
			}
		}
		if level < 2 {
			if _, err := tx.Exec(ctx, `ALTER TABLE `+s.cfg.tableName+` ADD COLUMN IF NOT EXISTS expiredate TIMESTAMP WITH TIME ZONE`); err != nil {
				return fmt.Errorf("add expiredate column: %w", err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+s.cfg.metadataTableName+` (key, value) VALUES ('migrations', '2')
				ON CONFLICT (key) DO UPDATE SET value = excluded.value`); err != nil {
				return fmt.Errorf("record migration level: %w", err)
			}
		}
		return nil
	})
}

// Features: ETags, transactions, TTL and the query API, as Dapr's.
func (s *Store) Features() []state.Feature {
	return []state.Feature{state.FeatureETag, state.FeatureTransactional, state.FeatureQueryAPI, state.FeatureTTL}
}

// Close stops the garbage collection and closes the pool.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.done.Wait()
	if s.db != nil {
		s.db.Close()
		s.db = nil
	}
	return nil
}

// dbtx is the pool or a transaction.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const notExpired = `(expiredate IS NULL OR expiredate > CURRENT_TIMESTAMP)`

// decode turns a stored jsonb value back into the bytes that were saved.
func decode(value []byte, isBinary bool) ([]byte, error) {
	if !isBinary {
		return value, nil
	}
	var s string
	if err := json.Unmarshal(value, &s); err != nil {
		return nil, fmt.Errorf("stored binary value is not a JSON string: %w", err)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("stored binary value is not base64: %w", err)
	}
	return b, nil
}

// Get returns a live value or nil.
func (s *Store) Get(ctx context.Context, req *state.GetRequest) (*state.GetResponse, error) {
	if req.Key == "" {
		return nil, errors.New("get: missing key")
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	var (
		value    []byte
		isBinary bool
		etag     string
		expires  *time.Time
	)
	err := s.db.QueryRow(ctx, `SELECT value, isbinary, xmin::text, expiredate FROM `+s.cfg.tableName+
		` WHERE key = $1 AND `+notExpired, req.Key).Scan(&value, &isBinary, &etag, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", req.Key, err)
	}
	data, err := decode(value, isBinary)
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", req.Key, err)
	}
	resp := &state.GetResponse{Data: data, ETag: &etag}
	if expires != nil {
		resp.Metadata = state.ExpireTimeMetadata(*expires)
	}
	return resp, nil
}

// BulkGet reads all keys in one query.
func (s *Store) BulkGet(ctx context.Context, reqs []state.GetRequest) ([]state.BulkGetResponse, error) {
	keys := make([]string, len(reqs))
	for i, r := range reqs {
		keys[i] = r.Key
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	rows, err := s.db.Query(ctx, `SELECT key, value, isbinary, xmin::text, expiredate FROM `+s.cfg.tableName+
		` WHERE key = ANY($1) AND `+notExpired, keys)
	if err != nil {
		return nil, fmt.Errorf("bulk get: %w", err)
	}
	defer rows.Close()
	found := map[string]state.BulkGetResponse{}
	for rows.Next() {
		var (
			r        state.BulkGetResponse
			value    []byte
			isBinary bool
			etag     string
			expires  *time.Time
		)
		if err := rows.Scan(&r.Key, &value, &isBinary, &etag, &expires); err != nil {
			return nil, fmt.Errorf("bulk get: %w", err)
		}
		r.ETag = &etag
		if r.Data, err = decode(value, isBinary); err != nil {
			r.Error = err.Error()
		}
		if expires != nil {
			r.Metadata = state.ExpireTimeMetadata(*expires)
		}
		found[r.Key] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bulk get: %w", err)
	}
	out := make([]state.BulkGetResponse, len(reqs))
	for i, k := range keys {
		if r, ok := found[k]; ok {
			out[i] = r
		} else {
			out[i] = state.BulkGetResponse{Key: k}
		}
	}
	return out, nil
}

// BulkSet writes each key in one transaction; unlike Dapr's loop of Sets it
// is all or nothing.
func (s *Store) BulkSet(ctx context.Context, reqs []state.SetRequest) error {
	ops := make([]state.Operation, len(reqs))
	for i := range reqs {
		ops[i].Upsert = &reqs[i]
	}
	return s.Multi(ctx, &state.TransactionRequest{Operations: ops})
}

// BulkDelete deletes each key in one transaction.
func (s *Store) BulkDelete(ctx context.Context, reqs []state.DeleteRequest) error {
	ops := make([]state.Operation, len(reqs))
	for i := range reqs {
		ops[i].Delete = &reqs[i]
	}
	return s.Multi(ctx, &state.TransactionRequest{Operations: ops})
}

// Set writes one key.
func (s *Store) Set(ctx context.Context, req *state.SetRequest) error {
	return s.doSet(ctx, s.db, req)
}

func (s *Store) doSet(ctx context.Context, db dbtx, req *state.SetRequest) error {
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
		b, _ := json.Marshal(base64.StdEncoding.EncodeToString(req.Value))
		value = string(b)
	} else if !json.Valid(req.Value) {
		return fmt.Errorf("set %q: value is not JSON; send it as binary (gRPC without contentType application/json)", req.Key)
	}
	expire := "NULL"
	if ttl > 0 {
		expire = "CURRENT_TIMESTAMP + interval '" + strconv.Itoa(ttl) + " seconds'"
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	t := s.cfg.tableName
	var tag pgconn.CommandTag
	if state.HasETag(req.ETag) {
		etag, perr := strconv.ParseUint(*req.ETag, 10, 32)
		if perr != nil {
			return fmt.Errorf("set %q: etag %q: %w", req.Key, *req.ETag, state.ErrETagInvalid)
		}
		tag, err = db.Exec(ctx, `UPDATE `+t+` SET value = $2, isbinary = $3, updatedate = CURRENT_TIMESTAMP, expiredate = `+expire+`
			WHERE key = $1 AND xmin = $4 AND `+notExpired, req.Key, value, req.IsBinary, uint32(etag))
	} else {
		// An upsert in both modes because the row may exist but be expired
		// and not yet collected; first-write only replaces an expired row.
		where := ""
		if req.Options.Concurrency == state.FirstWrite {
			where = ` WHERE t.expiredate IS NOT NULL AND t.expiredate <= CURRENT_TIMESTAMP`
		}
		tag, err = db.Exec(ctx, `INSERT INTO `+t+` AS t (key, value, isbinary, expiredate) VALUES ($1, $2, $3, `+expire+`)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, isbinary = excluded.isbinary,
				updatedate = CURRENT_TIMESTAMP, expiredate = excluded.expiredate`+where, req.Key, value, req.IsBinary)
	}
	if err != nil {
		return fmt.Errorf("set %q: %w", req.Key, err)
	}
	if tag.RowsAffected() != 1 {
		if state.HasETag(req.ETag) {
			return fmt.Errorf("set %q: %w", req.Key, state.ErrETagMismatch)
		}
		return fmt.Errorf("set %q: key exists and first-write was asked without an etag: %w", req.Key, state.ErrETagMismatch)
	}
	return nil
}

// Delete removes one key.
func (s *Store) Delete(ctx context.Context, req *state.DeleteRequest) error {
	return s.doDelete(ctx, s.db, req)
}

func (s *Store) doDelete(ctx context.Context, db dbtx, req *state.DeleteRequest) error {
	if req.Key == "" {
		return errors.New("delete: missing key")
	}
	if err := req.Options.Validate(); err != nil {
		return fmt.Errorf("delete %q: %w", req.Key, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	if !state.HasETag(req.ETag) {
		if _, err := db.Exec(ctx, `DELETE FROM `+s.cfg.tableName+` WHERE key = $1`, req.Key); err != nil {
			return fmt.Errorf("delete %q: %w", req.Key, err)
		}
		return nil
	}
	etag, err := strconv.ParseUint(*req.ETag, 10, 32)
	if err != nil {
		return fmt.Errorf("delete %q: etag %q: %w", req.Key, *req.ETag, state.ErrETagInvalid)
	}
	tag, err := db.Exec(ctx, `DELETE FROM `+s.cfg.tableName+` WHERE key = $1 AND xmin = $2 AND `+notExpired, req.Key, uint32(etag))
	if err != nil {
		return fmt.Errorf("delete %q: %w", req.Key, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("delete %q: %w", req.Key, state.ErrETagMismatch)
	}
	return nil
}

// Multi applies a transaction atomically in one database transaction.
func (s *Store) Multi(ctx context.Context, req *state.TransactionRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	switch len(req.Operations) {
	case 0:
		return nil
	case 1:
		return s.apply(ctx, s.db, req.Operations[0])
	}
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		for _, op := range req.Operations {
			if err := s.apply(ctx, tx, op); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) apply(ctx context.Context, db dbtx, op state.Operation) error {
	if op.Upsert != nil {
		return s.doSet(ctx, db, op.Upsert)
	}
	return s.doDelete(ctx, db, op.Delete)
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

// CleanupExpired deletes expired rows unless another instance did within
// the last interval (recorded under "last-cleanup" in the metadata table, as
// Dapr does, so many sidecars sharing a table do not all sweep it).
func (s *Store) CleanupExpired(ctx context.Context, interval time.Duration) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	var n int64
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO `+s.cfg.metadataTableName+` (key, value) VALUES ('last-cleanup', now()::text)
			ON CONFLICT (key) DO UPDATE SET value = now()::text
			WHERE (EXTRACT('epoch' FROM now() - `+s.cfg.metadataTableName+`.value::timestamp with time zone) * 1000)::bigint > $1`,
			interval.Milliseconds()-100)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		tag, err = tx.Exec(ctx, `DELETE FROM `+s.cfg.tableName+` WHERE expiredate IS NOT NULL AND expiredate <= now()`)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}
