package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/inmemory"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/proxy/appchannel"
	"github.com/tandemrun/tandem/proxy/subscriptions"
)

// failing is a broker whose Init always fails (its server is "down").
type failing struct{ pubsub.PubSub }

func (failing) Init(context.Context, components.Metadata) error {
	return errors.New("dial tcp 127.0.0.1:1: connection refused")
}

// pubsubRegistry loads "ps" (in-memory, redelivering fast) and "down"
// (never ready).
func pubsubRegistry(t *testing.T) (*components.Manager[pubsub.PubSub], *components.Registry[pubsub.PubSub]) {
	t.Helper()
	return pubsubRegistryRedeliver(t, "10ms")
}

// pubsubRegistryRedeliver is pubsubRegistry with "ps" redelivering a failed
// message after redeliver.
func pubsubRegistryRedeliver(t *testing.T, redeliver string) (*components.Manager[pubsub.PubSub], *components.Registry[pubsub.PubSub]) {
	t.Helper()
	newFn, types := components.FactoryFromMap(map[string]func() pubsub.PubSub{
		inmemory.Type: func() pubsub.PubSub { return inmemory.New(nil) },
		"pubsub.fail": func() pubsub.PubSub { return failing{inmemory.New(nil)} },
	})
	kind := pubsub.Kind(newFn, types)
	env := components.Env{AppID: "app"}
	m := components.NewManager(kind, components.ManagerOptions{Resolve: env.Resolve, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	t.Cleanup(func() { _ = m.Close() })
	m.Apply([]components.Component{
		{Name: "ps", Type: inmemory.Type, InitTimeout: components.DefaultInitTimeout,
			Metadata: []components.MetadataItem{{Name: "redeliverInterval", Value: redeliver, HasValue: true}}},
		{Name: "down", Type: "pubsub.fail", InitTimeout: components.DefaultInitTimeout},
	})
	// "down" never gets ready, so wait for "ps" alone.
	waitUntil(t, "pubsub ps ready", func() bool {
		_, err := m.Registry().Ready("ps")
		return err == nil
	})
	return m, m.Registry()
}

func TestPublishErrors(t *testing.T) {
	_, reg := pubsubRegistry(t)
	p := NewPubSub(PubSubConfig{Registry: reg, AppID: "app"})
	empty := NewPubSub(PubSubConfig{Registry: components.NewRegistry[pubsub.PubSub](), AppID: "app"})
	ctx := context.Background()
	tests := []struct {
		name   string
		p      *PubSub
		req    PublishRequest
		code   string
		status int
		msg    string
	}{
		{"none loaded", empty, PublishRequest{PubsubName: "ps", Topic: "t"}, apierr.CodePubSubNotFound, 404, "pubsub ps is not found"},
		{"not configured", NewPubSub(PubSubConfig{AppID: "app"}), PublishRequest{PubsubName: "ps", Topic: "t"}, apierr.CodePubSubNotConfigured, 400, "not configured"},
		{"empty name", p, PublishRequest{Topic: "t"}, apierr.CodePubSubEmpty, 404, "empty"},
		{"not found", p, PublishRequest{PubsubName: "nope", Topic: "t"}, apierr.CodePubSubNotFound, 404, "pubsub nope is not found"},
		{"empty topic", p, PublishRequest{PubsubName: "ps"}, apierr.CodeTopicEmpty, 404, "topic is empty in pubsub ps"},
		{"not ready", p, PublishRequest{PubsubName: "down", Topic: "t"}, apierr.CodePubSubNotReady, 503, "connection refused"},
		{"bad rawPayload", p, PublishRequest{PubsubName: "ps", Topic: "t", Metadata: map[string]string{"rawPayload": "yes please"}}, apierr.CodePubSubRequestMetadata, 400, "rawPayload"},
		{"bad caller envelope", p, PublishRequest{PubsubName: "ps", Topic: "t", ContentType: "application/cloudevents+json", Data: []byte("{")}, apierr.CodePubSubCloudEventsSer, 500, "cannot create cloudevent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Publish(ctx, tt.req)
			e := apierr.From(err)
			if e.Code != tt.code || e.HTTPStatus != tt.status || !strings.Contains(e.Message, tt.msg) {
				t.Errorf("error = %v (%d), want %s %d containing %q", err, e.HTTPStatus, tt.code, tt.status, tt.msg)
			}
		})
	}
	if _, err := p.BulkPublish(ctx, BulkPublishRequest{PubsubName: "ps", Topic: "t", Entries: []BulkPublishEntry{{EntryID: "1"}, {EntryID: "1"}}}); apierr.From(err).Code != apierr.CodePubSubEventsSer {
		t.Errorf("duplicate entry IDs: %v", err)
	}
}

// subApp is a fake subscriber app.
type subApp struct {
	mu       sync.Mutex
	subs     string
	events   map[string][]map[string]any // path -> events
	answer   func(path string, ev map[string]any) (int, string)
	received chan string
}

func (a *subApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/dapr/subscribe" {
		_, _ = io.WriteString(w, a.subs)
		return
	}
	var ev map[string]any
	_ = json.NewDecoder(r.Body).Decode(&ev)
	a.mu.Lock()
	a.events[r.URL.Path] = append(a.events[r.URL.Path], ev)
	answer := a.answer
	a.mu.Unlock()
	code, body := 200, ""
	if answer != nil {
		code, body = answer(r.URL.Path, ev)
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
	select {
	case a.received <- r.URL.Path:
	default:
	}
}

func (a *subApp) count(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.events[path])
}

