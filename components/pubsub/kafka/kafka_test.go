package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/pubsubtest"
	"github.com/tandemrun/tandem/internal/kafkatest"
)

// open returns an initialised broker on brokers with the group and extra
// metadata; closed when the test ends.
func open(t *testing.T, brokers, group string, extra map[string]string) *PubSub {
	t.Helper()
	props := map[string]string{
		"brokers":       brokers,
		"authType":      "none",
		"consumerGroup": group,
		"initialOffset": "oldest",
	}
	for k, v := range extra {
		props[k] = v
	}
	ps := New(nil)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := ps.Init(ctx, components.Metadata{Name: "kafka-test", Type: Type, AppID: "app", Properties: props}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.Close() })
	return ps
}

// The shared contract against kfake (test/apps/kafkabroker), not Apache
// Kafka. initialOffset=oldest: a group's first member starts at the
// beginning of the fresh topics the suite makes, as a group that already
// committed does.
func TestContract(t *testing.T) {
	b := kafkatest.Start(t)
	group := "test-" + pubsubtest.RandomSuffix()
	pubsubtest.Run(t, func(t *testing.T) pubsub.PubSub {
		ps := New(nil)
		err := ps.Init(t.Context(), components.Metadata{Name: "kafka-test", Type: Type, AppID: "app",
			Properties: map[string]string{"brokers": b.Brokers, "authType": "none", "consumerGroup": group, "initialOffset": "oldest"}})
		if err != nil {
			t.Fatal(err)
		}
		return ps
	})
}

func subscribe(t *testing.T, ctx context.Context, ps pubsub.PubSub, req pubsub.SubscribeRequest, h pubsub.Handler) {
	t.Helper()
	if err := ps.Subscribe(ctx, req, h); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Records with one partitionKey land in one partition and reach the app in
// the order published, one at a time, even with a high concurrency and a
// handler that fails now and then (retried in place, never overtaken).
func TestOrderWithinPartition(t *testing.T) {
	b := kafkatest.Start(t)
	ps := open(t, b.Brokers, "order-"+pubsubtest.RandomSuffix(), nil)
	topic := "order-" + pubsubtest.RandomSuffix()
	const keys, perKey = 4, 50
	var mu sync.Mutex
	next := map[string]int{}
	partOf := map[string]string{}
	var failures atomic.Int32
	var bad atomic.Value
	subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: topic, MaxConcurrency: 16}, func(_ context.Context, m *pubsub.Message) error {
		key := m.Metadata[MetadataKey]
		seq, _ := strconv.Atoi(m.Metadata["seq"])
		if seq%7 == 3 && failures.Add(1)%2 == 1 {
			return errors.New("fails once on purpose")
		}
		mu.Lock()
		defer mu.Unlock()
		if p, ok := partOf[key]; ok && p != m.Metadata[MetadataPartition] {
			bad.Store(fmt.Sprintf("key %s in partitions %s and %s", key, p, m.Metadata[MetadataPartition]))
		}
		partOf[key] = m.Metadata[MetadataPartition]
		if seq != next[key] {
			bad.Store(fmt.Sprintf("key %s: got seq %d, want %d", key, seq, next[key]))
		}
		next[key] = seq + 1
		return nil
	})
	for i := range perKey {
		for k := range keys {
			err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: topic, Data: []byte("x"),
				Metadata: map[string]string{MetadataPartitionKey: "k" + strconv.Itoa(k), "seq": strconv.Itoa(i)}})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "every record in order", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for k := range keys {
			if next["k"+strconv.Itoa(k)] != perKey {
				return false
			}
		}
		return true
	})
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	if failures.Load() == 0 {
		t.Fatal("no handler failure was exercised")
	}
}

