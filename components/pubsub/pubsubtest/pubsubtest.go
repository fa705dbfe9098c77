// Package pubsubtest is the contract suite every pub/sub broker passes
// against its real server:
//
//	func TestContract(t *testing.T) {
//		pubsubtest.RequireServer(t, "127.0.0.1:6379", "Redis")
//		group := "test-" + pubsubtest.RandomSuffix()
//		pubsubtest.Run(t, func(t *testing.T) pubsub.PubSub { ... Init with consumerID group ... })
//	}
//
// newPubSub must return an initialised broker; every broker it returns
// within one Run must use the same consumer ID, so that a new instance
// continues where a closed one stopped. The suite closes them (Close must be
// idempotent) and uses a fresh random topic in every test.
//
// Optional properties are tested when the broker lists the Feature:
// metadata round trip and ordered delivery (FeatureMessageMetadata), load
// sharing (FeatureConsumerGroups), and redelivery to a new instance after
// Close (FeatureDurable).
package pubsubtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components/pubsub"
)

// Timeout bounds every wait for deliveries.
const Timeout = 20 * time.Second

// RandomSuffix returns 8 random hex characters for unique names.
func RandomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Run runs the contract suite.
func Run(t *testing.T, newPubSub func(t *testing.T) pubsub.PubSub) {
	s := &suite{newPubSub: newPubSub}
	tests := []struct {
		name    string
		feature pubsub.Feature
		run     func(t *testing.T)
	}{
		{"RoundTrip", "", s.roundTrip},
		{"HandlerErrorRedelivers", "", s.handlerErrorRedelivers},
		{"ManyMessagesNoneMissing", "", s.manyMessages},
		{"MaxConcurrency", "", s.maxConcurrency},
		{"OrderedPerKey", pubsub.FeatureMessageMetadata, s.orderedPerKey},
		{"ConsumerGroupSharesLoad", pubsub.FeatureConsumerGroups, s.consumerGroup},
		{"CloseWhileInFlightRedeliversToNewInstance", pubsub.FeatureDurable, s.closeWhileInFlight},
		{"CloseIsIdempotent", "", s.closeIdempotent},
		{"BacklogCountsUnsettled", "", s.backlog},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.feature != "" {
				ps := s.open(t)
				if !pubsub.HasFeature(ps, tt.feature) {
					t.Skipf("broker does not list feature %s", tt.feature)
				}
				_ = ps.Close()
			}
			tt.run(t)
		})
	}
}

type suite struct {
	newPubSub func(t *testing.T) pubsub.PubSub
}

// open returns a new broker that is closed when the test ends.
func (s *suite) open(t *testing.T) pubsub.PubSub {
	t.Helper()
	ps := s.newPubSub(t)
	t.Cleanup(func() {
		if err := ps.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return ps
}

func topic(*testing.T) string {
	return "tandemtest-" + RandomSuffix()
}

func publish(t *testing.T, ps pubsub.PubSub, topic, data string, md map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := ps.Publish(ctx, &pubsub.PublishRequest{Topic: topic, Data: []byte(data), ContentType: "text/plain", Metadata: md}); err != nil {
		t.Fatalf("Publish(%q, %q): %v", topic, data, err)
	}
}

func subscribe(t *testing.T, ctx context.Context, ps pubsub.PubSub, req pubsub.SubscribeRequest, h pubsub.Handler) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	// Subscribe's own context must outlive the call: deliveries continue
	// until ctx ends. sctx only bounds establishing it.
	done := make(chan error, 1)
	go func() { done <- ps.Subscribe(ctx, req, h) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Subscribe(%q): %v", req.Topic, err)
		}
	case <-sctx.Done():
		t.Fatalf("Subscribe(%q) did not return in %s", req.Topic, Timeout)
	}
}

// counter records deliveries by payload.
type counter struct {
	mu    sync.Mutex
	seen  map[string]int
	total int
	first map[string]*pubsub.Message
	ch    chan struct{}
}