func startSubApp(t *testing.T, a *subApp) App {
	t.Helper()
	a.events = map[string][]map[string]any{}
	a.received = make(chan string, 100)
	return serveApp(t, a)
}

// serveApp serves h as the app and returns its channel.
func serveApp(t *testing.T, h http.Handler) App {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	n, _ := strconv.Atoi(port)
	ch, err := appchannel.NewHTTP(appchannel.HTTPConfig{Port: n})
	if err != nil {
		t.Fatal(err)
	}
	return App{HTTP: ch}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSubscriptionsInMemory runs programmatic and declarative
// subscriptions over the in-memory broker against a fake HTTP app:
// delivery, routing rules, dead-lettering on DROP and on 500,
// hot reload of a declarative subscription, metadata listing, shutdown.
func TestSubscriptionsInMemory(t *testing.T) {
	_, reg := pubsubRegistry(t)
	app := &subApp{subs: `[{"pubsubname":"ps","topic":"orders","route":"/orders","deadLetterTopic":"dead"}]`}
	var failOnce sync.Once
	app.answer = func(path string, ev map[string]any) (int, string) {
		data, _ := ev["data"].(map[string]any)
		switch {
		case data["drop"] == true:
			return 200, `{"status":"DROP"}`
		case data["flaky"] == true:
			code := 200
			failOnce.Do(func() { code = 500 })
			return code, ""
		}
		return 200, `{"status":"SUCCESS"}`
	}
	a := startSubApp(t, app)

	var declMu sync.Mutex
	decl := []components.Subscription{
		{Name: "dead", PubsubName: "ps", Topic: "dead", Routes: components.Routes{Default: "/dead"}},
		{Name: "rules", PubsubName: "ps", Topic: "rules", Routes: components.Routes{
			Rules:   []components.Rule{{Match: `event.data.kind == "big"`, Path: "/big"}},
			Default: "/small",
		}},
		{Name: "other-app", PubsubName: "ps", Topic: "x", Routes: components.Routes{Default: "/x"}, Scopes: []string{"someone-else"}},
	}
	p := NewPubSub(PubSubConfig{Registry: reg, AppID: "app", Declarative: func() []components.Subscription {
		declMu.Lock()
		defer declMu.Unlock()
		return append([]components.Subscription(nil), decl...)
	}})
	p.resync = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx, a) }()
	waitUntil(t, "three subscriptions", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.active) == 3
	})

	kinds := map[string]string{}
	for _, s := range p.Subscriptions() {
		kinds[s.GetTopic()] = s.GetType().String()
	}
	if kinds["orders"] != "PROGRAMMATIC" || kinds["dead"] != "DECLARATIVE" || kinds["rules"] != "DECLARATIVE" || len(kinds) != 3 {
		t.Errorf("subscriptions = %v", kinds)
	}

	pub := func(topic, data string) {
		t.Helper()
		if err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: topic, Data: []byte(data), ContentType: "application/json"}); err != nil {
			t.Fatal(err)
		}
	}
	pub("orders", `{"n":1}`)
	pub("orders", `{"drop":true}`)
	pub("orders", `{"flaky":true}`)
	pub("rules", `{"kind":"big"}`)
	pub("rules", `{"kind":"tiny"}`)
	waitUntil(t, "deliveries", func() bool {
		// The failed (500) event goes to the dead letter topic too, as in Dapr.
		return app.count("/orders") == 3 && app.count("/dead") == 2 && app.count("/big") == 1 && app.count("/small") == 1
	})
	app.mu.Lock()
	deadEvs := slices.Clone(app.events["/dead"])
	first := app.events["/orders"][0]
	app.mu.Unlock()
	for _, deadEv := range deadEvs {
		if d, _ := deadEv["data"].(map[string]any); (d["drop"] != true && d["flaky"] != true) || deadEv["topic"] != "orders" {
			t.Errorf("dead-lettered event = %v, want the dropped or failed one as published", deadEv)
		}
	}
	if first["source"] != "app" || first["type"] != "com.dapr.event.sent" || first["pubsubname"] != "ps" || first["specversion"] != "1.0" {
		t.Errorf("envelope = %v", first)
	}

	// Hot reload: the rules subscription now routes everything to /all.
	declMu.Lock()
	decl[1].Routes = components.Routes{Default: "/all"}
	declMu.Unlock()
	p.Reload()
	waitUntil(t, "re-subscription", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		a := p.active["ps||rules"]
		return a != nil && a.sub.Rules[0].Path == "/all"
	})
	pub("rules", `{"kind":"big"}`)
	waitUntil(t, "delivery after reload", func() bool { return app.count("/all") == 1 })

	cancel()
	select {
	case err := <-runDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

// TestShutdownWaitsForDeliveries: cancelling Run waits for the delivery in
// flight, whose success is then acknowledged (not redelivered, not
// dead-lettered).
func TestShutdownWaitsForDeliveries(t *testing.T) {
	_, reg := pubsubRegistry(t)
	release := make(chan struct{})
	app := &subApp{subs: `[{"pubsubname":"ps","topic":"slow","route":"/slow","deadLetterTopic":"dead"}]`}
	app.answer = func(string, map[string]any) (int, string) {
		<-release
		return 200, ""
	}
	a := startSubApp(t, app)
	p := NewPubSub(PubSubConfig{Registry: reg, AppID: "app"})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx, a) }()
	waitUntil(t, "subscription", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.active) == 1
	})
	if err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: "slow", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "delivery started", func() bool { return app.count("/slow") == 1 })
	cancel()
	select {
	case <-runDone:
		t.Fatal("Run returned while a delivery was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case <-runDone:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the delivery finished")
	}
	time.Sleep(50 * time.Millisecond)
	if n := app.count("/slow"); n != 1 {
		t.Errorf("delivered %d times, want 1", n)
	}
}

