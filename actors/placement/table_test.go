package placement

import (
	"context"
	"errors"
	"testing"
)

// TestChangedAtUpdate: a caller holding Changed from before a round sees
// it closed by the round, and then finds the type it waited for.
func TestChangedAtUpdate(t *testing.T) {
	tbl := NewTable()
	tbl.update(tables("1", "127.0.0.1:5000"), 1)
	tbl.unlock(1)
	changed := tbl.Changed()
	if _, err := tbl.Lookup(context.Background(), "newtype", "1"); !errors.Is(err, ErrNoAddress) {
		t.Fatalf("lookup of a type not in the table: %v, want ErrNoAddress", err)
	}
	select {
	case <-changed:
		t.Fatal("Changed closed with no change")
	default:
	}
	in := tables("1", "127.0.0.1:5000")
	in.Entries["newtype"] = in.Entries[firstKey(in.Entries)]
	tbl.update(in, 2)
	tbl.unlock(2)
	select {
	case <-changed:
	default:
		t.Fatal("Changed not closed by the update")
	}
	if _, err := tbl.Lookup(context.Background(), "newtype", "1"); err != nil {
		t.Fatalf("lookup after the update: %v", err)
	}
}

func firstKey[V any](m map[string]V) string {
	for k := range m {
		return k
	}
	return ""
}
