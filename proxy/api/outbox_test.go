package api

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/inmemory"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/proxy/cloudevents"
)

// rejectingBroker is an in-memory broker whose Publish fails as a
// pluggable component's does.
type rejectingBroker struct{ *inmemory.PubSub }

func (rejectingBroker) Publish(context.Context, *pubsub.PublishRequest) error {
	return status.Error(codes.Unknown, "outbox error")
}

// outboxFixture is a state store "store" with an outbox publishing to
// pub/sub "ps" (the in-memory broker), topic "orders".
type outboxFixture struct {
	state  *State
	outbox *Outbox
	states *components.Registry[state.Store]
	ps     *components.Registry[pubsub.PubSub]
}

func newOutboxFixture(t *testing.T, psType string, props map[string]string) *outboxFixture {
	t.Helper()
	m, _ := manager(t)
	m.Apply([]components.Component{comp("state.in-memory", "")})
	if err := m.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	newFn, types := components.FactoryFromMap(map[string]func() pubsub.PubSub{
		inmemory.Type:   func() pubsub.PubSub { return inmemory.New(nil) },
		"pubsub.reject": func() pubsub.PubSub { return rejectingBroker{inmemory.New(nil)} },
	})
	pm := components.NewManager(pubsub.Kind(newFn, types), components.ManagerOptions{Resolve: components.Env{AppID: "app1"}.Resolve})
	t.Cleanup(func() { _ = pm.Close() })
	pm.Apply([]components.Component{{Name: "ps", Type: psType, InitTimeout: components.DefaultInitTimeout,
		Metadata: []components.MetadataItem{{Name: "redeliverInterval", Value: "10ms", HasValue: true}}}})
	if err := pm.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	md := func(name string) (components.Metadata, bool) {
		if name != "store" {
			return components.Metadata{}, false
		}
		return components.Metadata{Name: name, Properties: props}, true
	}
	x := NewOutbox(OutboxOptions{States: m.Registry(), Metadata: md, PubSub: NewPubSub(PubSubConfig{Registry: pm.Registry(), AppID: "app1"}),
		AppID: "app1", MarkerWait: 2 * time.Second, Resync: 10 * time.Millisecond})
	s := NewState(StateConfig{Registry: m.Registry(), AppID: "app1", Metadata: md, Outbox: x})
	return &outboxFixture{state: s, outbox: x, states: m.Registry(), ps: pm.Registry()}
}

// run starts the outbox's subscriptions and waits until they are made.
func (f *outboxFixture) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.outbox.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitFor(t, func() bool {
		f.outbox.mu.Lock()
		defer f.outbox.mu.Unlock()
		return f.outbox.active["store"] != nil
	})
}

// collect subscribes to topic of "ps" and returns the events delivered.
func (f *outboxFixture) collect(t *testing.T, topic string) func() []cloudevents.Event {
	inst, err := f.ps.Ready("ps")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []cloudevents.Event
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := inst.Subscribe(ctx, pubsub.SubscribeRequest{Topic: topic}, func(_ context.Context, msg *pubsub.Message) error {
		ev, err := cloudevents.Parse(msg.Data)
		if err != nil {
			t.Errorf("not a CloudEvent: %s", msg.Data)
			return nil
		}
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return func() []cloudevents.Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]cloudevents.Event(nil), got...)
	}
}

var outboxProps = map[string]string{"outboxPublishPubsub": "ps", "outboxPublishTopic": "orders"}

