package sqlitesource

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandemrun/tandem/xds"
)

// TestSourceFollowsTheTable writes rows as sidecars do (Dapr's hosts table,
// WAL mode, from another connection) and waits for the pushed change.
func TestSourceFollowsTheTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nr.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE hosts (registration_id TEXT NOT NULL PRIMARY KEY, address TEXT NOT NULL,
app_id TEXT NOT NULL, namespace TEXT NOT NULL, last_update INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	src, err := New(Options{Path: path, UpdateInterval: 5 * time.Second, Recheck: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	defer func() { cancel(); <-done }()

	wait := func(want []xds.App) {
		t.Helper()
		timeout := time.After(20 * time.Second) // a bound for a hung test, not a latency check
		for {
			got := src.Apps()
			if xds.EqualApps(got, want) {
				return
			}
			select {
			case <-src.Changed():
			case <-timeout:
				t.Fatalf("apps %+v, want %+v", got, want)
			}
		}
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`INSERT INTO hosts VALUES ('a', '127.0.0.1:4001', 'orders', 'default', unixepoch(CURRENT_TIMESTAMP))`)
	exec(`INSERT INTO hosts VALUES ('b', '127.0.0.1:4002', 'orders', '', unixepoch(CURRENT_TIMESTAMP) - 60)`)
	wait([]xds.App{{ID: "orders", Namespace: "default", Endpoints: []xds.Endpoint{
		{Host: "127.0.0.1", Port: 4001, Health: xds.Healthy}, {Host: "127.0.0.1", Port: 4002, Health: xds.Unhealthy},
	}}})
	exec(`DELETE FROM hosts WHERE registration_id = 'a'`)
	wait([]xds.App{{ID: "orders", Namespace: "default", Endpoints: []xds.Endpoint{{Host: "127.0.0.1", Port: 4002, Health: xds.Unhealthy}}}})
}

func TestNewRejects(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("no path accepted")
	}
	if _, err := New(Options{Path: "x.db", Table: "hosts; DROP"}); err == nil {
		t.Error("bad table name accepted")
	}
}
