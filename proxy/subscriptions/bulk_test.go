package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/inmemory"
	"github.com/tandemrun/tandem/proxy/appchannel"
	"github.com/tandemrun/tandem/proxy/cloudevents"
)

// bulkEnvelopeIn is the bulk envelope as an app decodes it.
type bulkEnvelopeIn struct {
	ID         string            `json:"id"`
	Type       string            `json:"type"`
	Topic      string            `json:"topic"`
	PubsubName string            `json:"pubsubname"`
	Metadata   map[string]string `json:"metadata"`
	Entries    []struct {
		EntryID     string            `json:"entryId"`
		ContentType string            `json:"contentType"`
		Metadata    map[string]string `json:"metadata"`
		Event       json.RawMessage   `json:"event"`
	} `json:"entries"`
}

// bulkApp is an HTTP app taking bulk envelopes; answer picks each entry's
// status from the event's data.n and how often the app saw that event
// ("" leaves the entry out of the answer).
type bulkApp struct {
	t      *testing.T
	answer func(n, seen int) string

	mu      sync.Mutex
	batches []bulkEnvelopeIn
	headers []http.Header
	seen    map[int]int
	batchCh chan int // size of each batch, as it arrives
}

func (a *bulkApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var env bulkEnvelopeIn
	if err := json.Unmarshal(b, &env); err != nil {
		a.t.Errorf("app got a body that is not a bulk envelope: %v: %s", err, b)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	type status struct {
		EntryID string `json:"entryId"`
		Status  string `json:"status"`
	}
	var out struct {
		Statuses []status `json:"statuses"`
	}
	a.mu.Lock()
	a.batches = append(a.batches, env)
	a.headers = append(a.headers, r.Header.Clone())
	for _, e := range env.Entries {
		var ev struct {
			Data struct{ N int } `json:"data"`
		}
		if err := json.Unmarshal(e.Event, &ev); err != nil {
			a.t.Errorf("entry event is not a cloud event: %v", err)
		}
		a.seen[ev.Data.N]++
		st := "SUCCESS"
		if a.answer != nil {
			st = a.answer(ev.Data.N, a.seen[ev.Data.N])
		}
		if st != "" {
			out.Statuses = append(out.Statuses, status{e.EntryID, st})
		}
	}
	a.mu.Unlock()
	if a.batchCh != nil {
		a.batchCh <- len(env.Entries)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (a *bulkApp) seenCount(n int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[n]
}

// bulkRig is a bulk subscription on the in-memory broker delivering to a
// bulkApp.
type bulkRig struct {
	broker  *inmemory.PubSub
	app     *bulkApp
	batcher *Batcher
	cancel  context.CancelFunc
	results chan error // every handler result
}

func newBulkRig(t *testing.T, app *bulkApp, sub *Subscription) *bulkRig {
	t.Helper()
	if app.seen == nil {
		app.seen = map[int]int{}
	}
	broker := inmemory.New(nil)
	if err := broker.Init(context.Background(), components.Metadata{Properties: map[string]string{"redeliverInterval": "10ms"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Close() })
	srvCh := startBulkApp(t, app)
	proc := &Processor{
		Sub: sub, Deliverer: HTTPDeliverer{App: srvCh},
		DeadLetter: func(ctx context.Context, msg *pubsub.Message, topic string) error {
			return broker.Publish(ctx, &pubsub.PublishRequest{Topic: topic, Data: msg.Data, ContentType: msg.ContentType, Metadata: msg.Metadata})
		},
	}
	b := NewBatcher(context.Background(), proc, HTTPDeliverer{App: srvCh})
	n, _ := sub.BulkLimits()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &bulkRig{broker: broker, app: app, batcher: b, cancel: cancel, results: make(chan error, 10000)}
	err := broker.Subscribe(ctx, pubsub.SubscribeRequest{Topic: sub.Topic, MaxConcurrency: n}, func(ctx context.Context, msg *pubsub.Message) error {
		err := b.Handle(ctx, msg)
		r.results <- err
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *bulkRig) publish(t *testing.T, topic string, n int) {
	t.Helper()
	ev, err := cloudevents.Wrap(cloudevents.Request{
		Data: fmt.Appendf(nil, `{"n":%d}`, n), DataContentType: "application/json",
		Topic: topic, PubsubName: "ps", Source: "pub",
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := cloudevents.Marshal(ev)
	if err := r.broker.Publish(context.Background(), &pubsub.PublishRequest{
		Topic: topic, Data: b, ContentType: cloudevents.ContentType, Metadata: map[string]string{"k": "v"},
	}); err != nil {
		t.Fatal(err)
	}
}

func startBulkApp(t *testing.T, h http.Handler) *appchannel.HTTP {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	ch, err := appchannel.NewHTTP(appchannel.HTTPConfig{Port: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.Close() })
	return ch
}

func bulkSub(maxMessages, awaitMs int32, deadLetter string) *Subscription {
	return &Subscription{
		Kind: Programmatic, PubsubName: "ps", Topic: "orders", DeadLetterTopic: deadLetter,
		Rules:         []*Rule{{Path: "/bulk"}},
		BulkSubscribe: components.BulkSubscribe{Enabled: true, MaxMessagesCount: maxMessages, MaxAwaitDurationMs: awaitMs},
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBulkBatchesBySize(t *testing.T) {
	app := &bulkApp{t: t}
	// maxAwaitDurationMs well above the time publishing takes on a busy
	// machine, so only the last partial batch waits for the timer.
	r := newBulkRig(t, app, bulkSub(100, 2000, ""))
	for i := range 250 {
		r.publish(t, "orders", i)
	}
	acked := 0
	for acked < 250 {
		select {
		case err := <-r.results:
			if err != nil {
				t.Fatalf("handler result %v, want ack", err)
			}
			acked++
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of 250 messages settled", acked)
		}
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	if len(app.batches) > 3 {
		t.Errorf("app got %d batches, want at most 3", len(app.batches))
	}
	total := 0
	for i, b := range app.batches {
		total += len(b.Entries)
		if len(b.Entries) > 100 {
			t.Errorf("batch %d has %d entries, more than maxMessagesCount", i, len(b.Entries))
		}
		if b.Type != BulkEventType || b.Topic != "orders" || b.PubsubName != "ps" || b.ID == "" || b.Metadata[MetadataKeyPubSub] != "ps" {
			t.Errorf("batch %d envelope = id %q type %q topic %q pubsubname %q metadata %v", i, b.ID, b.Type, b.Topic, b.PubsubName, b.Metadata)
		}
		if ct := app.headers[i].Get("Content-Type"); ct != "application/json" {
			t.Errorf("batch %d content type %q, want application/json", i, ct)
		}
		e := b.Entries[0]
		if e.EntryID == "" || e.ContentType != cloudevents.ContentType || e.Metadata["k"] != "v" {
			t.Errorf("batch %d entry = id %q content type %q metadata %v", i, e.EntryID, e.ContentType, e.Metadata)
		}
	}
	if total != 250 || len(app.seen) != 250 {
		t.Errorf("app got %d entries for %d distinct events, want 250 each", total, len(app.seen))
	}
}

func TestBulkFlushesPartialBatchAfterAwait(t *testing.T) {
	app := &bulkApp{t: t, batchCh: make(chan int, 10)}
	r := newBulkRig(t, app, bulkSub(100, 150, ""))
	start := time.Now()
	for i := range 5 {
		r.publish(t, "orders", i)
	}
	select {
	case n := <-app.batchCh:
		if n != 5 {
			t.Errorf("batch of %d, want 5", n)
		}
		if d := time.Since(start); d < 120*time.Millisecond {
			t.Errorf("partial batch sent after %v, before maxAwaitDurationMs", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("partial batch never sent")
	}
}

// TestBulkImmediate: with Immediate (brokers that batch themselves), each
// message goes to the app at once in a batch of its own, long before
// maxAwaitDurationMs.
func TestBulkImmediate(t *testing.T) {
	app := &bulkApp{t: t, batchCh: make(chan int, 10)}
	r := newBulkRig(t, app, bulkSub(100, 5000, ""))
	r.batcher.Immediate()
	start := time.Now()
	for i := range 3 {
		r.publish(t, "orders", i)
	}
	for range 3 {
		select {
		case n := <-app.batchCh:
			if n != 1 {
				t.Errorf("batch of %d, want 1", n)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("immediate batch not sent")
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("three messages took %v", d)
	}
}

// TestBulkEntryStatuses: each entry is settled by its own status. Without
// a dead-letter topic, RETRY and missing entries come back and DROP is
// acknowledged; with one, as in Dapr, every entry the app did not accept
// goes to the dead-letter topic once.
func TestBulkEntryStatuses(t *testing.T) {
	tests := []struct {
		name       string
		deadLetter string
		seen       map[int]int
		dead       int32
	}{
		{"no dead letter topic", "", map[int]int{0: 1, 1: 2, 2: 1, 3: 2, 4: 1, 5: 2, 6: 1, 7: 2}, 0},
		{"dead letter topic", "dlq", map[int]int{0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// n%4: 0 SUCCESS; 1 RETRY once; 2 DROP; 3 missing once.
			app := &bulkApp{t: t, answer: func(n, seen int) string {
				switch n % 4 {
				case 1:
					if seen == 1 {
						return "RETRY"
					}
				case 2:
					return "DROP"
				case 3:
					if seen == 1 {
						return ""
					}
				}
				return "SUCCESS"
			}}
			r := newBulkRig(t, app, bulkSub(8, 50, tt.deadLetter))
			var deadN atomic.Int32
			if err := r.broker.Subscribe(t.Context(), pubsub.SubscribeRequest{Topic: "dlq"}, func(_ context.Context, msg *pubsub.Message) error {
				if _, err := cloudevents.Parse(msg.Data); err != nil {
					t.Errorf("dead letter is not the event: %v", err)
				}
				deadN.Add(1)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			for i := range 8 {
				r.publish(t, "orders", i)
			}
			waitFor(t, "every entry settled", func() bool {
				for n, want := range tt.seen {
					if app.seenCount(n) < want {
						return false
					}
				}
				return deadN.Load() >= tt.dead
			})
			time.Sleep(100 * time.Millisecond) // nothing else may come back
			for n, want := range tt.seen {
				if got := app.seenCount(n); got != want {
					t.Errorf("event %d delivered %d times, want %d", n, got, want)
				}
			}
			if got := deadN.Load(); got != tt.dead {
				t.Errorf("%d dead letters, want %d", got, tt.dead)
			}
		})
	}
}

func TestBulkCloseRedeliversPendingEntries(t *testing.T) {
	app := &bulkApp{t: t}
	r := newBulkRig(t, app, bulkSub(100, 60_000, ""))
	for i := range 3 {
		r.publish(t, "orders", i)
	}
	waitFor(t, "3 entries waiting", func() bool {
		r.batcher.mu.Lock()
		defer r.batcher.mu.Unlock()
		return len(r.batcher.pending) == 3
	})
	r.batcher.Close()
	for range 3 {
		select {
		case err := <-r.results:
			if !errors.Is(err, ErrBatcherClosed) {
				t.Errorf("pending entry settled with %v, want ErrBatcherClosed (redelivery)", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("pending entries not released by Close")
		}
	}
	// Redeliveries after Close are refused too, never acknowledged.
	select {
	case err := <-r.results:
		if !errors.Is(err, ErrBatcherClosed) {
			t.Errorf("redelivered message settled with %v after Close", err)
		}
	case <-time.After(time.Second):
		t.Error("messages were not redelivered")
	}
	r.cancel()
	app.mu.Lock()
	defer app.mu.Unlock()
	if len(app.batches) != 0 {
		t.Errorf("app got %d batches, want none", len(app.batches))
	}
}
