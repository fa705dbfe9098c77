package postgresql

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/statetest"
)

// v2Tables are a test's own state table (prefix + "state") and metadata
// table, dropped when the test ends.
type v2Tables struct {
	prefix, state, meta string
}

func newV2Tables(t *testing.T) v2Tables {
	t.Helper()
	statetest.RequireServer(t, addr)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	tb := v2Tables{prefix: "tandem_v2_" + id + "_", meta: "tandem_v2_" + id + "_meta"}
	tb.state = tb.prefix + "state"
	c := rawConn(t)
	t.Cleanup(func() {
		if _, err := c.Exec(context.Background(), `DROP TABLE IF EXISTS `+tb.state+`, `+tb.meta); err != nil {
			t.Errorf("drop test tables: %v", err)
		}
	})
	return tb
}

// indexes counts the state table's indexes whose definition matches like
// (a LIKE pattern).
func (tb v2Tables) indexes(t *testing.T, like string) int {
	t.Helper()
	var n int
	if err := rawConn(t).QueryRow(context.Background(), `SELECT count(*) FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE $2`, tb.state, like).Scan(&n); err != nil {
		t.Fatalf("count indexes: %v", err)
	}
	return n
}

func (tb v2Tables) md(props map[string]string) components.Metadata {
	p := map[string]string{"connectionString": dsn, "tablePrefix": tb.prefix, "metadataTableName": tb.meta}
	for k, v := range props {
		p[k] = v
	}
	return components.Metadata{Name: "pg2", Type: Type, Version: "v2", Properties: p}
}

