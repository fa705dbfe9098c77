package redis

import (
	"testing"
	"time"
)

func FuzzEntryTime(f *testing.F) {
	for _, s := range []string{"1700000000000-0", "0-1", "", "-", "abc-1", "1-", "99999999999999999999-0", "1700000000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		got := entryTime(id)
		if !got.IsZero() && got.UnixMilli() <= 0 {
			t.Fatalf("entryTime(%q) = %v, want zero or after the epoch", id, got)
		}
	})
}

func TestEntryTime(t *testing.T) {
	if got, want := entryTime("1700000000123-7"), time.UnixMilli(1700000000123); !got.Equal(want) {
		t.Errorf("entryTime = %v, want %v", got, want)
	}
	for _, id := range []string{"", "0-0", "x-1", "12"} {
		if got := entryTime(id); !got.IsZero() {
			t.Errorf("entryTime(%q) = %v, want zero", id, got)
		}
	}
}
