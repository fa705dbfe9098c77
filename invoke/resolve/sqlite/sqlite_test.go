package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/invoke/resolve"
)

func dbPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "nr.db")
}

// start builds a resolver on path and runs it; appID "" makes a
// resolve-only one.
func start(t *testing.T, path, appID, ns string, port int, extra map[string]any) *Resolver {
	t.Helper()
	r := build(t, path, appID, ns, port, extra)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// build builds a resolver on path without running its loops.
func build(t *testing.T, path, appID, ns string, port int, extra map[string]any) *Resolver {
	t.Helper()
	cfg := map[string]any{"connectionString": path, "updateInterval": "2s", "timeout": "1s"}
	for k, v := range extra {
		cfg[k] = v
	}
	r, err := New(resolve.Config{
		Self:          resolve.Instance{AppID: appID, Namespace: ns, Address: "127.0.0.1", InternalPort: port},
		Configuration: cfg,
	})
	if err != nil {
		t.Fatalf("New(%s): %v", appID, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// rawDB opens the file as another process would, without our code.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(2000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestTwoSidecarsFindEachOther(t *testing.T) {
	path := dbPath(t)
	orders := start(t, path, "orders", "default", 50001, nil)
	checkout := start(t, path, "checkout", "default", 50002, nil)
	ctx := context.Background()

	tests := []struct {
		from *Resolver
		app  string
		want string
	}{
		{orders, "checkout", "127.0.0.1:50002"},
		{checkout, "orders", "127.0.0.1:50001"},
		{orders, "orders", "127.0.0.1:50001"},
	}
	for _, tt := range tests {
		got, err := tt.from.Resolve(ctx, resolve.Request{AppID: tt.app, Namespace: "default"})
		if err != nil {
			t.Fatalf("resolve %s: %v", tt.app, err)
		}
		if got != tt.want {
			t.Fatalf("resolve %s = %q, want %q", tt.app, got, tt.want)
		}
	}
}

func TestRoundRobin(t *testing.T) {
	path := dbPath(t)
	start(t, path, "orders", "", 50001, nil)
	start(t, path, "orders", "", 50002, nil)
	client := start(t, path, "", "", 0, nil)

	seen := map[string]int{}
	var prev string
	for i := range 6 {
		got, err := client.Resolve(context.Background(), resolve.Request{AppID: "orders"})
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && got == prev {
			t.Fatalf("call %d returned %q twice in a row", i, got)
		}
		prev = got
		seen[got]++
	}
	if seen["127.0.0.1:50001"] != 3 || seen["127.0.0.1:50002"] != 3 {
		t.Fatalf("uneven spread: %v", seen)
	}
	list, err := client.List(context.Background(), resolve.Request{AppID: "orders"})
	if err != nil || strings.Join(list, ",") != "127.0.0.1:50001,127.0.0.1:50002" {
		t.Fatalf("List = %v, %v", list, err)
	}
}

func TestStaleRowsAreNotReturned(t *testing.T) {
	path := dbPath(t)
	client := start(t, path, "", "", 0, nil)
	db := rawDB(t, path)
	// A sidecar killed 10s ago (updateInterval is 2s) and one killed just
	// at the edge (age == updateInterval: Dapr's "<" excludes it).
	exec(t, db, `INSERT INTO hosts VALUES ('dead', '127.0.0.1:1', 'orders', '', unixepoch(CURRENT_TIMESTAMP) - 10)`)
	exec(t, db, `INSERT INTO hosts VALUES ('edge', '127.0.0.1:2', 'orders', '', unixepoch(CURRENT_TIMESTAMP) - 2)`)

	_, err := client.Resolve(context.Background(), resolve.Request{AppID: "orders"})
	if !errors.Is(err, resolve.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	for _, want := range []string{`"orders"`, path, "connectionString"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not mention %s", err, want)
		}
	}

	// A live row, written now: its age stays under updateInterval even across a second boundary.
	exec(t, db, `INSERT INTO hosts VALUES ('live', '127.0.0.1:3', 'orders', '', unixepoch(CURRENT_TIMESTAMP))`)
	got, err := client.Resolve(context.Background(), resolve.Request{AppID: "orders"})
	if err != nil || got != "127.0.0.1:3" {
		t.Fatalf("Resolve = %q, %v; want the live row", got, err)
	}
}

func TestCloseDeregisters(t *testing.T) {
	path := dbPath(t)
	orders := start(t, path, "orders", "", 50001, nil)
	client := start(t, path, "", "", 0, nil)
	ctx := context.Background()
	if _, err := client.Resolve(ctx, resolve.Request{AppID: "orders"}); err != nil {
		t.Fatal(err)
	}
	if err := orders.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := orders.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := client.Resolve(ctx, resolve.Request{AppID: "orders"}); !errors.Is(err, resolve.ErrNotFound) {
		t.Fatalf("after Close: err = %v, want ErrNotFound", err)
	}
	var n int
	if err := rawDB(t, path).QueryRow("SELECT count(*) FROM hosts").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after Close = %d, %v", n, err)
	}
}

func TestNamespaces(t *testing.T) {
	path := dbPath(t)
	start(t, path, "orders", "prod", 50001, nil)
	client := start(t, path, "", "", 0, nil)
	// A row written by daprd, which always stores namespace "".
	exec(t, rawDB(t, path), `INSERT INTO hosts VALUES ('dapr', '127.0.0.1:7', 'cart', '', unixepoch(CURRENT_TIMESTAMP))`)

	tests := []struct {
		app, ns string
		want    string // "" = not found
	}{
		{"orders", "prod", "127.0.0.1:50001"},
		{"orders", "", "127.0.0.1:50001"},
		{"orders", "dev", ""},
		{"cart", "dev", "127.0.0.1:7"},
		{"cart", "", "127.0.0.1:7"},
	}
	for _, tt := range tests {
		t.Run(tt.app+"/"+tt.ns, func(t *testing.T) {
			got, err := client.Resolve(context.Background(), resolve.Request{AppID: tt.app, Namespace: tt.ns})
			if tt.want == "" {
				if !errors.Is(err, resolve.ErrNotFound) {
					t.Fatalf("got %q, %v; want ErrNotFound", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// Dapr's schema, from components-contrib nameresolution/sqlite
// (sqlite_migrations.go) and common/component/sql/migrations/sqlite.
func TestTableLayoutMatchesDapr(t *testing.T) {
	path := dbPath(t)
	start(t, path, "orders", "", 50001, map[string]any{"tableName": "nr_hosts", "metadataTableName": "nr_meta"})
	db := rawDB(t, path)

	type col struct {
		name, typ string
		notNull   bool
		pk        int
	}
	columns := func(table string) []col {
		rows, err := db.Query(fmt.Sprintf("PRAGMA table_info(%s)", table))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []col
		for rows.Next() {
			var (
				cid     int
				c       col
				notNull int
				dflt    sql.NullString
			)
			if err := rows.Scan(&cid, &c.name, &c.typ, &notNull, &dflt, &c.pk); err != nil {
				t.Fatal(err)
			}
			c.notNull = notNull == 1
			out = append(out, c)
		}
		return out
	}
	wantHosts := []col{
		{"registration_id", "TEXT", true, 1},
		{"address", "TEXT", true, 0},
		{"app_id", "TEXT", true, 0},
		{"namespace", "TEXT", true, 0},
		{"last_update", "INTEGER", true, 0},
	}
	if got := columns("nr_hosts"); fmt.Sprint(got) != fmt.Sprint(wantHosts) {
		t.Fatalf("hosts columns:\n got %v\nwant %v", got, wantHosts)
	}
	wantMeta := []col{{"key", "TEXT", true, 1}, {"value", "TEXT", true, 0}}
	if got := columns("nr_meta"); !strings.EqualFold(fmt.Sprint(got), fmt.Sprint(wantMeta)) {
		t.Fatalf("metadata columns:\n got %v\nwant %v", got, wantMeta)
	}

	indexes := map[string]int{}
	rows, err := db.Query("PRAGMA index_list(nr_hosts)")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var (
			seq, unique, partial int
			name, origin         string
		)
		if err := rows.Scan(&seq, &name, &unique, &origin, &partial); err != nil {
			t.Fatal(err)
		}
		indexes[name] = unique
	}
	rows.Close()
	if u, ok := indexes["nr_hosts_address_idx"]; !ok || u != 1 {
		t.Fatalf("want unique index nr_hosts_address_idx, got %v", indexes)
	}
	if u, ok := indexes["nr_hosts_last_update_idx"]; !ok || u != 0 {
		t.Fatalf("want index nr_hosts_last_update_idx, got %v", indexes)
	}

	var level string
	if err := db.QueryRow("SELECT value FROM nr_meta WHERE key = 'nr-migrations'").Scan(&level); err != nil || level != "1" {
		t.Fatalf("nr-migrations = %q, %v; want 1", level, err)
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
}

// Rows written by our sidecar are found by Dapr's own lookup query, and a
// file already migrated by Dapr is used as is.
func TestDaprInterop(t *testing.T) {
	path := dbPath(t)
	db := rawDB(t, path)
	// The file as daprd leaves it.
	exec(t, db, `CREATE TABLE metadata (key text NOT NULL PRIMARY KEY, value text NOT NULL)`)
	for _, q := range strings.Split(migrations("hosts")[0], ";") {
		if strings.TrimSpace(q) != "" {
			exec(t, db, q)
		}
	}
	exec(t, db, `REPLACE INTO metadata (key, value) VALUES ('nr-migrations', '1')`)
	exec(t, db, `REPLACE INTO hosts (registration_id, address, app_id, namespace, last_update)
VALUES ('daprd-1', '127.0.0.1:50010', 'cart', '', unixepoch(CURRENT_TIMESTAMP))`)

	orders := start(t, path, "orders", "default", 50001, nil)
	if got, err := orders.Resolve(context.Background(), resolve.Request{AppID: "cart", Namespace: "default"}); err != nil || got != "127.0.0.1:50010" {
		t.Fatalf("resolve daprd's row = %q, %v", got, err)
	}

	// Dapr's ResolveID query, with updateInterval 5s.
	var addr string
	err := db.QueryRow(`SELECT address FROM hosts WHERE ROWID = (
		SELECT ROWID FROM hosts WHERE app_id = ? AND unixepoch(CURRENT_TIMESTAMP) - last_update < 5
		ORDER BY RANDOM() LIMIT 1)`, "orders").Scan(&addr)
	if err != nil || addr != "127.0.0.1:50001" {
		t.Fatalf("Dapr's query found %q, %v", addr, err)
	}
}

func TestHeartbeatRenewsAndReregisters(t *testing.T) {
	path := dbPath(t)
	orders := start(t, path, "orders", "", 50001, nil) // renews every 1s
	db := rawDB(t, path)
	exec(t, db, `UPDATE hosts SET last_update = unixepoch(CURRENT_TIMESTAMP) - 100`)

	fresh := func() bool {
		var age int64
		err := db.QueryRow(`SELECT unixepoch(CURRENT_TIMESTAMP) - last_update FROM hosts WHERE app_id = 'orders'`).Scan(&age)
		return err == nil && age < 2
	}
	waitFor(t, 4*time.Second, "heartbeat to refresh last_update", fresh)

	// Another process's cleanup removed our row: we come back.
	exec(t, db, `DELETE FROM hosts`)
	waitFor(t, 4*time.Second, "re-registration", fresh)
	if _, err := orders.Resolve(context.Background(), resolve.Request{AppID: "orders"}); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCleanup(t *testing.T) {
	path := dbPath(t)
	r := build(t, path, "orders", "", 50001, map[string]any{"cleanupInterval": "0"})
	db := rawDB(t, path)
	exec(t, db, `INSERT INTO hosts VALUES ('dead', '127.0.0.1:1', 'cart', '', unixepoch(CURRENT_TIMESTAMP) - 100)`)
	exec(t, db, `INSERT INTO hosts VALUES ('slow', '127.0.0.1:2', 'cart', '', unixepoch(CURRENT_TIMESTAMP) - 3)`)

	r.opts.CleanupInterval = time.Hour
	n, err := r.cleanup(context.Background(), r.staleAfter())
	if err != nil || n != 1 {
		t.Fatalf("cleanup removed %d, %v; want 1", n, err)
	}
	var left []string
	rows, _ := db.Query("SELECT registration_id FROM hosts ORDER BY registration_id")
	for rows.Next() {
		var id string
		rows.Scan(&id)
		left = append(left, id)
	}
	rows.Close()
	if len(left) != 2 || left[1] != "slow" {
		t.Fatalf("rows left = %v; want ours and the slow (not yet deletable) one", left)
	}

	// Another process cleaned up a moment ago: this one skips.
	exec(t, db, `INSERT INTO hosts VALUES ('dead2', '127.0.0.1:3', 'cart', '', 0)`)
	if n, err := r.cleanup(context.Background(), r.staleAfter()); err != nil || n != 0 {
		t.Fatalf("second cleanup removed %d, %v; want a skip", n, err)
	}
	// Long enough ago: proceeds.
	exec(t, db, `UPDATE metadata SET value = datetime('now', '-2 hours') WHERE key = 'nr-last-cleanup'`)
	if n, err := r.cleanup(context.Background(), r.staleAfter()); err != nil || n != 1 {
		t.Fatalf("third cleanup removed %d, %v; want 1", n, err)
	}
}

func TestManySidecarsStartTogether(t *testing.T) {
	path := dbPath(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := New(resolve.Config{
				Self:          resolve.Instance{AppID: "orders", Address: "127.0.0.1", InternalPort: 51000 + i},
				Configuration: map[string]any{"connectionString": path},
			})
			if err != nil {
				errs <- err
				return
			}
			t.Cleanup(func() { r.Close() })
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	client := start(t, path, "", "", 0, nil)
	list, err := client.List(context.Background(), resolve.Request{AppID: "orders"})
	if err != nil || len(list) != n {
		t.Fatalf("List = %v, %v; want %d instances", list, err, n)
	}
}

func TestNewErrors(t *testing.T) {
	path := dbPath(t)
	tests := []struct {
		name string
		self resolve.Instance
		cfg  map[string]any
		want string
	}{
		{"no connection string", resolve.Instance{}, map[string]any{}, "connectionString"},
		{"no address", resolve.Instance{AppID: "a", InternalPort: 1}, map[string]any{"connectionString": path}, "address"},
		{"no port", resolve.Instance{AppID: "a", Address: "127.0.0.1"}, map[string]any{"connectionString": path}, "port"},
		{"forbidden pragma", resolve.Instance{}, map[string]any{"connectionString": path + "?_pragma=journal_mode(DELETE)"}, "disableWAL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(resolve.Config{Self: tt.self, Configuration: tt.cfg})
			if err == nil {
				r.Close()
				t.Fatal("want error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestCloseStopsRun(t *testing.T) {
	r := build(t, dbPath(t), "orders", "", 50001, nil)
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still running after Close")
	}
	if err := r.Run(context.Background()); err != nil {
		t.Fatalf("Run after Close: %v", err)
	}
}