func openV2(t *testing.T, tb v2Tables, props map[string]string) *StoreV2 {
	t.Helper()
	s := NewV2(nil)
	if err := s.Init(context.Background(), tb.md(props)); err != nil {
		t.Fatalf("init v2: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformanceV2(t *testing.T) {
	tb := newV2Tables(t)
	statetest.Run(t, func(t *testing.T) state.Store { return openV2(t, tb, nil) })
}

// createAsDapr makes the tables exactly as daprd's state.postgresql v2
// migration does, and records its migration level.
func createAsDapr(t *testing.T, tb v2Tables) {
	t.Helper()
	c := rawConn(t)
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS ` + tb.meta + ` (key text NOT NULL PRIMARY KEY, value text NOT NULL)`,
		`INSERT INTO ` + tb.meta + ` (key, value) VALUES ('lock', 'lock') ON CONFLICT (key) DO NOTHING`,
		`CREATE TABLE IF NOT EXISTS ` + tb.state + ` (
			key text NOT NULL PRIMARY KEY,
			value bytea NOT NULL,
			etag uuid NOT NULL DEFAULT gen_random_uuid(),
			created_at timestamp with time zone NOT NULL DEFAULT now(),
			updated_at timestamp with time zone,
			expires_at timestamp with time zone
		)`,
		`CREATE INDEX ON ` + tb.state + ` (expires_at)`,
		`INSERT INTO ` + tb.meta + ` (key, value) VALUES ('migrations-state-v2-` + tb.prefix + `', '1')`,
	} {
		if _, err := c.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestV2ReadsWhatDaprWrote: rows written with daprd's v2 SQL, in tables
// daprd created, read back through the store byte for byte, with their
// etags and expiry; the store's conditional writes take daprd's etags.
func TestV2ReadsWhatDaprWrote(t *testing.T) {
	tb := newV2Tables(t)
	createAsDapr(t, tb)
	c := rawConn(t)
	ctx := context.Background()
	binary := []byte{0xff, 0, 1, '"', 0x80}
	// daprd's upsert: the value's bytes (JSON text from HTTP, raw bytes from
	// gRPC), a fresh UUID as etag, expires_at from ttlInSeconds.
	insert := `INSERT INTO ` + tb.state + ` AS t (key, value, etag, expires_at) VALUES ($1, $2, gen_random_uuid(), `
	for _, row := range []struct {
		key     string
		value   []byte
		expires string
	}{
		{"app||json", []byte(`{"name":"dapr","n":1}`), "NULL"},
		{"app||bin", binary, "NULL"},
		{"app||ttl", []byte(`"soon"`), "now() + interval '60 seconds'"},
		{"app||expired", []byte(`"gone"`), "now() - interval '1 second'"},
	} {
		if _, err := c.Exec(ctx, insert+row.expires+`)`, row.key, row.value); err != nil {
			t.Fatalf("insert %s: %v", row.key, err)
		}
	}
	s := openV2(t, tb, nil)

	if n := tb.indexes(t, "%(expires_at)%"); n != 1 {
		t.Fatalf("expires_at indexes = %d; want daprd's one (the store must not migrate again)", n)
	}
	etagOf := func(key string) string {
		var e string
		if err := c.QueryRow(ctx, `SELECT etag::text FROM `+tb.state+` WHERE key = $1`, key).Scan(&e); err != nil {
			t.Fatalf("etag of %s: %v", key, err)
		}
		return e
	}

	r, err := s.Get(ctx, &state.GetRequest{Key: "app||json"})
	if err != nil || r == nil || string(r.Data) != `{"name":"dapr","n":1}` || *r.ETag != etagOf("app||json") {
		t.Fatalf("json row: %+v, %v", r, err)
	}
	if r.Metadata != nil {
		t.Errorf("row without expiry has metadata %v", r.Metadata)
	}
	r, err = s.Get(ctx, &state.GetRequest{Key: "app||bin"})
	if err != nil || r == nil || !bytes.Equal(r.Data, binary) {
		t.Fatalf("binary row: %+v, %v", r, err)
	}
	r, err = s.Get(ctx, &state.GetRequest{Key: "app||ttl"})
	if err != nil || r == nil || string(r.Data) != `"soon"` {
		t.Fatalf("ttl row: %+v, %v", r, err)
	}
	exp, err := time.Parse(time.RFC3339, r.Metadata[state.MetadataTTLExpireTime])
	if err != nil || time.Until(exp) < 50*time.Second || time.Until(exp) > 70*time.Second {
		t.Errorf("ttlExpireTime %q (%v), want about a minute from now", r.Metadata[state.MetadataTTLExpireTime], err)
	}
	if r, err := s.Get(ctx, &state.GetRequest{Key: "app||expired"}); err != nil || r != nil {
		t.Fatalf("expired row = %+v, %v; want missing", r, err)
	}
	bulk, err := s.BulkGet(ctx, []state.GetRequest{{Key: "app||bin"}, {Key: "app||expired"}, {Key: "app||json"}})
	if err != nil || len(bulk) != 3 || !bytes.Equal(bulk[0].Data, binary) || bulk[1].Data != nil || *bulk[2].ETag != etagOf("app||json") {
		t.Fatalf("bulk get = %+v, %v", bulk, err)
	}

	// daprd's etag works for the store's conditional writes, in any form
	// daprd accepts.
	daprETag := etagOf("app||json")
	upper := "{" + strings.ToUpper(daprETag) + "}"
	if err := s.Set(ctx, &state.SetRequest{Key: "app||json", Value: []byte(`{"name":"tandem"}`), ETag: &upper}); err != nil {
		t.Fatalf("set with daprd's etag: %v", err)
	}
	if now := etagOf("app||json"); now == daprETag {
		t.Fatal("etag unchanged by a write")
	}
	err = s.Delete(ctx, &state.DeleteRequest{Key: "app||json", ETag: &daprETag})
	if !errors.Is(err, state.ErrETagMismatch) {
		t.Fatalf("delete with the old etag: %v, want a mismatch", err)
	}
	// The expired row is free for first-write.
	if err := s.Set(ctx, &state.SetRequest{Key: "app||expired", Value: []byte(`"back"`),
		Options: state.Options{Concurrency: state.FirstWrite}}); err != nil {
		t.Fatalf("first-write over daprd's expired row: %v", err)
	}
}

// TestV2WritesWhatDaprReads: the tables the store creates and the rows it
// writes have daprd's v2 shape, and daprd's own queries read and update
// them.
func TestV2WritesWhatDaprReads(t *testing.T) {
	tb := newV2Tables(t)
	s := openV2(t, tb, nil)
	c := rawConn(t)
	ctx := context.Background()

	rows, err := c.Query(ctx, `SELECT column_name || ':' || data_type || ':' || is_nullable || ':' || coalesce(column_default, '')
		FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`, tb.state)
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for rows.Next() {
		var col string
		if err := rows.Scan(&col); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, col)
	}
	want := []string{
		"key:text:NO:",
		"value:bytea:NO:",
		"etag:uuid:NO:gen_random_uuid()",
		"created_at:timestamp with time zone:NO:now()",
		"updated_at:timestamp with time zone:YES:",
		"expires_at:timestamp with time zone:YES:",
	}
	if strings.Join(cols, " ") != strings.Join(want, " ") {
		t.Fatalf("columns:\n got %v\nwant %v", cols, want)
	}
	if pk, idx := tb.indexes(t, "%UNIQUE%(key)%"), tb.indexes(t, "%(expires_at)%"); pk != 1 || idx != 1 {
		t.Fatalf("indexes: primary key %d, expires_at %d; want 1 and 1", pk, idx)
	}
	meta := map[string]string{}
	mrows, err := c.Query(ctx, `SELECT key, value FROM `+tb.meta)
	if err != nil {
		t.Fatal(err)
	}
	for mrows.Next() {
		var k, v string
		_ = mrows.Scan(&k, &v)
		meta[k] = v
	}
	if meta["migrations-state-v2-"+tb.prefix] != "1" || meta["lock"] == "" {
		t.Fatalf("metadata table = %v; want the migration level 1 under migrations-state-v2-%s and the lock row", meta, tb.prefix)
	}

	binary := []byte{0, 0xfe, '{'}
	if err := s.Set(ctx, &state.SetRequest{Key: "app||json", Value: []byte(`{"a": [1, 2]}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, &state.SetRequest{Key: "app||bin", Value: binary, IsBinary: true,
		Metadata: map[string]string{state.MetadataTTL: "60"}}); err != nil {
		t.Fatal(err)
	}
	tandem, err := s.Get(ctx, &state.GetRequest{Key: "app||bin"})
	if err != nil || tandem == nil {
		t.Fatalf("get: %+v, %v", tandem, err)
	}

	// daprd's Get query.
	daprGet := func(key string) (value []byte, etag *string, expires *time.Time) {
		t.Helper()
		err := c.QueryRow(ctx, `SELECT value, etag, expires_at FROM `+tb.state+
			` WHERE key = $1 AND (expires_at IS NULL OR expires_at >= now())`, key).Scan(&value, &etag, &expires)
		if err != nil {
			t.Fatalf("daprd's get of %s: %v", key, err)
		}
		return value, etag, expires
	}
	value, etag, expires := daprGet("app||json")
	if string(value) != `{"a": [1, 2]}` || expires != nil {
		t.Fatalf("json row as daprd reads it: %q, expires %v", value, expires)
	}
	if r, err := s.Get(ctx, &state.GetRequest{Key: "app||json"}); err != nil || r == nil || *r.ETag != *etag {
		t.Fatalf("daprd reads etag %q, the store returned %+v (%v)", *etag, r, err)
	}
	value, etag, expires = daprGet("app||bin")
	if !bytes.Equal(value, binary) || expires == nil || time.Until(*expires) < 50*time.Second {
		t.Fatalf("binary row as daprd reads it: %v, expires %v", value, expires)
	}
	if *etag != *tandem.ETag {
		t.Fatalf("daprd reads etag %q, the store returned %q", *etag, *tandem.ETag)
	}
	var created time.Time
	var updated *time.Time
	_ = c.QueryRow(ctx, `SELECT created_at, updated_at FROM `+tb.state+` WHERE key = 'app||bin'`).Scan(&created, &updated)
	if created.IsZero() || updated != nil {
		t.Fatalf("new row: created_at %v, updated_at %v; want set and NULL", created, updated)
	}

	// daprd's conditional update with the etag the store gave.
	tag, err := c.Exec(ctx, `UPDATE `+tb.state+` SET value = $2, updated_at = now(), etag = gen_random_uuid(), expires_at = NULL
		WHERE key = $1 AND etag = $3 AND (expires_at IS NULL OR expires_at >= now())`, "app||bin", []byte(`"dapr"`), *tandem.ETag)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("daprd's update with the store's etag: %v rows, %v", tag.RowsAffected(), err)
	}
	r, err := s.Get(ctx, &state.GetRequest{Key: "app||bin"})
	if err != nil || r == nil || string(r.Data) != `"dapr"` || *r.ETag == *tandem.ETag || r.Metadata != nil {
		t.Fatalf("after daprd's update: %+v, %v", r, err)
	}
	// An overwrite through the store sets updated_at, as daprd's does.
	if err := s.Set(ctx, &state.SetRequest{Key: "app||json", Value: []byte(`2`)}); err != nil {
		t.Fatal(err)
	}
	_ = c.QueryRow(ctx, `SELECT updated_at FROM `+tb.state+` WHERE key = 'app||json'`).Scan(&updated)
	if updated == nil {
		t.Fatal("overwrite left updated_at NULL")
	}
	// Opening again migrates nothing.
	openV2(t, tb, nil)
	if n := tb.indexes(t, "%(expires_at)%"); n != 1 {
		t.Fatalf("%d expires_at indexes after a second Init", n)
	}
}