func (f *outboxFixture) get(t *testing.T, key string) *state.GetResponse {
	t.Helper()
	st, err := f.states.Ready("store")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := st.Get(context.Background(), &state.GetRequest{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestOutboxDeliversCommitted: a committed transaction's upsert reaches
// the app's topic as a CloudEvent once, and its marker is removed; a
// projection is the message, not the stored value.
func TestOutboxDeliversCommitted(t *testing.T) {
	f := newOutboxFixture(t, inmemory.Type, outboxProps)
	f.run(t)
	events := f.collect(t, "orders")
	err := f.state.Transact(context.Background(), "store", state.TransactionRequest{Operations: []state.Operation{
		{Upsert: &state.SetRequest{Key: "key1", Value: []byte(`"val1"`)}},
		{Upsert: &state.SetRequest{Key: "key2", Value: []byte(`{"a":1}`)}},
		{Upsert: &state.SetRequest{Key: "key2", Value: []byte(`"projected"`), Metadata: map[string]string{"outbox.projection": "true"}}},
		{Delete: &state.DeleteRequest{Key: "key3"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(events()) == 2 })
	byData := map[string]cloudevents.Event{}
	for _, ev := range events() {
		byData[cloudevents.String(ev, "data")] = ev
	}
	for _, want := range []string{"val1", "projected"} {
		ev, ok := byData[want]
		if !ok {
			t.Fatalf("no event with data %q: %v", want, events())
		}
		if cloudevents.String(ev, "topic") != "orders" || cloudevents.String(ev, "pubsubname") != "ps" || cloudevents.String(ev, "source") != "app1" {
			t.Errorf("event %v: want topic orders, pubsubname ps, source app1", ev)
		}
		marker := cloudevents.String(ev, "id")
		waitFor(t, func() bool { return f.get(t, marker) == nil })
	}
	if got := f.get(t, "app1||key2"); got == nil || string(got.Data) != `{"a":1}` {
		t.Errorf("stored key2 = %v, want the upserted value, not the projection", got)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(events()); n != 2 {
		t.Errorf("%d events, want 2 (each message once)", n)
	}
}

// TestOutboxPublishFailureFailsTransaction: when the internal message
// cannot be published nothing is written and the caller gets
// ERR_PUBLISH_OUTBOX with the broker's words.
func TestOutboxPublishFailureFailsTransaction(t *testing.T) {
	f := newOutboxFixture(t, "pubsub.reject", outboxProps)
	err := f.state.Transact(context.Background(), "store", state.TransactionRequest{Operations: []state.Operation{
		{Upsert: &state.SetRequest{Key: "key1", Value: []byte(`"val1"`)}},
	}})
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Code != apierr.CodePublishOutbox || ae.HTTPStatus != 500 ||
		ae.Message != "error while publishing outbox message: rpc error: code = Unknown desc = outbox error" {
		t.Fatalf("err = %#v, want ERR_PUBLISH_OUTBOX", err)
	}
	if got := f.get(t, "app1||key1"); got != nil {
		t.Errorf("key1 was written: %s", got.Data)
	}
}

// TestOutboxMissingMarker: an internal message whose transaction never
// committed is not published: it is left for redelivery, or dropped with
// outboxDiscardWhenMissingState.
func TestOutboxMissingMarker(t *testing.T) {
	for _, discard := range []bool{false, true} {
		f := newOutboxFixture(t, inmemory.Type, outboxProps)
		f.outbox.o.MarkerWait = 20 * time.Millisecond
		events := f.collect(t, "orders")
		ev, err := cloudevents.Wrap(cloudevents.Request{Data: []byte("x"), Topic: "app1ordersoutbox", PubsubName: "ps", Source: "app1"})
		if err != nil {
			t.Fatal(err)
		}
		ev["id"] = "outbox-never-written"
		b, _ := cloudevents.Marshal(ev)
		c := OutboxConfig{PublishPubsub: "ps", PublishTopic: "orders", OutboxPubsub: "ps", DiscardWhenMissingState: discard}
		err = f.outbox.deliver(context.Background(), "store", c, &pubsub.Message{Data: b})
		if discard != (err == nil) {
			t.Errorf("discard=%v: deliver returned %v", discard, err)
		}
		time.Sleep(20 * time.Millisecond)
		if n := len(events()); n != 0 {
			t.Errorf("discard=%v: %d events published for an uncommitted transaction", discard, n)
		}
	}
}

func TestOutboxConfigOf(t *testing.T) {
	for _, tc := range []struct {
		props map[string]string
		want  OutboxConfig
		ok    bool
	}{
		{props: nil},
		{props: map[string]string{"outboxPublishPubsub": "ps"}},
		{props: map[string]string{"outboxPublishPubsub": "ps", "outboxPublishTopic": "t"},
			want: OutboxConfig{PublishPubsub: "ps", PublishTopic: "t", OutboxPubsub: "ps"}, ok: true},
		{props: map[string]string{"outboxPublishPubsub": "ps", "outboxPublishTopic": "t", "outboxPubsub": "in", "outboxDiscardWhenMissingState": "true"},
			want: OutboxConfig{PublishPubsub: "ps", PublishTopic: "t", OutboxPubsub: "in", DiscardWhenMissingState: true}, ok: true},
	} {
		got, ok := OutboxConfigOf(components.Metadata{Properties: tc.props})
		if got != tc.want || ok != tc.ok {
			t.Errorf("OutboxConfigOf(%v) = %+v, %v; want %+v, %v", tc.props, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzOutboxMessageData: any stored value gives a message without
// panicking; binary values and JSON values with a JSON content type are
// sent as they are.
func FuzzOutboxMessageData(f *testing.F) {
	f.Add([]byte(`"text"`), false, "")
	f.Add([]byte(`{"a":1}`), false, "")
	f.Add([]byte(`{"a":1}`), false, "application/json")
	f.Add([]byte{0, 1, 2}, true, "application/octet-stream")
	f.Add([]byte(`"\u00e9\n"`), false, "text/plain")
	f.Fuzz(func(t *testing.T, value []byte, binary bool, ct string) {
		u := &state.SetRequest{Key: "k", Value: value, IsBinary: binary, Metadata: map[string]string{"contentType": ct}}
		data, gotCT := messageData(u)
		if (binary || cloudevents.IsJSON(ct)) && (string(data) != string(value) || gotCT != ct) {
			t.Fatalf("messageData changed a value sent as is: %q %q", data, gotCT)
		}
	})
}
