package postgresql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
)

// StoreV2 is the PostgreSQL state store in Dapr's v2 layout (spec.version
// v2). It has no query API, as Dapr's v2 has none.
type StoreV2 struct {
	conn
}

var (
	_ state.Store         = (*StoreV2)(nil)
	_ state.Transactional = (*StoreV2)(nil)
	_ state.BulkStore     = (*StoreV2)(nil)
)

// NewV2 returns a v2 store that logs to log (nil: discard).
func NewV2(log *slog.Logger) *StoreV2 {
	return &StoreV2{conn: newConn(log)}
}

// Init connects, migrates the table and starts the garbage collection of
// expired rows.
func (s *StoreV2) Init(ctx context.Context, md components.Metadata) error {
	cfg, err := parseConfig(md, "v2")
	if err != nil {
		return err
	}
	if name, ok := md.Get("tableName"); ok && name != "" {
		s.log.Warn("metadata tableName is not used by state.postgresql v2 (as in Dapr); the table is tablePrefix + \"state\"",
			"component", md.Name, "tableName", name, "table", cfg.tableName)
	}
	return s.open(ctx, md, cfg, layoutV2(cfg))
}

// liveV2 selects rows that have not expired: Dapr's v2 counts a row as
// live up to and including its expires_at, and sweeps it after.
const liveV2 = `(expires_at IS NULL OR expires_at >= now())`

// layoutV2 is Dapr's v2 table format.
func layoutV2(cfg config) layout {
	t := cfg.tableName
	return layout{
		migrationKey: "migrations-state-v2-" + cfg.tablePrefix,
		migrations: []func(context.Context, pgx.Tx) error{
			func(ctx context.Context, tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+t+` (
					key text NOT NULL PRIMARY KEY,
					value bytea NOT NULL,
					etag uuid NOT NULL DEFAULT gen_random_uuid(),
					created_at timestamp with time zone NOT NULL DEFAULT now(),
					updated_at timestamp with time zone,
					expires_at timestamp with time zone
				)`); err != nil {
					return err
				}
				if err := checkLayoutV2(ctx, tx, t); err != nil {
					return err // the table was there already, in another layout
				}
				_, err := tx.Exec(ctx, `CREATE INDEX ON `+t+` (expires_at)`)
				return err
			},
		},
		check: func(ctx context.Context, db dbtx) error {
			return checkLayoutV2(ctx, db, t)
		},
		cleanupKey:    "last-cleanup-state-v2-" + cfg.tablePrefix,
		deleteExpired: `DELETE FROM ` + t + ` WHERE expires_at IS NOT NULL AND expires_at < now()`,

		table:   t,
		live:    liveV2,
		expired: `t.expires_at IS NOT NULL AND t.expires_at < now()`,
		columns: `value, etag::text, expires_at`,
		read: func(sc scanner, lead ...any) (stored, error) {
			var st stored
			err := sc.Scan(append(lead, &st.data, &st.etag, &st.expires)...)
			if st.data == nil {
				st.data = []byte{} // a found value always has Data
			}
			return st, err
		},
		// The bytes as sent: JSON from HTTP is the JSON text daprd stores,
		// binary from gRPC the bytes daprd stores; v2 keeps no flag telling
		// them apart, and needs none to give the bytes back.
		values: func(req *state.SetRequest) ([]any, error) {
			if req.Value == nil {
				return []any{[]byte{}}, nil // NOT NULL; nil would be sent as NULL
			}
			return []any{req.Value}, nil
		},
		upsert: func(expire string) string {
			return `INSERT INTO ` + t + ` AS t (key, value, etag, expires_at) VALUES ($1, $2, gen_random_uuid(), ` + expire + `)
				ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now(),
					etag = gen_random_uuid(), expires_at = excluded.expires_at`
		},
		update: func(expire string) string {
			return `UPDATE ` + t + ` SET value = $2, updated_at = now(), etag = gen_random_uuid(), expires_at = ` + expire + `
				WHERE key = $1`
		},
		// The ETag is a random UUID replaced on every write. Dapr's v2
		// answers one that is not a UUID as a mismatch.
		etag: func(s string) (any, error) {
			u, ok := canonicalUUID(s)
			if !ok {
				return nil, fmt.Errorf("not one this store returned: %w", state.ErrETagMismatch)
			}
			return u, nil
		},
		etagIs: func(param string) string { return `etag = ` + param + `::uuid` },
	}
}

// checkLayoutV2 refuses a table that is not in the v2 layout: v1 and v2
// both default to a table named "state", and a v1 table there would
// otherwise fail every call.
func checkLayoutV2(ctx context.Context, db dbtx, table string) error {
	_, err := db.Exec(ctx, `SELECT key, value, etag, created_at, updated_at, expires_at FROM `+table+` WHERE false`)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42703" { // undefined_column
		return fmt.Errorf("table %s is not in the state.postgresql v2 layout (%s; a v1 table?): set metadata tablePrefix to give v2 its own table, or spec.version v1 to use this one", table, pe.Message)
	}
	return err
}

// Features: ETags, transactions and TTL, as Dapr's v2 (no query API).
func (s *StoreV2) Features() []state.Feature {
	return []state.Feature{state.FeatureETag, state.FeatureTransactional, state.FeatureTTL}
}

// canonicalUUID returns s in PostgreSQL's text form of a UUID (lowercase,
// hyphenated), or false when s is not a UUID. It takes the forms Dapr's v2
// takes (hyphenated, 32 hex digits, {…}, urn:uuid:…), so no ETag that
// daprd accepts is refused here.
func canonicalUUID(s string) (string, bool) {
	switch {
	case len(s) == 45 && strings.EqualFold(s[:9], "urn:uuid:"):
		s = s[9:]
	case len(s) == 38 && s[0] == '{' && s[37] == '}':
		s = s[1:37]
	}
	if len(s) == 36 {
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return "", false
		}
		s = s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	}
	if len(s) != 32 {
		return "", false
	}
	b := make([]byte, 0, 36)
	for i := 0; i < 32; i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			c += 'a' - 'A'
		default:
			return "", false
		}
		if i == 8 || i == 12 || i == 16 || i == 20 {
			b = append(b, '-')
		}
		b = append(b, c)
	}
	return string(b), true
}
