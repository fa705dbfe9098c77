package state_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/inmemory"
)

// plain hides the in-memory store's BulkStore so the fallbacks run.
type plain struct{ state.Store }

func TestBulkFallback(t *testing.T) {
	ctx := context.Background()
	s := plain{inmemory.New()}
	if _, ok := state.Store(s).(state.BulkStore); ok {
		t.Fatal("test wrapper still a BulkStore")
	}
	if err := state.BulkSet(ctx, s, []state.SetRequest{{Key: "a", Value: []byte(`1`)}, {Key: "b", Value: []byte(`2`)}}); err != nil {
		t.Fatal(err)
	}
	got, err := state.BulkGet(ctx, s, []state.GetRequest{{Key: "a"}, {Key: "missing"}, {Key: "b"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || string(got[0].Data) != "1" || got[1].Data != nil || got[1].Key != "missing" || string(got[2].Data) != "2" || got[0].ETag == nil {
		t.Fatalf("bulk get = %+v", got)
	}
	stale := "stale"
	err = state.BulkSet(ctx, s, []state.SetRequest{{Key: "a", Value: []byte(`3`), ETag: &stale}, {Key: "c", Value: []byte(`4`)}})
	if !errors.Is(err, state.ErrETagMismatch) {
		t.Fatalf("bulk set with a stale etag: %v", err)
	}
	if r, _ := s.Get(ctx, &state.GetRequest{Key: "c"}); r == nil {
		t.Fatal("fallback bulk set stopped at the first error; Dapr attempts every key")
	}
	if err := state.BulkDelete(ctx, s, []state.DeleteRequest{{Key: "a"}, {Key: "b", ETag: &stale}}); !errors.Is(err, state.ErrETagMismatch) {
		t.Fatalf("bulk delete with a stale etag: %v", err)
	}
	if r, _ := s.Get(ctx, &state.GetRequest{Key: "a"}); r != nil {
		t.Fatal("a not deleted")
	}
}

// TestCapabilities: daprd lists ACTOR for every store with ETags and
// transactions.
func TestCapabilities(t *testing.T) {
	tests := []struct {
		in   []state.Feature
		want []string
	}{
		{[]state.Feature{state.FeatureETag, state.FeatureTransactional, state.FeatureTTL}, []string{"ETAG", "TRANSACTIONAL", "TTL", "ACTOR"}},
		{[]state.Feature{state.FeatureETag, state.FeatureTTL}, []string{"ETAG", "TTL"}},
		{[]state.Feature{state.FeatureTransactional}, []string{"TRANSACTIONAL"}},
		{nil, []string{}},
	}
	for _, tt := range tests {
		if got := state.Capabilities(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("Capabilities(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