func newCounter() *counter {
	return &counter{seen: map[string]int{}, first: map[string]*pubsub.Message{}, ch: make(chan struct{}, 1)}
}

func (c *counter) add(m *pubsub.Message) int {
	c.mu.Lock()
	k := string(m.Data)
	c.seen[k]++
	n := c.seen[k]
	if n == 1 {
		c.first[k] = m
	}
	c.total++
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
	return n
}

func (c *counter) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func (c *counter) count(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[k]
}

// waitFor waits until cond holds or Timeout passes.
func (c *counter) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-c.ch:
		case <-tick.C:
		case <-deadline.C:
			c.mu.Lock()
			distinct, total := len(c.seen), c.total
			c.mu.Unlock()
			t.Fatalf("timed out after %s waiting for %s (%d distinct messages, %d deliveries so far)", Timeout, what, distinct, total)
		}
	}
}

func (s *suite) roundTrip(t *testing.T) {
	ps := s.open(t)
	tp := topic(t)
	c := newCounter()
	subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: tp}, func(_ context.Context, m *pubsub.Message) error {
		c.add(m)
		return nil
	})
	publish(t, ps, tp, "hello", map[string]string{"k1": "v1", "traceparent": "00-abc-def-01"})
	c.waitFor(t, "the message", func() bool { return c.count("hello") > 0 })

	c.mu.Lock()
	m := c.first["hello"]
	c.mu.Unlock()
	if m.Topic != tp {
		t.Errorf("Topic = %q, want %q", m.Topic, tp)
	}
	if pubsub.HasFeature(ps, pubsub.FeatureMessageMetadata) {
		if m.Metadata["k1"] != "v1" || m.Metadata["traceparent"] != "00-abc-def-01" {
			t.Errorf("Metadata = %v, want k1=v1 and traceparent", m.Metadata)
		}
	}
	// Binary payloads survive unchanged.
	bin := string([]byte{0, 1, 2, 255, '\n', 0})
	publish(t, ps, tp, bin, nil)
	c.waitFor(t, "the binary message", func() bool { return c.count(bin) > 0 })
}

func (s *suite) handlerErrorRedelivers(t *testing.T) {
	ps := s.open(t)
	tp := topic(t)
	c := newCounter()
	var acked atomic.Int32
	subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: tp}, func(_ context.Context, m *pubsub.Message) error {
		if c.add(m) == 1 {
			return errors.New("first delivery fails on purpose")
		}
		acked.Add(1)
		return nil
	})
	publish(t, ps, tp, "retry-me", nil)
	c.waitFor(t, "the redelivery after a handler error", func() bool { return acked.Load() > 0 })
	// Once acked it must not keep coming back.
	time.Sleep(1500 * time.Millisecond)
	if n := c.count("retry-me"); n > 3 {
		t.Errorf("message delivered %d times after it was acked; want it settled", n)
	}
}

func (s *suite) manyMessages(t *testing.T) {
	const n = 1000
	ps := s.open(t)
	tp := topic(t)
	c := newCounter()
	subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: tp}, func(_ context.Context, m *pubsub.Message) error {
		c.add(m)
		return nil
	})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	const workers = 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: tp, Data: []byte("m-" + strconv.Itoa(i))}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Publish: %v", err)
	}
	c.waitFor(t, fmt.Sprintf("%d distinct messages", n), func() bool { return c.distinct() >= n })
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range n {
		if c.seen["m-"+strconv.Itoa(i)] == 0 {
			t.Errorf("message m-%d missing", i)
		}
	}
	t.Logf("%d messages, %d deliveries (%d duplicates)", n, c.total, c.total-n)
}

