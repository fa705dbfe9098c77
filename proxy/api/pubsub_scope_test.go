package api

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/inmemory"
	"github.com/tandemrun/tandem/components/pubsub/topicscope"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/proxy/subscriptions"
)

// countingBroker is the in-memory broker counting what reaches Publish
// per topic (bulk publishing falls back to Publish).
type countingBroker struct {
	*inmemory.PubSub
	mu        sync.Mutex
	published map[string]int
}

func (b *countingBroker) Publish(ctx context.Context, req *pubsub.PublishRequest) error {
	b.mu.Lock()
	b.published[req.Topic]++
	b.mu.Unlock()
	return b.PubSub.Publish(ctx, req)
}

func (b *countingBroker) count(topic string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.published[topic]
}

// warnLog is a slog.Handler keeping the warnings (and worse) as
// "message key=value ..." lines; safe for the subscription goroutines.
type warnLog struct {
	mu    *sync.Mutex
	lines *[]string
	attrs []slog.Attr
}

func newWarnLog() *warnLog { return &warnLog{mu: &sync.Mutex{}, lines: new([]string)} }

func (w *warnLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (w *warnLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%s", a.Key, a.Value)
		return true
	}
	for _, a := range w.attrs {
		add(a)
	}
	r.Attrs(add)
	w.mu.Lock()
	*w.lines = append(*w.lines, b.String())
	w.mu.Unlock()
	return nil
}

func (w *warnLog) WithAttrs(as []slog.Attr) slog.Handler {
	c := *w
	c.attrs = append(slices.Clip(w.attrs), as...)
	return &c
}

func (w *warnLog) WithGroup(string) slog.Handler { return w }

func (w *warnLog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(*w.lines, "\n")
}

// scopedPubSub loads "ps" (counting in-memory broker) with the given
// topic scoping metadata through a topicscope.Table, as cmd/tandemd does,
// and returns the API for app "app" with its log.
func scopedPubSub(t *testing.T, decl []components.Subscription, scoping ...string) (*PubSub, *countingBroker, *warnLog) {
	t.Helper()
	broker := &countingBroker{PubSub: inmemory.New(nil), published: map[string]int{}}
	newFn, types := components.FactoryFromMap(map[string]func() pubsub.PubSub{
		"pubsub.counting": func() pubsub.PubSub { return broker },
	})
	table := topicscope.NewTable(nil)
	env := components.Env{AppID: "app"}
	m := components.NewManager(table.Kind(pubsub.Kind(newFn, types)), components.ManagerOptions{Resolve: env.Resolve})
	t.Cleanup(func() { _ = m.Close() })
	items := []components.MetadataItem{{Name: "redeliverInterval", Value: "10ms", HasValue: true}}
	for i := 0; i+1 < len(scoping); i += 2 {
		items = append(items, components.MetadataItem{Name: scoping[i], Value: scoping[i+1], HasValue: true})
	}
	m.Apply([]components.Component{{Name: "ps", Type: "pubsub.counting", InitTimeout: components.DefaultInitTimeout, Metadata: items}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	logs := newWarnLog()
	p := NewPubSub(PubSubConfig{
		Registry: m.Registry(), AppID: "app", Scopes: table.Of, Log: slog.New(logs),
		Declarative: func() []components.Subscription { return decl },
	})
	p.resync = 20 * time.Millisecond
	return p, broker, logs
}

func wantForbidden(t *testing.T, err error, topic, field string) {
	t.Helper()
	e := apierr.From(err)
	if e.Code != apierr.CodePubSubForbidden || e.HTTPStatus != 403 || e.GRPCCode != codes.PermissionDenied {
		t.Fatalf("error = %v (%d, %v), want ERR_PUBSUB_FORBIDDEN 403 PermissionDenied", err, e.HTTPStatus, e.GRPCCode)
	}
	// daprd's message; the scoping field to change is in the details.
	if want := "topic " + topic + " is not allowed for app id app"; e.Message != want {
		t.Errorf("message %q, want %q", e.Message, want)
	}
	if body := string(e.JSON()); !strings.Contains(body, field) {
		t.Errorf("details %s do not name %q", body, field)
	}
}

// TestPublishScopes: a topic the app may not publish to is refused with
// 403 ERR_PUBSUB_FORBIDDEN (single and bulk) and nothing reaches the
// broker; allowed topics publish as usual.
func TestPublishScopes(t *testing.T) {
	p, broker, _ := scopedPubSub(t, nil,
		"publishingScopes", "app=orders,secret,free;other=audit",
		"allowedTopics", "orders,audit,secret,free",
		"protectedTopics", "audit,secret")
	ctx := context.Background()
	for _, topic := range []string{"orders", "secret", "free"} {
		if err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: topic, Data: []byte("x")}); err != nil {
			t.Errorf("publish to %s: %v", topic, err)
		}
	}
	tests := []struct{ topic, field string }{
		{"audit", "publishingScopes"},  // not in the app's list
		{"elsewhere", "allowedTopics"}, // not an allowed topic at all
		{"orders-v2", "allowedTopics"}, // names match exactly
	}
	for _, tt := range tests {
		err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: tt.topic, Data: []byte("x")})
		wantForbidden(t, err, tt.topic, tt.field)
		failed, err := p.BulkPublish(ctx, BulkPublishRequest{PubsubName: "ps", Topic: tt.topic, Entries: []BulkPublishEntry{{EntryID: "1", Event: []byte("x"), ContentType: "text/plain"}}})
		wantForbidden(t, err, tt.topic, tt.field)
		if len(failed) != 0 {
			t.Errorf("bulk %s: failed entries %v, want a request error", tt.topic, failed)
		}
		if n := broker.count(tt.topic); n != 0 {
			t.Errorf("%d message(s) reached the broker on forbidden topic %s", n, tt.topic)
		}
	}
	if _, err := p.BulkPublish(ctx, BulkPublishRequest{PubsubName: "ps", Topic: "orders", Entries: []BulkPublishEntry{{EntryID: "1", Event: []byte("x"), ContentType: "text/plain"}}}); err != nil {
		t.Errorf("bulk to an allowed topic: %v", err)
	}
	if broker.count("orders") != 2 || broker.count("secret") != 1 || broker.count("free") != 1 {
		t.Errorf("published = %v", broker.published)
	}
}