// streamRecorder is a streaming subscriber answering with a fixed status.
type streamRecorder struct {
	mu   sync.Mutex
	got  []string
	resp subscriptions.Status
}

func (s *streamRecorder) Deliver(_ context.Context, m *subscriptions.Message) (subscriptions.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, m.Topic+m.Path)
	return s.resp, nil
}

func TestStreamingSubscription(t *testing.T) {
	_, reg := pubsubRegistry(t)
	p := NewPubSub(PubSubConfig{Registry: reg, AppID: "app"})
	ctx := context.Background()
	rec := &streamRecorder{}
	if _, err := p.Subscribe(ctx, StreamRequest{PubsubName: "nope", Topic: "t"}, rec); apierr.From(err).Code != apierr.CodePubSubNotFound || apierr.From(err).Message != "pubsub nope is not found" {
		t.Errorf("unknown pubsub: %v, want daprd's \"pubsub nope is not found\"", err)
	}
	stop, err := p.Subscribe(ctx, StreamRequest{PubsubName: "ps", Topic: "live"}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if subs := p.Subscriptions(); len(subs) != 1 || subs[0].GetType().String() != "STREAMING" || subs[0].GetRules().GetRules()[0].GetPath() != "/" {
		t.Errorf("subscriptions = %v, want one streaming with path /", subs)
	}
	if err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: "live", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "stream delivery", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.got) == 1
	})
	rec.mu.Lock()
	if rec.got[0] != "live/" {
		t.Errorf("delivered %q, want topic live with path /", rec.got[0])
	}
	rec.mu.Unlock()
	stop()
	if subs := p.Subscriptions(); len(subs) != 0 {
		t.Errorf("after stop: %v", subs)
	}
}