func (s *suite) maxConcurrency(t *testing.T) {
	const limit, n = 3, 40
	ps := s.open(t)
	tp := topic(t)
	c := newCounter()
	var cur, peak atomic.Int32
	subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: tp, MaxConcurrency: limit}, func(_ context.Context, m *pubsub.Message) error {
		v := cur.Add(1)
		for {
			p := peak.Load()
			if v <= p || peak.CompareAndSwap(p, v) {
				break
			}
		}
		time.Sleep(15 * time.Millisecond)
		cur.Add(-1)
		c.add(m)
		return nil
	})
	for i := range n {
		publish(t, ps, tp, "c-"+strconv.Itoa(i), nil)
	}
	c.waitFor(t, "all messages", func() bool { return c.distinct() >= n })
	if p := peak.Load(); p > limit {
		t.Errorf("peak concurrent handlers = %d, want <= %d", p, limit)
	} else {
		t.Logf("peak concurrent handlers = %d (limit %d)", p, limit)
	}
}

func (s *suite) orderedPerKey(t *testing.T) {
	const keys, perKey = 3, 20
	ps := s.open(t)
	tp := topic(t)
	c := newCounter()
	var mu sync.Mutex
	last := map[string]int{}
	running := map[string]bool{}
	var fail atomic.Value
	subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: tp, MaxConcurrency: 8, OrderingKey: "partitionKey"}, func(_ context.Context, m *pubsub.Message) error {
		key := m.Metadata["partitionKey"]
		seq, _ := strconv.Atoi(m.Metadata["seq"])
		mu.Lock()
		if running[key] {
			fail.Store(fmt.Sprintf("two handlers ran at once for key %q", key))
		}
		if seq < last[key] {
			fail.Store(fmt.Sprintf("key %q: seq %d delivered after %d", key, seq, last[key]))
		}
		last[key] = seq
		running[key] = true
		mu.Unlock()
		time.Sleep(time.Duration(seq%3) * time.Millisecond)
		mu.Lock()
		running[key] = false
		mu.Unlock()
		c.add(m)
		return nil
	})
	for i := range perKey {
		for k := range keys {
			key := "key" + strconv.Itoa(k)
			publish(t, ps, tp, key+"/"+strconv.Itoa(i), map[string]string{"partitionKey": key, "seq": strconv.Itoa(i)})
		}
	}
	c.waitFor(t, "all ordered messages", func() bool { return c.distinct() >= keys*perKey })
	if f := fail.Load(); f != nil {
		t.Error(f)
	}
}

func (s *suite) consumerGroup(t *testing.T) {
	const n = 100
	a, b := s.open(t), s.open(t)
	tp := topic(t)
	all := newCounter()
	var na, nb atomic.Int32
	handler := func(n *atomic.Int32) pubsub.Handler {
		return func(_ context.Context, m *pubsub.Message) error {
			time.Sleep(3 * time.Millisecond)
			n.Add(1)
			all.add(m)
			return nil
		}
	}
	subscribe(t, t.Context(), a, pubsub.SubscribeRequest{Topic: tp}, handler(&na))
	subscribe(t, t.Context(), b, pubsub.SubscribeRequest{Topic: tp}, handler(&nb))
	for i := range n {
		publish(t, a, tp, "g-"+strconv.Itoa(i), nil)
	}
	all.waitFor(t, "all messages across the group", func() bool { return all.distinct() >= n })
	time.Sleep(300 * time.Millisecond)
	t.Logf("instance a handled %d, b handled %d", na.Load(), nb.Load())
	if na.Load() == 0 || nb.Load() == 0 {
		t.Errorf("load not shared: a=%d b=%d", na.Load(), nb.Load())
	}
	if got := na.Load() + nb.Load(); got >= 2*n {
		t.Errorf("%d deliveries for %d messages: every instance got every message, not a group", got, n)
	}
}

