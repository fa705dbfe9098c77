package actors

import (
	"errors"
	"testing"

	"github.com/tandemrun/tandem/components/state"
)

// TestTransactETag: an operation's ETag reaches the store: a stale one
// fails the whole transaction with ErrETagMismatch and writes nothing, the
// current one writes.
func TestTransactETag(t *testing.T) {
	r, st := reminderRuntime(t, 0)
	upsert := func(k, v string, tag *string) StateOp {
		op := StateOp{Operation: "upsert", Raw: []byte(v), ETag: tag}
		op.Request.Key = k
		return op
	}
	get := func(k string) *state.GetResponse {
		t.Helper()
		resp, err := st.Get(t.Context(), &state.GetRequest{Key: r.stateKey("w", "1", k)})
		if err != nil || resp == nil {
			t.Fatalf("get %s: %v %v", k, resp, err)
		}
		return resp
	}
	if err := r.transact(t.Context(), st, "w", "1", []StateOp{upsert("metadata", "m1", nil)}); err != nil {
		t.Fatal(err)
	}
	tag := get("metadata").ETag
	stale := "stale"
	err := r.transact(t.Context(), st, "w", "1", []StateOp{upsert("history-000000", "h", nil), upsert("metadata", "m2", &stale)})
	if !errors.Is(err, state.ErrETagMismatch) {
		t.Fatalf("stale ETag: %v, want ErrETagMismatch", err)
	}
	if resp, _ := st.Get(t.Context(), &state.GetRequest{Key: r.stateKey("w", "1", "history-000000")}); resp != nil {
		t.Error("a transaction that failed its ETag wrote a key")
	}
	if err := r.transact(t.Context(), st, "w", "1", []StateOp{upsert("history-000000", "h", nil), upsert("metadata", "m2", tag)}); err != nil {
		t.Fatalf("current ETag: %v", err)
	}
	if got := string(get("metadata").Data); got != "m2" {
		t.Errorf("metadata %q, want m2", got)
	}
}
