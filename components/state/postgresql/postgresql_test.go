package postgresql

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/statetest"
)

const (
	addr = "127.0.0.1:5432"
	dsn  = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
)

func open(t *testing.T, props map[string]string) *Store {
	t.Helper()
	statetest.RequireServer(t, addr)
	p := map[string]string{"connectionString": dsn, "tableName": "tandem_statetest", "metadataTableName": "tandem_statetest_metadata"}
	for k, v := range props {
		p[k] = v
	}
	s := New(nil)
	if err := s.Init(context.Background(), components.Metadata{Name: "pg", Type: Type, Properties: p}); err != nil {
		t.Fatalf("init: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Store { return open(t, nil) })
}

func rawConn(t *testing.T) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// TestDaprLayout checks the tables and rows are Dapr's v1 layout.
func TestDaprLayout(t *testing.T) {
	statetest.RequireServer(t, addr)
	c := rawConn(t)
	ctx := context.Background()
	drop := func() {
		_, _ = c.Exec(ctx, `DROP TABLE IF EXISTS tandem_layout_state, tandem_layout_meta`)
	}
	drop()
	t.Cleanup(drop)
	s := open(t, map[string]string{"tableName": "tandem_layout_state", "metadataTableName": "tandem_layout_meta"})
	if err := s.Set(ctx, &state.SetRequest{Key: "app||json", Value: []byte(`{"a": 1}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, &state.SetRequest{Key: "app||bin", Value: []byte{0xff, 0}, IsBinary: true,
		Metadata: map[string]string{"ttlInSeconds": "60"}}); err != nil {
		t.Fatal(err)
	}
	var cols []string
	rows, err := c.Query(ctx, `SELECT column_name || ':' || data_type FROM information_schema.columns
		WHERE table_name = 'tandem_layout_state' ORDER BY ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var col string
		_ = rows.Scan(&col)
		cols = append(cols, col)
	}
	want := "key:text value:jsonb isbinary:boolean insertdate:timestamp with time zone updatedate:timestamp with time zone expiredate:timestamp with time zone"
	if got := strings.Join(cols, " "); got != want {
		t.Fatalf("columns = %s\nwant      %s", got, want)
	}
	var (
		value    string
		isBinary bool
		exp      *time.Time
	)
	if err := c.QueryRow(ctx, `SELECT value::text, isbinary, expiredate FROM tandem_layout_state WHERE key = 'app||bin'`).Scan(&value, &isBinary, &exp); err != nil {
		t.Fatal(err)
	}
	if value != `"/wA="` || !isBinary || exp == nil {
		t.Fatalf("binary row = (%s, %v, %v)", value, isBinary, exp)
	}
	var level string
	if err := c.QueryRow(ctx, `SELECT value FROM tandem_layout_meta WHERE key = 'migrations'`).Scan(&level); err != nil || level != "2" {
		t.Fatalf("migration level = %q, %v; want 2", level, err)
	}
	// A row written as Dapr writes it reads back with xmin as etag.
	if _, err := c.Exec(ctx, `INSERT INTO tandem_layout_state (key, value, isbinary) VALUES ('app||dapr', '"hi"', false)`); err != nil {
		t.Fatal(err)
	}
	r, err := s.Get(ctx, &state.GetRequest{Key: "app||dapr"})
	if err != nil || r == nil || string(r.Data) != `"hi"` {
		t.Fatalf("get = %+v, %v", r, err)
	}
	var xmin string
	_ = c.QueryRow(ctx, `SELECT xmin::text FROM tandem_layout_state WHERE key = 'app||dapr'`).Scan(&xmin)
	if *r.ETag != xmin {
		t.Fatalf("etag %q, xmin %q", *r.ETag, xmin)
	}
	// Migrating again is a no-op.
	open(t, map[string]string{"tableName": "tandem_layout_state", "metadataTableName": "tandem_layout_meta"})
}

func TestNotJSONRejected(t *testing.T) {
	s := open(t, nil)
	err := s.Set(context.Background(), &state.SetRequest{Key: "statetest-notjson", Value: []byte("not json")})
	if err == nil || !strings.Contains(err.Error(), "binary") {
		t.Fatalf("set of non-JSON without IsBinary: %v", err)
	}
}

func TestCleanupExpired(t *testing.T) {
	s := open(t, map[string]string{"cleanupInterval": "0"})
	c := rawConn(t)
	ctx := context.Background()
	if _, err := c.Exec(ctx, `INSERT INTO tandem_statetest (key, value, isbinary, expiredate)
		VALUES ('statetest-expired', '1', false, now() - interval '1 minute')
		ON CONFLICT (key) DO UPDATE SET expiredate = excluded.expiredate`); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Exec(ctx, `DELETE FROM tandem_statetest_metadata WHERE key = 'last-cleanup'`)
	n, err := s.CleanupExpired(ctx, time.Hour)
	if err != nil || n < 1 {
		t.Fatalf("cleanup = %d, %v; want at least 1 row", n, err)
	}
	// Within the interval a second sweep does nothing.
	if _, err := c.Exec(ctx, `INSERT INTO tandem_statetest (key, value, isbinary, expiredate)
		VALUES ('statetest-expired', '1', false, now() - interval '1 minute')`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.Exec(ctx, `DELETE FROM tandem_statetest WHERE key = 'statetest-expired'`) })
	if n, err := s.CleanupExpired(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("second cleanup within the interval = %d, %v; want 0", n, err)
	}
}

var configCases = []struct {
	name    string
	props   map[string]string
	wantErr string
}{
	{"missing connection string", map[string]string{}, "connectionString is required"},
	{"bad table", map[string]string{"connectionString": "x", "tableName": "a; drop"}, "tableName"},
	{"schema table", map[string]string{"connectionString": "x", "tableName": "s.t"}, ""},
	{"two dots", map[string]string{"connectionString": "x", "tableName": "a.b.c"}, "tableName"},
	{"short timeout", map[string]string{"connectionString": "x", "timeoutInSeconds": "0"}, "at least 1s"},
}

func TestConfig(t *testing.T) {
	for _, tc := range configCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(components.Metadata{Name: "pg", Properties: tc.props}, "v1")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestFieldText(t *testing.T) {
	for in, want := range map[string]string{
		"a":     `value->>'a'`,
		"a.b.c": `value->'a'->'b'->>'c'`,
		"it's":  `value->>'it''s'`,
	} {
		if got := fieldText(in); got != want {
			t.Errorf("fieldText(%q) = %s, want %s", in, got, want)
		}
	}
}