// TestV2ConcurrentInit: sidecars starting together on fresh tables take
// turns migrating (the lock row), and the table is made once.
func TestV2ConcurrentInit(t *testing.T) {
	tb := newV2Tables(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s := NewV2(nil)
			err := s.Init(context.Background(), tb.md(nil))
			_ = s.Close()
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent init: %v", err)
		}
	}
	if n := tb.indexes(t, "%(expires_at)%"); n != 1 {
		t.Fatalf("expires_at indexes = %d; want 1", n)
	}
}

func TestV2CleanupExpired(t *testing.T) {
	tb := newV2Tables(t)
	s := openV2(t, tb, map[string]string{"cleanupInterval": "0"})
	c := rawConn(t)
	ctx := context.Background()
	expired := `INSERT INTO ` + tb.state + ` (key, value, expires_at) VALUES ($1, '\x01', now() - interval '1 minute')`
	if _, err := c.Exec(ctx, expired, "app||old"); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, &state.SetRequest{Key: "app||live", Value: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	n, err := s.CleanupExpired(ctx, time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("cleanup = %d, %v; want 1 row", n, err)
	}
	var last string
	if err := c.QueryRow(ctx, `SELECT value FROM `+tb.meta+` WHERE key = $1`, "last-cleanup-state-v2-"+tb.prefix).Scan(&last); err != nil {
		t.Fatalf("last cleanup not recorded under daprd's key: %v", err)
	}
	// Within the interval (daprd's sweep counts too) a second sweep does nothing.
	if _, err := c.Exec(ctx, expired, "app||old2"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CleanupExpired(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("second cleanup within the interval = %d, %v; want 0", n, err)
	}
	if r, err := s.Get(ctx, &state.GetRequest{Key: "app||live"}); err != nil || r == nil {
		t.Fatalf("live row after cleanup: %+v, %v", r, err)
	}
}

// TestV2RefusesV1Table: v1 and v2 both default to a table named "state";
// v2 must not start on a v1 table.
func TestV2RefusesV1Table(t *testing.T) {
	tb := newV2Tables(t)
	v1 := New(nil)
	err := v1.Init(context.Background(), components.Metadata{Name: "pg", Type: Type, Version: "v1", Properties: map[string]string{
		"connectionString": dsn, "tableName": tb.state, "metadataTableName": tb.meta}})
	if err != nil {
		t.Fatal(err)
	}
	_ = v1.Close()
	err = NewV2(nil).Init(context.Background(), tb.md(nil))
	if err == nil || !strings.Contains(err.Error(), "not in the state.postgresql v2 layout") || !strings.Contains(err.Error(), "tablePrefix") {
		t.Fatalf("v2 on a v1 table: %v", err)
	}
}

func TestVersions(t *testing.T) {
	vs := Versions(nil)
	for version, want := range map[string]string{"": "*postgresql.Store", "v1": "*postgresql.Store", "V2": "*postgresql.StoreV2"} {
		s, err := vs.Build(Type, version)
		if err != nil {
			t.Fatalf("version %q: %v", version, err)
		}
		got := "*postgresql.Store"
		if _, ok := s.(*StoreV2); ok {
			got = "*postgresql.StoreV2"
		}
		if got != want {
			t.Errorf("version %q built %s, want %s", version, got, want)
		}
		if _, isQ := s.(state.Querier); isQ != (got == "*postgresql.Store") {
			t.Errorf("version %q: query API = %v; only v1 has it", version, isQ)
		}
	}
	if _, err := vs.Build(Type, "v3"); err == nil || !strings.Contains(err.Error(), "v1, v2") {
		t.Errorf("v3: %v", err)
	}
	// A store refuses metadata of the other version.
	for _, s := range []state.Store{New(nil), NewV2(nil)} {
		other := "v2"
		if _, ok := s.(*StoreV2); ok {
			other = "v1"
		}
		err := s.Init(context.Background(), components.Metadata{Name: "pg", Type: Type, Version: other,
			Properties: map[string]string{"connectionString": dsn}})
		if err == nil || !strings.Contains(err.Error(), "postgresql.Versions") {
			t.Errorf("%T with spec.version %s: %v", s, other, err)
		}
	}
}

var configV2Cases = []struct {
	name      string
	props     map[string]string
	wantTable string
	wantErr   string
}{
	{"defaults", map[string]string{"connectionString": "x"}, "state", ""},
	{"prefix", map[string]string{"connectionString": "x", "tablePrefix": "app_"}, "app_state", ""},
	{"schema prefix", map[string]string{"connectionString": "x", "tablePrefix": "myschema."}, "myschema.state", ""},
	{"tableName is not v2's", map[string]string{"connectionString": "x", "tableName": "mine"}, "state", ""},
	{"bad prefix", map[string]string{"connectionString": "x", "tablePrefix": "a;"}, "", `tablePrefix "a;"`},
	{"missing connection string", map[string]string{}, "", "connectionString is required"},
}

func TestConfigV2(t *testing.T) {
	for _, tc := range configV2Cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(components.Metadata{Name: "pg", Version: "v2", Properties: tc.props}, "v2")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.tableName != tc.wantTable {
				t.Fatalf("table %q, err %v; want %q", c.tableName, err, tc.wantTable)
			}
		})
	}
}

