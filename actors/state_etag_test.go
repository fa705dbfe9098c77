package actors

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	redisstore "github.com/tandemrun/tandem/components/state/redis"
	"github.com/tandemrun/tandem/components/state/statetest"
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

// TestTransactETags: with a store whose transactions tell the versions
// they wrote (state.redis), the ETag each key ends with comes back by the
// actor's key, and it is the one a read returns (a later transaction that
// names it passes); a store that does not tell (sqlite) answers nil, and
// the transaction is applied all the same.
func TestTransactETags(t *testing.T) {
	r, sq := reminderRuntime(t, 0)
	const redisAddr = "127.0.0.1:6379"
	statetest.RequireServer(t, redisAddr)
	rs := redisstore.New(nil)
	if err := rs.Init(t.Context(), components.Metadata{Name: "actorstore", Type: redisstore.Type,
		Properties: map[string]string{"redisHost": redisAddr}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	id := fmt.Sprintf("etags-%d", time.Now().UnixNano())
	upsert := func(k, v string, tag *string) StateOp {
		op := StateOp{Operation: "upsert", Raw: []byte(v), ETag: tag}
		op.Request.Key = k
		return op
	}
	del := StateOp{Operation: "delete"}
	del.Request.Key = "gone"
	t.Cleanup(func() {
		for _, k := range []string{"metadata", "history-000000", "gone"} {
			_ = rs.Delete(context.Background(), &state.DeleteRequest{Key: r.stateKey("w", id, k)})
		}
	})
	tags, err := r.transactETags(t.Context(), rs, "w", id, []StateOp{upsert("metadata", `"m1"`, nil), upsert("gone", `"g"`, nil), upsert("history-000000", `"h"`, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if tags["metadata"] != "1" || tags["history-000000"] != "1" || tags["gone"] != "1" {
		t.Fatalf("first transaction's ETags %v, want 1 for each key", tags)
	}
	tag := tags["metadata"]
	tags, err = r.transactETags(t.Context(), rs, "w", id, []StateOp{upsert("metadata", `"m2"`, &tag), del})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tags["gone"]; ok || tags["metadata"] != "2" || len(tags) != 1 {
		t.Fatalf("second transaction's ETags %v, want metadata 2 only (gone deleted)", tags)
	}
	resp, err := rs.Get(t.Context(), &state.GetRequest{Key: r.stateKey("w", id, "metadata")})
	if err != nil || resp == nil || resp.ETag == nil || *resp.ETag != tags["metadata"] {
		t.Fatalf("read metadata = %+v, %v; want the ETag the transaction told (%s)", resp, err, tags["metadata"])
	}
	tags, err = r.transactETags(t.Context(), sq, "w", id, []StateOp{upsert("metadata", `"m"`, nil)})
	if err != nil || tags != nil {
		t.Fatalf("sqlite: ETags %v, %v; want none told and no error", tags, err)
	}
	if resp, err := sq.Get(t.Context(), &state.GetRequest{Key: r.stateKey("w", id, "metadata")}); err != nil || resp == nil {
		t.Fatalf("sqlite: the transaction was not applied: %+v, %v", resp, err)
	}
}
