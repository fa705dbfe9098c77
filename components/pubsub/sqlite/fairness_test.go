package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/sqlite"
)

// shareRun describes one consumer group run: instances of one group on one
// file, each its own *sql.DB as separate sidecars would have, and messages
// published while they consume.
type shareRun struct {
	instances   int
	concurrency int
	messages    int
	handle      time.Duration // per message
	// publisherInGroup publishes through the group's first instance (as
	// the contract suite does), else through an instance of another app.
	publisherInGroup bool
	publishers       int // goroutines publishing at once; 0 means 1
}

// shareResult is what each instance got.
type shareResult struct {
	got      []int           // deliveries per instance
	maxGap   []time.Duration // longest time without a delivery, per instance, while messages remained
	lockWait []time.Duration // longest wait for the write lock, per instance
	elapsed  time.Duration
}

func (r shareResult) String() string {
	return fmt.Sprintf("got %v, longest gap between deliveries %v, longest lock wait %v, all handled in %s",
		r.got, r.maxGap, r.lockWait, r.elapsed.Round(time.Millisecond))
}

func runShare(t *testing.T, run shareRun) shareResult {
	t.Helper()
	file := filepath.Join(t.TempDir(), "pubsub.db")
	props := map[string]string{"concurrency": strconv.Itoa(run.concurrency), "pollInterval": "100ms", "processingTimeout": "10s"}
	var (
		mu     sync.Mutex
		times  = make([][]time.Time, run.instances)
		seen   = map[string]bool{}
		done   = make(chan struct{})
		closed bool
	)
	group := make([]*sqlite.PubSub, run.instances)
	for i := range group {
		group[i] = open(t, file, "workers", props)
	}
	tp := "share"
	for i, ps := range group {
		subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: tp}, func(_ context.Context, m *pubsub.Message) error {
			time.Sleep(run.handle)
			mu.Lock()
			defer mu.Unlock()
			times[i] = append(times[i], time.Now())
			seen[string(m.Data)] = true
			if len(seen) == run.messages && !closed {
				closed = true
				close(done)
			}
			return nil
		})
	}
	publisher := group[0]
	if !run.publisherInGroup {
		publisher = open(t, file, "web", props)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for g := range max(run.publishers, 1) {
		wg.Go(func() {
			for i := g; i < run.messages; i += max(run.publishers, 1) {
				if err := publisher.Publish(t.Context(), &pubsub.PublishRequest{Topic: tp, Data: []byte("m-" + strconv.Itoa(i))}); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		t.Fatalf("only %d of %d messages handled after a minute", n, run.messages)
	}
	end := time.Now()
	mu.Lock()
	defer mu.Unlock()
	r := shareResult{elapsed: end.Sub(start)}
	for i, ts := range times {
		r.got = append(r.got, len(ts))
		prev, gap := start, time.Duration(0)
		for _, at := range append(slices.Clone(ts), end) {
			gap = max(gap, at.Sub(prev))
			prev = at
		}
		r.maxGap = append(r.maxGap, gap.Round(time.Millisecond))
		r.lockWait = append(r.lockWait, sqlite.MaxLockWait(group[i]).Round(time.Millisecond))
	}
	return r
}

// TestMeasureGroupShare prints how a group's instances share a stream of
// messages; it is a measurement, run on request:
//
//	TANDEM_SQLITE_MEASURE=1 go test -run TestMeasureGroupShare -v ./components/pubsub/sqlite
func TestMeasureGroupShare(t *testing.T) {
	if os.Getenv("TANDEM_SQLITE_MEASURE") == "" {
		t.Skip("a measurement; set TANDEM_SQLITE_MEASURE=1 to run it")
	}
	runs := []struct {
		name string
		run  shareRun
	}{
		{"3 instances, publisher in group, 1ms handler", shareRun{instances: 3, concurrency: 2, messages: 1000, handle: time.Millisecond, publisherInGroup: true}},
		{"3 instances, publisher in group, 5ms handler", shareRun{instances: 3, concurrency: 2, messages: 1000, handle: 5 * time.Millisecond, publisherInGroup: true}},
		{"3 instances, other publisher, 1ms handler", shareRun{instances: 3, concurrency: 2, messages: 1000, handle: time.Millisecond}},
		{"3 instances, publisher in group from 8 goroutines, 2ms handler", shareRun{instances: 3, concurrency: 2, messages: 1000, handle: 2 * time.Millisecond, publisherInGroup: true, publishers: 8}},
		{"2 instances, publisher in group, 3ms handler, contract", shareRun{instances: 2, concurrency: 2, messages: 100, handle: 3 * time.Millisecond, publisherInGroup: true}},
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			for range 3 {
				t.Log(runShare(t, r.run))
			}
		})
	}
}
