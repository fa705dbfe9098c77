package filewatch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

const interval = time.Second

// step is one thing that happens in a scenario: a write (or removal) of
// the file, then time passing; applied is then what Apply has received.
type step struct {
	write   *string // nil: leave the file; "" with remove: remove it
	remove  bool
	wait    time.Duration
	applied []string
}

func content(s string) *string { return &s }

func TestWatcher(t *testing.T) {
	tests := []struct {
		name    string
		current *string // nil: no Current
		initial string  // the file when Run starts
		invalid string  // content Apply refuses
		steps   []step
	}{
		{
			name: "a change is applied once two polls saw it", current: content("v1"), initial: "v1",
			steps: []step{
				{wait: interval + interval/2},
				{write: content("v2"), wait: interval, applied: nil},
				{wait: interval, applied: []string{"v2"}},
				{wait: 3 * interval, applied: []string{"v2"}},
			},
		},
		{
			name: "a half-written file is never applied", current: content("v1"), initial: "v1",
			steps: []step{
				{wait: interval / 2},
				{write: content("v2 (half"), wait: interval},
				{write: content("v2 (half written, now whole)"), wait: interval},
				{wait: interval, applied: []string{"v2 (half written, now whole)"}},
			},
		},
		{
			name: "an empty file caught mid-write is never applied", current: content("v1"), initial: "v1",
			steps: []step{
				{wait: interval / 2},
				{write: content(""), wait: interval},
				{write: content("v2"), wait: interval, applied: nil},
				{wait: interval, applied: []string{"v2"}},
			},
		},
		{
			name: "the same bytes rewritten are no change", current: content("v1"), initial: "v1",
			steps: []step{
				{write: content("v1"), wait: 5 * interval},
			},
		},
		{
			name: "without Current the first content is new", initial: "v1",
			steps: []step{
				{wait: interval + interval/2},
				{wait: interval, applied: []string{"v1"}},
			},
		},
		{
			name: "a missing file is no change", current: content("v1"), initial: "v1",
			steps: []step{
				{wait: interval / 2},
				{remove: true, wait: 3 * interval},
				{write: content("v1"), wait: 3 * interval},
			},
		},
		{
			name: "refused content is not offered again until one is applied; going back is no change", current: content("v1"), initial: "v1", invalid: "bad",
			steps: []step{
				{wait: interval / 2},
				{write: content("bad"), wait: 5 * interval, applied: []string{"bad"}},
				{write: content("v1"), wait: 3 * interval, applied: []string{"bad"}},
				{write: content("bad"), wait: 3 * interval, applied: []string{"bad"}},
				{write: content("v3"), wait: 2 * interval, applied: []string{"bad", "v3"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				file := filepath.Join(t.TempDir(), "f")
				if err := os.WriteFile(file, []byte(tt.initial), 0o600); err != nil {
					t.Fatal(err)
				}
				var (
					mu      sync.Mutex
					applied []string
				)
				w := &Watcher{
					Read: func() ([]byte, error) { return os.ReadFile(file) },
					Apply: func(b []byte) error {
						mu.Lock()
						defer mu.Unlock()
						applied = append(applied, string(b))
						if tt.invalid != "" && string(b) == tt.invalid {
							return errors.New("invalid")
						}
						return nil
					},
					Interval: interval,
				}
				if tt.current != nil {
					w.Current = []byte(*tt.current)
				}
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- w.Run(ctx) }()
				for i, s := range tt.steps {
					switch {
					case s.remove:
						if err := os.Remove(file); err != nil {
							t.Fatal(err)
						}
					case s.write != nil:
						if err := os.WriteFile(file, []byte(*s.write), 0o600); err != nil {
							t.Fatal(err)
						}
					}
					time.Sleep(s.wait)
					synctest.Wait()
					mu.Lock()
					got := slices.Clone(applied)
					mu.Unlock()
					if !slices.Equal(got, s.applied) {
						t.Fatalf("after step %d: applied %q, want %q", i, got, s.applied)
					}
				}
				cancel()
				if err := <-done; err != nil {
					t.Fatalf("Run returned %v when its context ended", err)
				}
			})
		})
	}
}

func TestWatcherNeedsReadAndApply(t *testing.T) {
	for _, w := range []*Watcher{{}, {Read: func() ([]byte, error) { return nil, nil }}, {Apply: func([]byte) error { return nil }}} {
		if err := w.Run(t.Context()); err == nil {
			t.Errorf("Run(%+v) accepted a watcher without Read or Apply", w)
		}
	}
}
