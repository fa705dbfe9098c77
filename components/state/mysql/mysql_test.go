package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the driver of rawDB

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/statetest"
)

// The local MariaDB (or MySQL): root without a password.
const (
	addr = "127.0.0.1:3306"
	dsn  = "root@tcp(127.0.0.1:3306)/"
	// schema is the test database; the tests create it through the store.
	schema = "tandem_statetest"
)

func open(t *testing.T, props map[string]string) *Store {
	t.Helper()
	statetest.RequireServer(t, addr)
	p := map[string]string{"connectionString": dsn, "schemaName": schema, "tableName": "state", "metadataTableName": "meta"}
	for k, v := range props {
		p[k] = v
	}
	s := New(nil)
	if err := s.Init(context.Background(), components.Metadata{Name: "my", Type: Type, Properties: p}); err != nil {
		t.Fatalf("init: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Store { return open(t, nil) })
}

// rawDB is a plain connection to the test database.
func rawDB(t *testing.T) *sql.DB {
	t.Helper()
	statetest.RequireServer(t, addr)
	db, err := sql.Open("mysql", dsn+schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestDaprLayout checks the tables and rows are Dapr's: the columns, a JSON
// value as sent, a binary one as a JSON string of base64 with isbinary,
// a UUID ETag and the expiry in expiredate.
func TestDaprLayout(t *testing.T) {
	s := open(t, map[string]string{"tableName": "layout_state", "metadataTableName": "layout_meta"})
	db := rawDB(t)
	t.Cleanup(func() { exec(t, db, `DROP TABLE IF EXISTS layout_state, layout_meta`) })
	ctx := context.Background()
	if err := s.Set(ctx, &state.SetRequest{Key: "app||json", Value: []byte(`{"a":1}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, &state.SetRequest{Key: "app||bin", Value: []byte{0xff, 0}, IsBinary: true,
		Metadata: map[string]string{"ttlInSeconds": "60"}}); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = ? AND table_name = 'layout_state' ORDER BY ordinal_position`, schema)
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for rows.Next() {
		var c string
		_ = rows.Scan(&c)
		cols = append(cols, c)
	}
	_ = rows.Close()
	if got, want := strings.Join(cols, " "), "id value isbinary insertDate updateDate eTag expiredate row_id"; got != want {
		t.Errorf("columns %q, want %q", got, want)
	}
	var (
		value, etag string
		isBinary    bool
		expires     sql.NullString
	)
	if err := db.QueryRowContext(ctx, `SELECT value, isbinary, eTag, expiredate FROM layout_state WHERE id = 'app||json'`).Scan(&value, &isBinary, &etag, &expires); err != nil {
		t.Fatal(err)
	}
	var doc map[string]int
	if json.Unmarshal([]byte(value), &doc) != nil || doc["a"] != 1 || isBinary || len(etag) != 36 || expires.Valid {
		t.Errorf("json row = %q %v %q %v", value, isBinary, etag, expires)
	}
	if err := db.QueryRowContext(ctx, `SELECT value, isbinary, expiredate FROM layout_state WHERE id = 'app||bin'`).Scan(&value, &isBinary, &expires); err != nil {
		t.Fatal(err)
	}
	if value != `"/wA="` || !isBinary || !expires.Valid {
		t.Errorf("binary row = %q %v %v, want \"/wA=\" true with an expiry", value, isBinary, expires)
	}
}

// TestReadsDaprRows reads rows written as daprd writes them.
func TestReadsDaprRows(t *testing.T) {
	s := open(t, map[string]string{"tableName": "daprrows_state", "metadataTableName": "daprrows_meta"})
	db := rawDB(t)
	t.Cleanup(func() { exec(t, db, `DROP TABLE IF EXISTS daprrows_state, daprrows_meta`) })
	exec(t, db, `REPLACE INTO daprrows_state (id, value, eTag, isbinary, expiredate) VALUES
		('app||k', '{"n":1}', 'e0f9c4d2-0000-4000-8000-000000000001', false, NULL),
		('app||b', '"AAEC"', 'e0f9c4d2-0000-4000-8000-000000000002', true, CURRENT_TIMESTAMP + INTERVAL 100 SECOND),
		('app||gone', '1', 'e0f9c4d2-0000-4000-8000-000000000003', false, CURRENT_TIMESTAMP - INTERVAL 1 SECOND)`)
	ctx := context.Background()
	r, err := s.Get(ctx, &state.GetRequest{Key: "app||k"})
	if err != nil || r == nil || string(r.Data) != `{"n":1}` || *r.ETag != "e0f9c4d2-0000-4000-8000-000000000001" {
		t.Fatalf("get json = %+v, %v", r, err)
	}
	r, err = s.Get(ctx, &state.GetRequest{Key: "app||b"})
	if err != nil || r == nil || string(r.Data) != "\x00\x01\x02" {
		t.Fatalf("get binary = %+v, %v", r, err)
	}
	at, err := time.Parse(time.RFC3339, r.Metadata[state.MetadataTTLExpireTime])
	if err != nil || at.Before(time.Now().Add(90*time.Second)) || at.After(time.Now().Add(110*time.Second)) {
		t.Errorf("ttlExpireTime %q (%v), want about 100s from now", r.Metadata[state.MetadataTTLExpireTime], err)
	}
	if r, err := s.Get(ctx, &state.GetRequest{Key: "app||gone"}); err != nil || r != nil {
		t.Fatalf("expired row = %+v, %v; want missing", r, err)
	}
	e := "e0f9c4d2-0000-4000-8000-000000000001"
	if err := s.Delete(ctx, &state.DeleteRequest{Key: "app||k", ETag: &e}); err != nil {
		t.Fatalf("delete with Dapr's etag: %v", err)
	}
}

// TestUpgradesOldTable: a table of a Dapr before 1.11 (no expiredate) and
// 1.17 (no row_id) gets both columns, and its rows stay readable.
func TestUpgradesOldTable(t *testing.T) {
	db := rawDB(t)
	exec(t, db, `DROP TABLE IF EXISTS old_state`)
	t.Cleanup(func() { exec(t, db, `DROP TABLE IF EXISTS old_state, old_meta`) })
	exec(t, db, `CREATE TABLE old_state (id VARCHAR(255) NOT NULL PRIMARY KEY, value JSON NOT NULL, isbinary BOOLEAN NOT NULL,
		insertDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
		updateDate TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, eTag VARCHAR(36) NOT NULL)`)
	exec(t, db, `INSERT INTO old_state (id, value, isbinary, eTag) VALUES ('app||old', '"kept"', false, 'x')`)
	s := open(t, map[string]string{"tableName": "old_state", "metadataTableName": "old_meta"})
	ctx := context.Background()
	if r, err := s.Get(ctx, &state.GetRequest{Key: "app||old"}); err != nil || r == nil || string(r.Data) != `"kept"` {
		t.Fatalf("old row = %+v, %v", r, err)
	}
	if err := s.Set(ctx, &state.SetRequest{Key: "app||new", Value: []byte(`1`), Metadata: map[string]string{"ttlInSeconds": "30"}}); err != nil {
		t.Fatalf("set with ttl on an upgraded table: %v", err)
	}
	r, err := s.KeysLike(ctx, &state.KeysLikeRequest{Pattern: "app||%"})
	if err != nil || len(r.Keys) != 2 {
		t.Fatalf("keys like on an upgraded table = %+v, %v", r, err)
	}
	// A second start finds the columns there.
	open(t, map[string]string{"tableName": "old_state", "metadataTableName": "old_meta"})
}

// TestCleanupExpired: the sweep deletes expired rows once per interval
// among the stores sharing a table.
func TestCleanupExpired(t *testing.T) {
	props := map[string]string{"tableName": "sweep_state", "metadataTableName": "sweep_meta", "cleanupInterval": "0"}
	a, b := open(t, props), open(t, props)
	db := rawDB(t)
	t.Cleanup(func() { exec(t, db, `DROP TABLE IF EXISTS sweep_state, sweep_meta`) })
	exec(t, db, `DELETE FROM sweep_meta`)
	exec(t, db, `INSERT INTO sweep_state (id, value, isbinary, eTag, expiredate) VALUES
		('gone1', '1', false, 'e', CURRENT_TIMESTAMP - INTERVAL 5 SECOND),
		('gone2', '1', false, 'e', CURRENT_TIMESTAMP - INTERVAL 5 SECOND),
		('live', '1', false, 'e', CURRENT_TIMESTAMP + INTERVAL 1 HOUR)`)
	ctx := context.Background()
	n, err := a.CleanupExpired(ctx, time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("first sweep = %d, %v; want 2", n, err)
	}
	exec(t, db, `INSERT INTO sweep_state (id, value, isbinary, eTag, expiredate) VALUES ('gone3', '1', false, 'e', CURRENT_TIMESTAMP - INTERVAL 5 SECOND)`)
	if n, err := b.CleanupExpired(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("second sweep within the interval = %d, %v; want 0", n, err)
	}
	var left int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sweep_state`).Scan(&left); err != nil || left != 2 {
		t.Fatalf("%d rows left (%v), want 2", left, err)
	}
}

func TestInitErrors(t *testing.T) {
	statetest.RequireServer(t, addr)
	tests := []struct {
		name  string
		props map[string]string
		want  string
	}{
		{"wrong password", map[string]string{"connectionString": "root:wrong@tcp(127.0.0.1:3306)/"}, "Access denied"},
		{"nothing listening", map[string]string{"connectionString": "root@tcp(127.0.0.1:1)/", "timeoutInSeconds": "2"}, "is the server up"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := New(nil).Init(context.Background(), components.Metadata{Name: "my", Type: Type, Properties: tc.props})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"my"`) {
				t.Fatalf("err = %v, want one naming the component and saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "wrong") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestNotInitialised(t *testing.T) {
	s := New(nil)
	if _, err := s.Get(context.Background(), &state.GetRequest{Key: "k"}); err == nil {
		t.Fatal("get before Init succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
