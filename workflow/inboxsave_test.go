package workflow

import (
	"context"
	"testing"

	"github.com/dapr/durabletask-go/api/protos"
)

// TestSaveWritesOnlyNewInboxEntries: results that arrive one by one (a
// fan-in) each write their own inbox entry, not the whole inbox again;
// an inbox that is replaced or shortened is written (and trimmed) in
// full, and what is stored loads back as the instance had it.
func TestSaveWritesOnlyNewInboxEntries(t *testing.T) {
	host := newMemHost()
	e := New(Config{AppID: "app", Actors: host})
	ctx := context.Background()
	inst := &instance{id: "fan", history: []*protos.HistoryEvent{started("w")}, historyRewritten: true}
	if _, err := e.save(ctx, inst); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		inst.inbox = append(inst.inbox, taskDone(int32(i)))
		if _, err := e.save(ctx, inst); err != nil {
			t.Fatal(err)
		}
		for j := range i + 1 {
			if k := "fan||" + inboxKey(j); host.touched[k] != (j == i) {
				t.Fatalf("save after result %d: %s written %v", i, inboxKey(j), host.touched[k])
			}
		}
	}
	// A reloaded instance knows what is stored, too.
	loaded, err := e.load(ctx, "fan")
	if err != nil {
		t.Fatal(err)
	}
	loaded.inbox = append(loaded.inbox, taskDone(5))
	if _, err := e.save(ctx, loaded); err != nil {
		t.Fatal(err)
	}
	if host.touched["fan||"+inboxKey(0)] || !host.touched["fan||"+inboxKey(5)] {
		t.Fatalf("save after a reload wrote %v", host.touched)
	}
	// Shifted by one: every entry moves, so every one is written, and
	// the last key is deleted.
	loaded.inbox = loaded.inbox[1:]
	if _, err := e.save(ctx, loaded); err != nil {
		t.Fatal(err)
	}
	for j := range 6 {
		if !host.touched["fan||"+inboxKey(j)] {
			t.Fatalf("shifted inbox: %s not written or deleted", inboxKey(j))
		}
	}
	again, err := e.load(ctx, "fan")
	if err != nil {
		t.Fatal(err)
	}
	if len(again.inbox) != 5 {
		t.Fatalf("loaded %d inbox entries, want 5", len(again.inbox))
	}
	for i, ev := range again.inbox {
		if got := ev.GetTaskCompleted().GetTaskScheduledId(); got != int32(i+1) {
			t.Fatalf("inbox[%d] answers task %d, want %d", i, got, i+1)
		}
	}
}