// TestSubscriptionScopes: programmatic, declarative and streaming
// subscriptions to topics the app may not subscribe to are not made, with
// a warning naming topic, app and field; the allowed ones deliver.
func TestSubscriptionScopes(t *testing.T) {
	decl := []components.Subscription{
		{Name: "d-ok", PubsubName: "ps", Topic: "invoices", Routes: components.Routes{Default: "/invoices"}},
		{Name: "d-denied", PubsubName: "ps", Topic: "payroll", Routes: components.Routes{Default: "/payroll"}},
	}
	p, _, logs := scopedPubSub(t, decl,
		"subscriptionScopes", "app=orders,invoices",
		"publishingScopes", "app=orders,invoices,payroll,refunds",
		"protectedTopics", "payroll")
	app := &subApp{subs: `[{"pubsubname":"ps","topic":"orders","route":"/orders","deadLetterTopic":"dead"},
		{"pubsubname":"ps","topic":"refunds","route":"/refunds"}]`}
	a := startSubApp(t, app)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx, a) }()

	waitUntil(t, "the allowed subscriptions", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.active) == 2
	})
	waitUntil(t, "the warnings", func() bool {
		return strings.Count(logs.String(), "subscription not made") == 2
	})
	p.mu.Lock()
	for k := range p.active {
		if k != "ps||orders" && k != "ps||invoices" {
			t.Errorf("subscription %s was made", k)
		}
	}
	p.mu.Unlock()
	out := logs.String()
	for _, want := range []string{
		"subscription not made", "topic=refunds", "topic=payroll", "app_id=app", "field=subscriptionScopes",
		"kind=programmatic", "kind=declarative",
		// The dead letter topic is not in the app's publishingScopes.
		"dead_letter_topic=dead",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}

	// Publishing to refunds is allowed, but nobody here subscribed to it.
	for _, topic := range []string{"orders", "refunds", "invoices"} {
		if err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: topic, Data: []byte(`{}`), ContentType: "application/json"}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "deliveries on the allowed topics", func() bool { return app.count("/orders") == 1 && app.count("/invoices") == 1 })
	time.Sleep(50 * time.Millisecond)
	if n := app.count("/refunds"); n != 0 {
		t.Errorf("%d event(s) delivered on a subscription that must not exist", n)
	}

	// Streaming: refused with PermissionDenied, no subscription left over.
	rec := &streamRecorder{}
	_, err := p.Subscribe(ctx, StreamRequest{PubsubName: "ps", Topic: "payroll"}, rec)
	wantForbidden(t, err, "payroll", "subscriptionScopes")
	if !strings.Contains(logs.String(), "streaming subscription refused") {
		t.Errorf("no warning for the refused stream:\n%s", logs.String())
	}
	stop, err := p.Subscribe(ctx, StreamRequest{PubsubName: "ps", Topic: "orders"}, rec)
	if err != nil {
		t.Fatalf("allowed stream: %v", err)
	}
	stop()
	for _, s := range p.Subscriptions() {
		if s.GetType().String() == "STREAMING" {
			t.Errorf("stream left over: %v", s)
		}
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
}

// TestDeadLetterScoped: dead-lettering publishes as the app, so a dead
// letter topic it may not publish to is refused and the dropped event
// stays with the broker instead of landing there.
func TestDeadLetterScoped(t *testing.T) {
	p, broker, _ := scopedPubSub(t, nil, "publishingScopes", "app=orders")
	var once sync.Once
	dropped := make(chan struct{})
	d := deliverFunc(func(context.Context, *subscriptions.Message) (subscriptions.Status, error) {
		once.Do(func() { close(dropped) })
		return subscriptions.Drop, nil
	})
	ctx := context.Background()
	stop, err := p.Subscribe(ctx, StreamRequest{PubsubName: "ps", Topic: "orders", DeadLetterTopic: "dead"}, d)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: "orders", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	<-dropped
	time.Sleep(50 * time.Millisecond)
	if n := broker.count("dead"); n != 0 {
		t.Errorf("%d event(s) dead-lettered to a topic the app may not publish to", n)
	}
}

type deliverFunc func(context.Context, *subscriptions.Message) (subscriptions.Status, error)

func (f deliverFunc) Deliver(ctx context.Context, m *subscriptions.Message) (subscriptions.Status, error) {
	return f(ctx, m)
}
