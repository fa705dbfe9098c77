package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/statetest"
)

func open(t *testing.T, props map[string]string) *Store {
	t.Helper()
	s := New(nil)
	if err := s.Init(context.Background(), components.Metadata{Name: "sqlite", Type: Type, Properties: props}); err != nil {
		t.Fatalf("init: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	statetest.Run(t, func(t *testing.T) state.Store {
		return open(t, map[string]string{"connectionString": filepath.Join(dir, "state.db")})
	})
}

func TestConformanceInMemoryDB(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Store {
		return open(t, map[string]string{"connectionString": ":memory:"})
	})
}

// TestDaprLayout checks the rows are what Dapr's state.sqlite writes, so
// either runtime reads the other's database.
func TestDaprLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dapr.db")
	s := open(t, map[string]string{"connectionString": path, "tableName": "mystate", "metadataTableName": "mymeta"})
	ctx := context.Background()
	if err := s.Set(ctx, &state.SetRequest{Key: "app||json", Value: []byte(`{"a":1}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, &state.SetRequest{Key: "app||bin", Value: []byte{0xff, 0}, IsBinary: true,
		Metadata: map[string]string{"ttlInSeconds": "60"}}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows := map[string]struct {
		value    string
		isBinary bool
		expires  bool
	}{
		"app||json": {`{"a":1}`, false, false},
		"app||bin":  {"/wA=", true, true},
	}
	for key, want := range rows {
		var (
			value, etag string
			isBinary    bool
			exp         sql.NullString
		)
		err := db.QueryRow(`SELECT value, is_binary, etag, expiration_time FROM mystate WHERE key = ?`, key).Scan(&value, &isBinary, &etag, &exp)
		if err != nil {
			t.Fatalf("row %q: %v", key, err)
		}
		if value != want.value || isBinary != want.isBinary || exp.Valid != want.expires || len(etag) != 36 {
			t.Errorf("row %q = (%q, %v, %q, %v), want (%q, %v, uuid, expires=%v)", key, value, isBinary, etag, exp, want.value, want.isBinary, want.expires)
		}
	}
	var level string
	if err := db.QueryRow(`SELECT value FROM mymeta WHERE key = 'migrations'`).Scan(&level); err != nil || level != "1" {
		t.Errorf("migration level = %q (%v), want 1", level, err)
	}
	// A row written the way Dapr writes it reads back.
	if _, err := db.Exec(`INSERT INTO mystate (key, value, is_binary, etag) VALUES ('app||dapr', '"hi"', 0, 'e1')`); err != nil {
		t.Fatal(err)
	}
	r, err := s.Get(ctx, &state.GetRequest{Key: "app||dapr"})
	if err != nil || r == nil || string(r.Data) != `"hi"` || *r.ETag != "e1" {
		t.Fatalf("get Dapr row = %+v, %v", r, err)
	}
}

func TestCleanupExpired(t *testing.T) {
	s := open(t, map[string]string{"connectionString": ":memory:"})
	ctx := context.Background()
	if _, err := s.db.Exec(`INSERT INTO state (key, value, is_binary, etag, expiration_time)
		VALUES ('old', '1', 0, 'e', DATETIME(CURRENT_TIMESTAMP, '-5 seconds'))`); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, &state.SetRequest{Key: "live", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	n, err := s.CleanupExpired(ctx)
	if err != nil || n != 1 {
		t.Fatalf("cleanup = %d, %v; want 1 row", n, err)
	}
	var count int
	_ = s.db.QueryRow(`SELECT COUNT(*) FROM state`).Scan(&count)
	if count != 1 {
		t.Fatalf("%d rows left, want 1", count)
	}
}

var configCases = []struct {
	name    string
	props   map[string]string
	wantErr string
	wantDSN []string
}{
	{"missing connection string", map[string]string{}, "missing connection string (component", nil},
	{"bad table", map[string]string{"connectionString": "x.db", "tableName": "a;drop"}, "tableName", nil},
	{"short timeout", map[string]string{"connectionString": "x.db", "timeout": "500ms"}, "at least 1s", nil},
	{"forbidden pragma", map[string]string{"connectionString": "x.db?_pragma=journal_mode(OFF)"}, "disableWAL", nil},
	{"defaults", map[string]string{"connectionString": "x.db"}, "",
		[]string{"file:x.db?", "_txlock=immediate", "busy_timeout%282000%29", "journal_mode%28WAL%29"}},
	{"no WAL", map[string]string{"connectionString": "file:x.db", "disableWAL": "true", "busyTimeout": "0"}, "",
		[]string{"file:x.db?", "journal_mode%28DELETE%29"}},
	{"memory", map[string]string{"connectionString": ":memory:"}, "", []string{"cache=shared", "journal_mode%28MEMORY%29"}},
}

func TestConfig(t *testing.T) {
	for _, tc := range configCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(components.Metadata{Name: "s", Properties: tc.props})
			var dsn string
			if err == nil {
				dsn, err = c.dsn()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.wantDSN {
				if !strings.Contains(dsn, w) {
					t.Errorf("dsn %q lacks %q", dsn, w)
				}
			}
		})
	}
}

// TestCapabilities pins /v1.0/metadata's list, order included, to daprd's
// for state.sqlite.
func TestCapabilities(t *testing.T) {
	got := state.Capabilities(New(nil).Features())
	want := []string{"ETAG", "TRANSACTIONAL", "TTL", "KEYS_LIKE", "ACTOR"}
	if !slices.Equal(got, want) {
		t.Errorf("capabilities = %q, want %q", got, want)
	}
}

// TestKeysLikeOrder: first-write order, as Dapr's state.sqlite (rowid).
func TestKeysLikeOrder(t *testing.T) {
	statetest.KeysLikeOrder(t, open(t, map[string]string{"connectionString": ":memory:"}), false)
}