// A record whose handler keeps failing is never committed past: after the
// member stops, the next member of the group gets it (and what followed it
// in its partition) again.
func TestFailingRecordIsNotCommittedPast(t *testing.T) {
	b := kafkatest.Start(t)
	group := "nack-" + pubsubtest.RandomSuffix()
	topic := "nack-" + pubsubtest.RandomSuffix()
	first := open(t, b.Brokers, group, map[string]string{"consumeRetryInterval": "20"})
	var attempts atomic.Int32
	var okAfter sync.Map
	ctx, cancel := context.WithCancel(t.Context())
	subscribe(t, ctx, first, pubsub.SubscribeRequest{Topic: topic}, func(_ context.Context, m *pubsub.Message) error {
		if string(m.Data) == "poison" {
			attempts.Add(1)
			return errors.New("the app cannot handle it yet")
		}
		okAfter.Store(string(m.Data), true)
		return nil
	})
	for _, d := range []string{"poison", "after-1", "after-2"} {
		if err := first.Publish(t.Context(), &pubsub.PublishRequest{Topic: topic, Data: []byte(d),
			Metadata: map[string]string{MetadataPartitionKey: "same"}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "several retries of the failing record", func() bool { return attempts.Load() >= 5 })
	if _, ok := okAfter.Load("after-1"); ok {
		t.Fatal("a record with the same key overtook the failing one")
	}
	cancel()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := open(t, b.Brokers, group, nil)
	var got sync.Map
	subscribe(t, t.Context(), second, pubsub.SubscribeRequest{Topic: topic}, func(_ context.Context, m *pubsub.Message) error {
		got.Store(string(m.Data), true)
		return nil
	})
	waitFor(t, "the failed record and those behind it on the next member", func() bool {
		for _, d := range []string{"poison", "after-1", "after-2"} {
			if _, ok := got.Load(d); !ok {
				return false
			}
		}
		return true
	})
}

// consumeRetryEnabled=false, as in Dapr: a record the app fails is handed
// to it once, the records behind it (same key) follow, and its offset is
// committed past, so the group's next member does not get it again.
func TestConsumeRetryDisabled(t *testing.T) {
	b := kafkatest.Start(t)
	group := "once-" + pubsubtest.RandomSuffix()
	topic := "once-" + pubsubtest.RandomSuffix()
	first := open(t, b.Brokers, group, map[string]string{"consumeRetryEnabled": "false", "consumeRetryInterval": "10"})
	var attempts atomic.Int32
	var handled sync.Map
	ctx, cancel := context.WithCancel(t.Context())
	subscribe(t, ctx, first, pubsub.SubscribeRequest{Topic: topic}, func(_ context.Context, m *pubsub.Message) error {
		if string(m.Data) == "poison" {
			attempts.Add(1)
			return errors.New("the app cannot handle it")
		}
		handled.Store(string(m.Data), true)
		return nil
	})
	for _, d := range []string{"poison", "after-1", "after-2"} {
		if err := first.Publish(t.Context(), &pubsub.PublishRequest{Topic: topic, Data: []byte(d),
			Metadata: map[string]string{MetadataPartitionKey: "same"}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the records behind the failed one", func() bool {
		_, ok1 := handled.Load("after-1")
		_, ok2 := handled.Load("after-2")
		return ok1 && ok2
	})
	// With retries, the 10ms backoff would have called it again by now.
	time.Sleep(300 * time.Millisecond)
	if n := attempts.Load(); n != 1 {
		t.Fatalf("the failed record was handed to the app %d times, want once", n)
	}
	cancel()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := open(t, b.Brokers, group, nil)
	var again sync.Map
	subscribe(t, t.Context(), second, pubsub.SubscribeRequest{Topic: topic}, func(_ context.Context, m *pubsub.Message) error {
		again.Store(string(m.Data), true)
		return nil
	})
	if err := second.Publish(t.Context(), &pubsub.PublishRequest{Topic: topic, Data: []byte("marker"),
		Metadata: map[string]string{MetadataPartitionKey: "same"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the marker on the next member", func() bool { _, ok := again.Load("marker"); return ok })
	for _, d := range []string{"poison", "after-1", "after-2"} {
		if _, ok := again.Load(d); ok {
			t.Errorf("%q came again to the next member: its offset was not committed past", d)
		}
	}
}

// Members joining and leaving a group while records flow: every record is
// handled at least once, and only records in flight at a hand-over come
// twice.
func TestRebalanceLosesNothing(t *testing.T) {
	b := kafkatest.Start(t)
	group := "rebal-" + pubsubtest.RandomSuffix()
	topic := "rebal-" + pubsubtest.RandomSuffix()
	pub := open(t, b.Brokers, group, nil)
	var mu sync.Mutex
	seen := map[string]int{}
	h := func(_ context.Context, m *pubsub.Message) error {
		time.Sleep(time.Millisecond)
		mu.Lock()
		seen[string(m.Data)]++
		mu.Unlock()
		return nil
	}
	const n = 2000
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if err := pub.Publish(t.Context(), &pubsub.PublishRequest{Topic: topic, Data: []byte("r-" + strconv.Itoa(i))}); err != nil {
				done <- err
				return
			}
			if i%100 == 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
		done <- nil
	}()
	a := open(t, b.Brokers, group, nil)
	subscribe(t, t.Context(), a, pubsub.SubscribeRequest{Topic: topic}, h)
	time.Sleep(500 * time.Millisecond)
	c := open(t, b.Brokers, group, nil)
	subscribe(t, t.Context(), c, pubsub.SubscribeRequest{Topic: topic}, h)
	time.Sleep(time.Second)
	if err := a.Close(); err != nil { // a leaves mid-stream: c takes its partitions
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, fmt.Sprintf("all %d records", n), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == n
	})
	mu.Lock()
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	mu.Unlock()
	t.Logf("%d records, %d duplicates across two hand-overs", n, dups)
}

// BulkPublish stores every entry; a topic name the broker refuses fails
// every entry by ID.
func TestBulkPublish(t *testing.T) {
	b := kafkatest.Start(t)
	ps := open(t, b.Brokers, "bulk-"+pubsubtest.RandomSuffix(), nil)
	topic := "bulk-" + pubsubtest.RandomSuffix()
	var got sync.Map
	var count atomic.Int32
	subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: topic}, func(_ context.Context, m *pubsub.Message) error {
		if _, dup := got.LoadOrStore(string(m.Data), m.Metadata["k"]); !dup {
			count.Add(1)
		}
		return nil
	})
	req := &pubsub.BulkPublishRequest{Topic: topic, Metadata: map[string]string{"k": "all"}}
	for i := range 100 {
		e := pubsub.BulkMessageEntry{EntryID: strconv.Itoa(i), Event: []byte("b-" + strconv.Itoa(i)), ContentType: "text/plain"}
		if i == 7 {
			e.Metadata = map[string]string{"k": "own"}
		}
		req.Entries = append(req.Entries, e)
	}
	resp, err := ps.BulkPublish(t.Context(), req)
	if err != nil || len(resp.FailedEntries) > 0 {
		t.Fatalf("BulkPublish = %+v, %v", resp, err)
	}
	waitFor(t, "100 bulk entries", func() bool { return count.Load() == 100 })
	if v, _ := got.Load("b-7"); v != "own" {
		t.Errorf("entry metadata k = %v, want own", v)
	}
	if v, _ := got.Load("b-8"); v != "all" {
		t.Errorf("request metadata k = %v, want all", v)
	}

	// An entry over maxMessageBytes fails alone, named by its ID.
	small := open(t, b.Brokers, "bulk-"+pubsubtest.RandomSuffix(), map[string]string{"maxMessageBytes": "1024"})
	mixed := &pubsub.BulkPublishRequest{Topic: topic, Entries: []pubsub.BulkMessageEntry{
		{EntryID: "fits", Event: []byte("small")},
		{EntryID: "too-big", Event: make([]byte, 4096)},
	}}
	resp, err = small.BulkPublish(t.Context(), mixed)
	if !errors.Is(err, pubsub.ErrBulkPartial) || len(resp.FailedEntries) != 1 || resp.FailedEntries[0].EntryID != "too-big" {
		t.Fatalf("BulkPublish with one entry over maxMessageBytes = %+v, %v; want only too-big failed", resp, err)
	}
	waitFor(t, "the entry that fits", func() bool { _, ok := got.Load("small"); return ok })
}

// Brokers that are down: Init fails (the loader retries it), a publish
// fails in bounded time, and a subscription made while they were up
// carries on once they are back.
func TestBrokerDown(t *testing.T) {
	b := kafkatest.Start(t, "--data-dir", t.TempDir())
	ps := open(t, b.Brokers, "down-"+pubsubtest.RandomSuffix(), map[string]string{"consumeRetryInterval": "20ms"})
	topic := "down-" + pubsubtest.RandomSuffix()
	var got sync.Map
	subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: topic}, func(_ context.Context, m *pubsub.Message) error {
		got.Store(string(m.Data), true)
		return nil
	})
	if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: topic, Data: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first record", func() bool { _, ok := got.Load("before"); return ok })
	b.Stop()

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	err := New(nil).Init(ctx, components.Metadata{Name: "k", Properties: map[string]string{"brokers": b.Brokers, "authType": "none", "consumerGroup": "g"}})
	cancel()
	if err == nil || components.IsPermanent(err) {
		t.Fatalf("Init with the brokers down = %v; want a retryable error", err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 2*time.Second)
	start := time.Now()
	err = ps.Publish(ctx, &pubsub.PublishRequest{Topic: topic, Data: []byte("lost")})
	cancel()
	if err == nil {
		t.Fatal("Publish with the brokers down succeeded")
	}
	t.Logf("publish with the brokers down failed after %s: %v", time.Since(start).Round(time.Millisecond), err)

	b.Restart(t)
	waitFor(t, "a publish to succeed again", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return ps.Publish(ctx, &pubsub.PublishRequest{Topic: topic, Data: []byte("after")}) == nil
	})
	waitFor(t, "the subscription to deliver again", func() bool { _, ok := got.Load("after"); return ok })
}

// With initialOffset newest (Dapr's default) a new group starts at the end
// as of the join: what was published before is not delivered, what is
// published once Subscribe returned is, at once.
func TestNewestStartsAtJoin(t *testing.T) {
	b := kafkatest.Start(t)
	topic := "newest-" + pubsubtest.RandomSuffix()
	ps := open(t, b.Brokers, "newest-"+pubsubtest.RandomSuffix(), map[string]string{"initialOffset": "newest"})
	if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: topic, Data: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	var got sync.Map
	subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: topic}, func(_ context.Context, m *pubsub.Message) error {
		got.Store(string(m.Data), true)
		return nil
	})
	for i := range 20 {
		if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: topic, Data: []byte("after-" + strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every record published after Subscribe returned", func() bool {
		for i := range 20 {
			if _, ok := got.Load("after-" + strconv.Itoa(i)); !ok {
				return false
			}
		}
		return true
	})
	if _, ok := got.Load("before"); ok {
		t.Error("a record published before the group existed was delivered with initialOffset newest")
	}
}