func (s *suite) closeWhileInFlight(t *testing.T) {
	tp := topic(t)
	first := s.open(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	var firstCalls sync.Map
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	subscribe(t, ctx, first, pubsub.SubscribeRequest{Topic: tp, MaxConcurrency: 1}, func(_ context.Context, m *pubsub.Message) error {
		firstCalls.Store(string(m.Data), true)
		if string(m.Data) == "in-flight" {
			close(entered)
			<-release
			return errors.New("app went away while the sidecar was stopping")
		}
		return nil
	})
	publish(t, first, tp, "in-flight", nil)
	select {
	case <-entered:
	case <-time.After(Timeout):
		t.Fatal("first subscriber never received the message")
	}
	// Queued behind the in-flight one (MaxConcurrency 1): must not be
	// handled by the stopping instance.
	publish(t, first, tp, "queued", nil)
	time.Sleep(200 * time.Millisecond)

	closed := make(chan error, 1)
	go func() {
		cancel()
		closed <- first.Close()
	}()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a handler was still running; it must wait for in-flight handlers", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(Timeout):
		t.Fatal("Close did not return after the in-flight handler finished")
	}
	if _, ok := firstCalls.Load("queued"); ok {
		t.Error("the stopping instance handled a message that arrived after stop began; it must stop pulling first")
	}

	second := s.open(t)
	publish(t, second, tp, "while-down", nil)
	c := newCounter()
	subscribe(t, t.Context(), second, pubsub.SubscribeRequest{Topic: tp}, func(_ context.Context, m *pubsub.Message) error {
		c.add(m)
		return nil
	})
	want := []string{"in-flight", "queued", "while-down"}
	c.waitFor(t, fmt.Sprintf("%v on the new instance", want), func() bool {
		for _, w := range want {
			if c.count(w) == 0 {
				return false
			}
		}
		return true
	})
}

func (s *suite) closeIdempotent(t *testing.T) {
	ps := s.newPubSub(t)
	tp := topic(t)
	subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: tp}, func(context.Context, *pubsub.Message) error { return nil })
	if err := ps.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := ps.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: tp, Data: []byte("x")}); err == nil {
		t.Error("Publish after Close succeeded; want an error")
	}
}

// Eventually waits up to 10s for cond, failing t with what otherwise.
func Eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// backlog checks a Backlogger's figures against what the test knows it
// left unsettled: messages published while the only handler is held,
// then none once it lets them through.
func (s *suite) backlog(t *testing.T) {
	ps := s.open(t)
	bl, ok := ps.(pubsub.Backlogger)
	if !ok {
		t.Skip("broker does not implement pubsub.Backlogger")
	}
	tp := topic(t)
	read := func() pubsub.Backlog {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		b, err := bl.Backlog(ctx, tp)
		if err != nil {
			t.Fatalf("Backlog(%q): %v", tp, err)
		}
		return b
	}
	if b := read(); b.Total() != 0 {
		t.Fatalf("Backlog of a topic nobody subscribed to = %+v, want none", b)
	}
	release := make(chan struct{})
	c := newCounter()
	subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: tp, MaxConcurrency: 1}, func(ctx context.Context, m *pubsub.Message) error {
		<-release
		c.add(m)
		return nil
	})
	const n = 5
	before := time.Now().Add(-time.Second) // broker clocks round to ms
	for i := range n {
		publish(t, ps, tp, fmt.Sprintf("b%d", i), nil)
	}
	var b pubsub.Backlog
	// The held message is handed out but not acked; the others may or may
	// not have been pulled yet.
	Eventually(t, fmt.Sprintf("a backlog of %d with one unacked", n), func() bool {
		b = read()
		return b.Total() == n && b.Unacked >= 1
	})
	if b.Oldest.Before(before) || b.Oldest.After(time.Now().Add(time.Second)) {
		t.Errorf("Backlog.Oldest = %v, want the time of the first publish (after %v)", b.Oldest, before)
	}
	close(release)
	c.waitFor(t, "all messages", func() bool { return c.distinct() == n })
	Eventually(t, "the backlog to drain", func() bool { b = read(); return b.Total() == 0 })
	if !b.Oldest.IsZero() {
		t.Errorf("drained Backlog.Oldest = %v, want zero", b.Oldest)
	}
}