// TestConcurrencyAndOrdering: metadata maxConcurrency bounds the
// deliveries in flight, and orderingKey keeps events of one key in order.
func TestConcurrencyAndOrdering(t *testing.T) {
	_, reg := pubsubRegistry(t)
	var mu sync.Mutex
	inFlight, peak := 0, 0
	var order []float64
	app := &subApp{subs: `[
		{"pubsubname":"ps","topic":"bounded","route":"/bounded","metadata":{"maxConcurrency":"2"}},
		{"pubsubname":"ps","topic":"ordered","route":"/ordered","metadata":{"maxConcurrency":"8","orderingKey":"partitionKey"}}
	]`}
	app.answer = func(path string, ev map[string]any) (int, string) {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		if path == "/ordered" {
			order = append(order, ev["data"].(map[string]any)["n"].(float64))
		}
		mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
		return 200, ""
	}
	a := startSubApp(t, app)
	p := NewPubSub(PubSubConfig{Registry: reg, AppID: "app"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = p.Run(ctx, a) }()
	waitUntil(t, "subscriptions", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.active) == 2
	})
	for i := 0; i < 12; i++ {
		if err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: "bounded", Data: []byte(`{"n":1}`), ContentType: "application/json"}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "bounded deliveries", func() bool { return app.count("/bounded") == 12 })
	mu.Lock()
	if peak != 2 {
		t.Errorf("peak concurrency = %d, want 2", peak)
	}
	mu.Unlock()
	for i := 0; i < 20; i++ {
		if err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: "ordered", Data: []byte(`{"n":` + strconv.Itoa(i) + `}`),
			ContentType: "application/json", Metadata: map[string]string{"partitionKey": "k"}}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "ordered deliveries", func() bool { return app.count("/ordered") == 20 })
	mu.Lock()
	defer mu.Unlock()
	for i, n := range order {
		if int(n) != i {
			t.Fatalf("order = %v, want 0..19", order)
		}
	}
}

// TestSubscriptionPrecedence pins Dapr's rule for several subscriptions to
// one topic: the first declarative one wins over later declarative ones,
// and the app's own subscription wins over any declarative one.
func nsDecl(ns string, s components.Subscription) components.Subscription {
	s.Namespace = ns
	return s
}

func TestSubscriptionPrecedence(t *testing.T) {
	decl := func(name, topic, route string) components.Subscription {
		return components.Subscription{Name: name, PubsubName: "ps", Topic: topic, Routes: components.Routes{Default: route}}
	}
	prog := func(topic, route string) *subscriptions.Subscription {
		return &subscriptions.Subscription{Kind: subscriptions.Programmatic, PubsubName: "ps", Topic: topic, Rules: []*subscriptions.Rule{{Path: route}}}
	}
	tests := []struct {
		name string
		ns   string
		decl []components.Subscription
		prog []*subscriptions.Subscription
		want map[string]string // topic -> path
	}{
		{"first declarative wins", "", []components.Subscription{decl("s1", "a", "/first"), decl("s2", "a", "/second")}, nil,
			map[string]string{"a": "/first"}},
		{"programmatic beats declarative", "", []components.Subscription{decl("s1", "a", "/decl"), decl("s2", "b", "/decl-b")},
			[]*subscriptions.Subscription{prog("a", "/prog")}, map[string]string{"a": "/prog", "b": "/decl-b"}},
		{"last programmatic wins", "", nil, []*subscriptions.Subscription{prog("a", "/one"), prog("a", "/two")},
			map[string]string{"a": "/two"}},
		// As daprd: a subscription's namespace counts only when NAMESPACE is set.
		{"namespace unset keeps every namespace", "", []components.Subscription{nsDecl("other", decl("s1", "a", "/a"))}, nil,
			map[string]string{"a": "/a"}},
		{"namespace set filters", "mine", []components.Subscription{nsDecl("other", decl("s1", "a", "/a")), nsDecl("mine", decl("s2", "b", "/b")), decl("s3", "c", "/c")}, nil,
			map[string]string{"b": "/b", "c": "/c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPubSub(PubSubConfig{AppID: "app", Namespace: tt.ns, Declarative: func() []components.Subscription { return tt.decl }})
			p.programmatic = tt.prog
			p.mu.Lock()
			got := p.desiredLocked()
			p.mu.Unlock()
			paths := map[string]string{}
			for _, s := range got {
				paths[s.Topic] = s.Rules[len(s.Rules)-1].Path
			}
			if !maps.Equal(paths, tt.want) {
				t.Errorf("routes = %v, want %v", paths, tt.want)
			}
		})
	}
}