func TestCanonicalUUID(t *testing.T) {
	const want = "0f8fad5b-d9cb-469f-a165-70867728950e"
	for _, in := range []string{
		want,
		"0F8FAD5B-D9CB-469F-A165-70867728950E",
		"0f8fad5bd9cb469fa16570867728950e",
		"{0f8fad5b-d9cb-469f-a165-70867728950e}",
		"urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e",
	} {
		if got, ok := canonicalUUID(in); !ok || got != want {
			t.Errorf("canonicalUUID(%q) = %q, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "42", "not-an-etag", "0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5b+d9cb-469f-a165-70867728950e",
		"0f8fad5g-d9cb-469f-a165-70867728950e", "{0f8fad5bd9cb469fa16570867728950e}"} {
		if got, ok := canonicalUUID(in); ok {
			t.Errorf("canonicalUUID(%q) = %q, want refused", in, got)
		}
	}
}

func FuzzCanonicalUUID(f *testing.F) {
	for _, s := range []string{"0f8fad5b-d9cb-469f-a165-70867728950e", "{0F8FAD5BD9CB469FA16570867728950E}", "urn:uuid:", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := canonicalUUID(s)
		if !ok {
			return
		}
		// The result is canonical, and canonical input comes back as is.
		if len(got) != 36 || strings.ToLower(got) != got {
			t.Fatalf("canonicalUUID(%q) = %q", s, got)
		}
		if again, ok := canonicalUUID(got); !ok || again != got {
			t.Fatalf("canonicalUUID(%q) = %q, %v; not stable", got, again, ok)
		}
	})
}
