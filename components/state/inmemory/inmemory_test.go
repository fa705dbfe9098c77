package inmemory

import (
	"context"
	"slices"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/statetest"
)

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Store {
		s := New()
		if err := s.Init(context.Background(), components.Metadata{Name: "mem", Type: Type}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// TestConformanceQueryable runs the suite, query API included, on the
// querying variant the API layer's tests use.
func TestConformanceQueryable(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Store {
		s := NewQueryable()
		if err := s.Init(context.Background(), components.Metadata{Name: "memq", Type: Type}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestCloseIsIdempotent(t *testing.T) {
	s := New()
	if err := s.Init(context.Background(), components.Metadata{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := s.Close(); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
	}
}

// TestCapabilities pins /v1.0/metadata's list, order included, to daprd's
// for state.in-memory.
func TestCapabilities(t *testing.T) {
	got := state.Capabilities(New().Features())
	want := []string{"ETAG", "TRANSACTIONAL", "TTL", "DELETE_WITH_PREFIX", "KEYS_LIKE", "ACTOR"}
	if !slices.Equal(got, want) {
		t.Errorf("capabilities = %q, want %q", got, want)
	}
}

// TestKeysLikeOrder: last-write order, as Dapr's state.in-memory.
func TestKeysLikeOrder(t *testing.T) {
	s := New()
	if err := s.Init(context.Background(), components.Metadata{Name: "mem", Type: Type}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	statetest.KeysLikeOrder(t, s, true)
}