// TestStartedAfterFirstSubscriptions: Started (which gates the sidecar's
// healthz) turns true only once the app's subscriptions are made, so an
// event published as soon as the sidecar is healthy is delivered.
func TestStartedAfterFirstSubscriptions(t *testing.T) {
	_, reg := pubsubRegistry(t)
	release := make(chan struct{})
	app := &subApp{subs: `[{"pubsubname":"ps","topic":"orders","route":"/orders"}]`}
	startSubApp(t, app)
	a := serveApp(t, &slowSubscribe{subApp: app, release: release})
	p := NewPubSub(PubSubConfig{Registry: reg, AppID: "app"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = p.Run(ctx, a) }()
	time.Sleep(50 * time.Millisecond)
	if p.Started() {
		t.Fatal("Started before the app answered GET /dapr/subscribe")
	}
	close(release)
	waitUntil(t, "Started", p.Started)
	if err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: "orders", Data: []byte(`{}`), ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "delivery of the event published once started", func() bool { return app.count("/orders") == 1 })
}

// slowSubscribe holds GET /dapr/subscribe until release is closed.
type slowSubscribe struct {
	*subApp
	release chan struct{}
}

func (s *slowSubscribe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/dapr/subscribe" {
		<-s.release
	}
	s.subApp.ServeHTTP(w, r)
}

