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

// TestTryLookup: TryLookup answers as Lookup does once the table is in
// effect, and says "not settled" (rather than waiting) where Lookup would
// wait: before the first table and while a type is being rebalanced.
func TestTryLookup(t *testing.T) {
	tbl := NewTable()
	if _, settled, err := tbl.TryLookup("counter", "1"); settled || err != nil {
		t.Fatalf("before any table: settled %v, %v; want not settled", settled, err)
	}
	tbl.update(tables("1", "127.0.0.1:5000"), 1)
	if _, settled, _ := tbl.TryLookup("counter", "1"); settled {
		t.Fatal("settled between the first update and its unlock")
	}
	tbl.unlock(1)
	h, settled, err := tbl.TryLookup("counter", "1")
	if !settled || err != nil || h.Name != "127.0.0.1:5000" {
		t.Fatalf("in effect: %+v, settled %v, %v; want 127.0.0.1:5000", h, settled, err)
	}
	want, err := tbl.Lookup(context.Background(), "counter", "1")
	if err != nil || want != h {
		t.Fatalf("Lookup %+v, %v; TryLookup %+v", want, err, h)
	}
	if _, settled, err := tbl.TryLookup("other", "1"); !settled || !errors.Is(err, ErrNoAddress) {
		t.Fatalf("type not in the table: settled %v, %v; want ErrNoAddress", settled, err)
	}
	tbl.update(tables("2", "127.0.0.1:5000", "127.0.0.1:5001"), 2)
	if _, settled, _ := tbl.TryLookup("counter", "1"); settled {
		t.Fatal("settled while the type's ring changes")
	}
	tbl.unlock(2)
	if _, settled, err := tbl.TryLookup("counter", "1"); !settled || err != nil {
		t.Fatalf("after the unlock: settled %v, %v", settled, err)
	}
}
