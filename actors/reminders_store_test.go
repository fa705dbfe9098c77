package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/sqlite"
)

// countingStore is a real sqlite store that counts the writes of
// reminder keys and the largest list it was given.
type countingStore struct {
	*sqlite.Store
	writes  atomic.Int64
	mu      sync.Mutex
	largest int // most reminders in one written value
}

func (c *countingStore) saw(key string, value []byte) {
	if !strings.HasPrefix(key, "actors||") || strings.HasSuffix(key, "||metadata") {
		return
	}
	c.writes.Add(1)
	var l []json.RawMessage
	_ = json.Unmarshal(value, &l)
	c.mu.Lock()
	c.largest = max(c.largest, len(l))
	c.mu.Unlock()
}

func (c *countingStore) Set(ctx context.Context, req *state.SetRequest) error {
	c.saw(req.Key, req.Value)
	return c.Store.Set(ctx, req)
}

func (c *countingStore) Multi(ctx context.Context, req *state.TransactionRequest) error {
	for _, op := range req.Operations {
		if op.Upsert != nil {
			c.saw(op.Upsert.Key, op.Upsert.Value)
		}
	}
	return c.Store.Multi(ctx, req)
}

// reminderRuntime is a Runtime without placement over a sqlite actor
// state store, hosting type "t" with partitions reminder partitions.
func reminderRuntime(t *testing.T, partitions int) (*Runtime, *countingStore) {
	t.Helper()
	st := &countingStore{Store: sqlite.New(nil)}
	if err := st.Init(t.Context(), components.Metadata{Name: "actorstore", Type: "state.sqlite",
		Properties: map[string]string{"connectionString": filepath.Join(t.TempDir(), "actors.db")}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	r, err := New(Config{AppID: "app", StateStore: func() (state.Store, bool) { return st, true }})
	if err != nil {
		t.Fatal(err)
	}
	r.setPartitions("t", partitions)
	return r, st
}

func (r *Runtime) setPartitions(actorType string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.types == nil {
		r.types = map[string]TypeConfig{}
	}
	r.types[actorType] = TypeConfig{RemindersPartitions: n}
}

func createReminders(t *testing.T, r *Runtime, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := (stateReminders{r}).Create(t.Context(), ReminderRequest{ActorType: "t", ActorID: fmt.Sprint("a", i), Name: "r", DueTime: "1h"}); err != nil {
			t.Fatal(err)
		}
	}
}

func listed(t *testing.T, r *Runtime) map[string]bool {
	t.Helper()
	list, err := (stateReminders{r}).List(t.Context(), "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, x := range list {
		out[x.ActorID+"/"+x.Name] = true
	}
	return out
}

// With partitions, a write rewrites one partition, not every reminder of
// the type: creating n reminders is not quadratic.
func TestPartitionedReminderWritesRewriteOnePartition(t *testing.T) {
	const n, parts = 400, 16
	r, st := reminderRuntime(t, parts)
	createReminders(t, r, 0, n)
	if got := listed(t, r); len(got) != n {
		t.Fatalf("%d reminders listed, want %d", len(got), n)
	}
	// n/parts = 25 a partition on average; a write of the whole type
	// would carry n.
	if st.largest > 3*n/parts {
		t.Fatalf("a write carried %d reminders: the type's reminders are not partitioned (%d partitions)", st.largest, parts)
	}
	resp, err := st.Get(t.Context(), &state.GetRequest{Key: "actors||t||metadata"})
	if err != nil || resp == nil {
		t.Fatalf("metadata record: %v %v", resp, err)
	}
	var md remindersMetadata
	if err := json.Unmarshal(resp.Data, &md); err != nil || md.Reminders.PartitionCount != parts || len(md.ID) != 36 {
		t.Fatalf("metadata record %s: %v", resp.Data, err)
	}
	// Dapr's keys and hash: each reminder is in its partition.
	for p := 1; p <= parts; p++ {
		resp, err := st.Get(t.Context(), &state.GetRequest{Key: fmt.Sprintf("actors||t||%s||reminders||%d", md.ID, p)})
		if err != nil || resp == nil {
			t.Fatalf("partition %d: %v %v", p, resp, err)
		}
		var l []storedReminder
		if err := json.Unmarshal(resp.Data, &l); err != nil {
			t.Fatal(err)
		}
		for _, x := range l {
			if got := reminderPartition(x.ActorID, x.Name, parts); got != p {
				t.Fatalf("reminder %s in partition %d, its hash says %d", x.id(), p, got)
			}
		}
	}
}

// Reminders written by daprd with partitions are read, and kept in
// their partitions by the next write.
func TestDaprPartitionedRemindersAreRead(t *testing.T) {
	r, st := reminderRuntime(t, 0)
	ctx := t.Context()
	const id = "5c6a8a9c-2a4e-4b7e-9a55-0f6f4f2c8d11"
	must := func(key, value string) {
		t.Helper()
		if err := st.Store.Set(ctx, &state.SetRequest{Key: key, Value: []byte(value)}); err != nil {
			t.Fatal(err)
		}
	}
	must("actors||t||metadata", `{"id":"`+id+`","actorRemindersMetadata":{"partitionCount":2}}`)
	for _, a := range []string{"x", "y", "z"} {
		p := reminderPartition(a, "r", 2)
		key := fmt.Sprintf("actors||t||%s||reminders||%d", id, p)
		var l []json.RawMessage
		if resp, _ := st.Get(ctx, &state.GetRequest{Key: key}); resp != nil {
			_ = json.Unmarshal(resp.Data, &l)
		}
		l = append(l, json.RawMessage(`{"actorID":"`+a+`","actorType":"t","name":"r","dueTime":"1h","registeredTime":"2026-01-01T00:00:00Z"}`))
		b, _ := json.Marshal(l)
		must(key, string(b))
	}
	if got := listed(t, r); len(got) != 3 || !got["x/r"] || !got["y/r"] || !got["z/r"] {
		t.Fatalf("listed %v, want x, y and z", got)
	}
	createReminders(t, r, 0, 1)
	if err := (stateReminders{r}).Delete(ctx, "t", "y", "r"); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, r); len(got) != 3 || !got["a0/r"] || got["y/r"] {
		t.Fatalf("listed %v, want x, z and a0", got)
	}
	// A configured count below the stored one keeps the stored layout.
	set, err := readReminderSet(ctx, st, "t")
	if err != nil || set.meta.ID != id || set.partitions() != 2 {
		t.Fatalf("layout after writes: id %s, %d partitions, %v", set.meta.ID, set.partitions(), err)
	}
}

