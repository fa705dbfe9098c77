package sqlitebusy

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

func TestIsAndRetry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	a, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if _, err := a.Exec(`CREATE TABLE t (v INTEGER)`); err != nil {
		t.Fatal(err)
	}
	// a holds the write lock; b, with no busy_timeout, is refused at once.
	tx, err := a.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	write := func() error { _, err := b.Exec(`INSERT INTO t VALUES (2)`); return err }
	if err := write(); !Is(err) {
		t.Fatalf("write while locked: %v, want a busy error", err)
	}
	if Is(errors.New("database is locked")) || Is(nil) {
		t.Fatal("Is matched an error that is not SQLite's")
	}
	// Retry gets through once the lock is let go.
	go func() {
		time.Sleep(120 * time.Millisecond)
		_ = tx.Commit()
	}()
	if err := Retry(ctx, write); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	// And gives up with ctx, naming the last error.
	tx2, _ := a.BeginTx(ctx, nil)
	_, _ = tx2.Exec(`INSERT INTO t VALUES (3)`)
	defer tx2.Rollback()
	cctx, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
	defer cancel()
	if err := Retry(cctx, write); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("Retry past the deadline: %v", err)
	}
}