// TestRawPublishCarriesTrace: a raw payload has no envelope, so the
// caller's trace context goes with the message as metadata traceid and
// tracestate (Dapr's entries), and the caller's own metadata map is left
// alone.
func TestRawPublishCarriesTrace(t *testing.T) {
	_, reg := pubsubRegistry(t)
	inst, release, err := reg.Acquire("ps")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	got := make(chan map[string]string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := inst.Subscribe(ctx, pubsub.SubscribeRequest{Topic: "raw"}, func(_ context.Context, m *pubsub.Message) error {
		got <- m.Metadata
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	p := NewPubSub(PubSubConfig{Registry: reg, AppID: "app"})
	md := map[string]string{"rawPayload": "true"}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: "raw", Data: []byte("x"), Metadata: md, TraceParent: tp, TraceState: "k=v"}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m["traceid"] != tp || m["tracestate"] != "k=v" {
			t.Errorf("message metadata = %v, want traceid %s and tracestate k=v", m, tp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
	if len(md) != 1 {
		t.Errorf("caller's metadata changed: %v", md)
	}
}

// TestNoProgrammatic: with --disable-init-endpoints subscribe the app is
// not asked for its subscriptions, and its topics get nothing.
func TestNoProgrammatic(t *testing.T) {
	_, reg := pubsubRegistry(t)
	app := &subApp{subs: `[{"pubsubname":"ps","topic":"orders","route":"/orders"}]`}
	a := startSubApp(t, app)
	asked := make(chan struct{}, 10)
	a = serveApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/dapr/subscribe" {
			asked <- struct{}{}
		}
		app.ServeHTTP(w, r)
	}))
	p := NewPubSub(PubSubConfig{Registry: reg, AppID: "app", NoProgrammatic: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = p.Run(ctx, a) }()
	waitUntil(t, "Started", p.Started)
	if err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: "orders", Data: []byte(`{}`), ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if len(asked) != 0 || app.count("/orders") != 0 || len(p.Subscriptions()) != 0 {
		t.Errorf("asked %d times, %d deliveries, subscriptions %v; want none", len(asked), app.count("/orders"), p.Subscriptions())
	}
}

// TestSettledAfterSubscribing: a pub/sub component that becomes ready while
// Run runs is not settled until a round of subscribing has made the app's
// subscription on it; once it is, an event published at once is delivered
// (daprd lists a pub/sub component only after subscribing on it).
func TestSettledAfterSubscribing(t *testing.T) {
	m, reg := pubsubRegistry(t)
	app := &subApp{subs: `[{"pubsubname":"late","topic":"orders","route":"/orders"}]`}
	a := startSubApp(t, app)
	p := NewPubSub(PubSubConfig{Registry: reg, AppID: "app"})
	p.resync = time.Hour // rounds only on Reload
	if !p.Settled("late") {
		t.Fatal("Settled before Run: want true (nothing to wait for)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx, a) }()
	defer func() { cancel(); <-runDone }()
	waitUntil(t, "Started", p.Started)

	m.Apply([]components.Component{
		{Name: "ps", Type: inmemory.Type, InitTimeout: components.DefaultInitTimeout,
			Metadata: []components.MetadataItem{{Name: "redeliverInterval", Value: "10ms", HasValue: true}}},
		{Name: "down", Type: "pubsub.fail", InitTimeout: components.DefaultInitTimeout},
		{Name: "late", Type: inmemory.Type, InitTimeout: components.DefaultInitTimeout},
	})
	waitUntil(t, "late ready", func() bool { _, err := reg.Ready("late"); return err == nil })
	if p.Settled("late") {
		t.Fatal("late settled before a round of subscribing")
	}
	if !p.Settled("ps") {
		t.Fatal("ps, ready since before the first round, is not settled")
	}
	p.Reload()
	waitUntil(t, "late settled", func() bool { return p.Settled("late") })
	if err := p.Publish(ctx, PublishRequest{PubsubName: "late", Topic: "orders", Data: []byte(`{}`), ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "delivery of the event published once settled", func() bool { return app.count("/orders") == 1 })
}

// TestAskedOnlyOnceAPubSubExists: as daprd, a sidecar without pub/sub
// components never calls the app's GET /dapr/subscribe (Dapr's
// actors/healthz/endpoint cases fail on any unexpected call); once one is
// added and the subscriptions reloaded, the app is asked, once, and its
// subscription delivers.
func TestAskedOnlyOnceAPubSubExists(t *testing.T) {
	newFn, types := components.FactoryFromMap(map[string]func() pubsub.PubSub{
		inmemory.Type: func() pubsub.PubSub { return inmemory.New(nil) },
	})
	env := components.Env{AppID: "app"}
	m := components.NewManager(pubsub.Kind(newFn, types), components.ManagerOptions{Resolve: env.Resolve, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	t.Cleanup(func() { _ = m.Close() })
	app := &subApp{subs: `[{"pubsubname":"ps","topic":"orders","route":"/orders"}]`}
	startSubApp(t, app)
	var asked atomic.Int32
	a := serveApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/dapr/subscribe" {
			asked.Add(1)
		}
		app.ServeHTTP(w, r)
	}))
	p := NewPubSub(PubSubConfig{Registry: m.Registry(), AppID: "app"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, a) }()
	waitUntil(t, "Started", p.Started)
	p.Reload()
	time.Sleep(200 * time.Millisecond)
	if n := asked.Load(); n != 0 {
		t.Fatalf("the app was asked for its subscriptions %d times with no pub/sub component; want 0", n)
	}

	m.Apply([]components.Component{{Name: "ps", Type: inmemory.Type, InitTimeout: components.DefaultInitTimeout}})
	waitUntil(t, "pubsub ps ready", func() bool { _, err := m.Registry().Ready("ps"); return err == nil })
	p.Reload()
	waitUntil(t, "subscribed to ps/orders", func() bool { return len(p.Subscriptions()) == 1 && p.Settled("ps") })
	if err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: "orders", Data: []byte(`{}`), ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "delivery to /orders", func() bool { return app.count("/orders") == 1 })
	p.Reload()
	time.Sleep(100 * time.Millisecond)
	if n := asked.Load(); n != 1 {
		t.Errorf("the app was asked %d times; want once", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
