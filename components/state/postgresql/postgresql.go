// Package postgresql is the state.postgresql store on github.com/jackc/pgx/v5
// in both of Dapr's versions. They keep data in different tables, so the
// component's spec.version picks one (Versions), and Dapr and Tandem share
// the tables of either:
//
// v1 (Store; spec.version v1 or empty): ETags, TTLs, transactions and the
// query API. Table "state" (tableName: key text PRIMARY KEY, value jsonb,
// isbinary boolean, insertdate, updatedate, expiredate timestamptz), the
// row's xmin as ETag, binary values stored as a JSON string of their base64
// with isbinary set; migration level under "migrations", last sweep of
// expired rows under "last-cleanup".
//
// v2 (StoreV2; spec.version v2, Dapr 1.13+): ETags, TTLs and transactions,
// no query API. Table tablePrefix+"state" (key text PRIMARY KEY, value bytea,
// etag uuid, created_at, updated_at, expires_at timestamptz, with an index on
// expires_at), a fresh random UUID as ETag on every write, values stored as
// the bytes sent (JSON text and binary alike, with no flag); migration level
// under "migrations-state-v2-"+tablePrefix, last sweep under
// "last-cleanup-state-v2-"+tablePrefix.
//
// Both keep those keys in table "dapr_metadata" (metadataTableName: key,
// value text) and take turns migrating by locking its row "lock", as daprd
// does, so Tandem and Dapr sidecars may start together on one database.
package postgresql

import (
	"context"
	"log/slog"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
)

// Type is the component type this store registers as.
const Type = "state.postgresql"

// Store is the PostgreSQL state store in Dapr's v1 layout.
type Store struct {
	conn
}

var (
	_ state.Store         = (*Store)(nil)
	_ state.Transactional = (*Store)(nil)
	_ state.BulkStore     = (*Store)(nil)
	_ state.Querier       = (*Store)(nil)
)

// New returns a v1 store that logs to log (nil: discard).
func New(log *slog.Logger) *Store {
	return &Store{conn: newConn(log)}
}

// NewStore is New as a state.Store, for registries.
func NewStore(log *slog.Logger) state.Store { return New(log) }

// Versions are the constructors by spec.version, for the component
// registry: v1 (what an empty spec.version means, as in Dapr) and v2.
func Versions(log *slog.Logger) components.Versions[state.Store] {
	return components.Versions[state.Store]{Default: "v1", New: map[string]func() state.Store{
		"v1": func() state.Store { return New(log) },
		"v2": func() state.Store { return NewV2(log) },
	}}
}

// Init connects, migrates the tables and starts the garbage collection of
// expired rows.
func (s *Store) Init(ctx context.Context, md components.Metadata) error {
	cfg, err := parseConfig(md, "v1")
	if err != nil {
		return err
	}
	return s.open(ctx, md, cfg, layoutV1(cfg))
}

// layoutV1 is Dapr's v1 table format.
func layoutV1(cfg config) layout {
	t := cfg.tableName
	return layout{
		migrationKey: "migrations",
		migrations: []func(context.Context, pgx.Tx) error{
			func(ctx context.Context, tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+t+` (
					key text NOT NULL PRIMARY KEY,
					value jsonb NOT NULL,
					isbinary boolean NOT NULL,
					insertdate TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
					updatedate TIMESTAMP WITH TIME ZONE NULL
				)`)
				return err
			},
			func(ctx context.Context, tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `ALTER TABLE `+t+` ADD COLUMN IF NOT EXISTS expiredate TIMESTAMP WITH TIME ZONE`)
				return err
			},
		},
		cleanupKey:    "last-cleanup",
		deleteExpired: `DELETE FROM ` + t + ` WHERE expiredate IS NOT NULL AND expiredate <= now()`,

		table:   t,
		live:    notExpired,
		expired: `t.expiredate IS NOT NULL AND t.expiredate <= CURRENT_TIMESTAMP`,
		columns: `value, isbinary, xmin::text, expiredate`,
		read: func(sc scanner, lead ...any) (stored, error) {
			var (
				st       stored
				value    []byte
				isBinary bool
			)
			if err := sc.Scan(append(lead, &value, &isBinary, &st.etag, &st.expires)...); err != nil {
				return st, err
			}
			st.data, st.decodeErr = state.FromJSONColumn(value, isBinary)
			return st, nil
		},
		values: func(req *state.SetRequest) ([]any, error) {
			value, isBinary, err := state.JSONColumn(req)
			return []any{value, isBinary}, err
		},
		upsert: func(expire string) string {
			return `INSERT INTO ` + t + ` AS t (key, value, isbinary, expiredate) VALUES ($1, $2, $3, ` + expire + `)
				ON CONFLICT (key) DO UPDATE SET value = excluded.value, isbinary = excluded.isbinary,
					updatedate = CURRENT_TIMESTAMP, expiredate = excluded.expiredate`
		},
		update: func(expire string) string {
			return `UPDATE ` + t + ` SET value = $2, isbinary = $3, updatedate = CURRENT_TIMESTAMP, expiredate = ` + expire + `
				WHERE key = $1`
		},
		// The ETag is the row's xmin, a 32-bit transaction id.
		etag: func(s string) (any, error) {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, state.ErrETagInvalid
			}
			return uint32(n), nil
		},
		etagIs: func(param string) string { return `xmin = ` + param },
	}
}

// Features: ETags, transactions, TTL and the query API, as Dapr's.
func (s *Store) Features() []state.Feature {
	return []state.Feature{state.FeatureETag, state.FeatureTransactional, state.FeatureQueryAPI, state.FeatureTTL}
}

const notExpired = `(expiredate IS NULL OR expiredate > CURRENT_TIMESTAMP)`