// A type stored in one list moves to partitions at its next write when
// the app asks for them, losing none.
func TestRemindersAreRepartitioned(t *testing.T) {
	r, st := reminderRuntime(t, 0)
	createReminders(t, r, 0, 50)
	if resp, _ := st.Get(t.Context(), &state.GetRequest{Key: "actors||t"}); resp == nil {
		t.Fatal("no partitions asked: the reminders are not in actors||t")
	}
	r.setPartitions("t", 8)
	createReminders(t, r, 50, 51)
	set, err := readReminderSet(t.Context(), st, "t")
	if err != nil || set.partitions() != 8 {
		t.Fatalf("after repartitioning: %d partitions, %v", set.partitions(), err)
	}
	if got := listed(t, r); len(got) != 51 {
		t.Fatalf("%d reminders listed after repartitioning, want 51", len(got))
	}
}

// Concurrent creations on one host are batched: all succeed, in fewer
// writes than creations (each used to read and rewrite the list, and
// fail after 20 ETag conflicts).
func TestConcurrentReminderCreatesAreBatched(t *testing.T) {
	for _, parts := range []int{0, 4} {
		t.Run(fmt.Sprint(parts, " partitions"), func(t *testing.T) {
			r, st := reminderRuntime(t, parts)
			const workers, each = 32, 20
			var wg sync.WaitGroup
			errs := make(chan error, workers*each)
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						errs <- (stateReminders{r}).Create(t.Context(), ReminderRequest{ActorType: "t", ActorID: fmt.Sprintf("w%d-%d", w, i), Name: "r", DueTime: "1h"})
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if got := listed(t, r); len(got) != workers*each {
				t.Fatalf("%d reminders listed, want %d", len(got), workers*each)
			}
			if w := st.writes.Load(); w >= workers*each {
				t.Fatalf("%d writes for %d creations: not batched", w, workers*each)
			}
		})
	}
}
