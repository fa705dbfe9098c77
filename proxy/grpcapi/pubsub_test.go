package grpcapi

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/inmemory"
	"github.com/tandemrun/tandem/components/pubsub/topicscope"
	"github.com/tandemrun/tandem/proxy/api"
)

// pubsubClient serves the in-memory "ps"; scoping is extra metadata of it,
// such as its topic scoping fields.
func pubsubClient(t *testing.T, scoping ...components.MetadataItem) runtimev1.DaprClient {
	t.Helper()
	newFn, types := components.FactoryFromMap(map[string]func() pubsub.PubSub{
		inmemory.Type: func() pubsub.PubSub { return inmemory.New(nil) },
	})
	env := components.Env{AppID: "myapp"}
	scopes := topicscope.NewTable(nil)
	m := components.NewManager(scopes.Kind(pubsub.Kind(newFn, types)), components.ManagerOptions{Resolve: env.Resolve})
	t.Cleanup(func() { _ = m.Close() })
	m.Apply([]components.Component{{Name: "ps", Type: inmemory.Type, InitTimeout: components.DefaultInitTimeout,
		Metadata: append([]components.MetadataItem{{Name: "redeliverInterval", Value: "10ms", HasValue: true}}, scoping...)}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	return start(t, Config{AppID: "myapp", PubSub: api.NewPubSub(api.PubSubConfig{Registry: m.Registry(), AppID: "myapp", Scopes: scopes.Of})})
}

func TestGRPCPublishErrors(t *testing.T) {
	c := pubsubClient(t)
	ctx := context.Background()
	_, err := c.PublishEvent(ctx, &runtimev1.PublishEventRequest{PubsubName: "nope", Topic: "t"})
	wantCode(t, err, codes.InvalidArgument, "pubsub nope is not found")
	_, err = c.PublishEvent(ctx, &runtimev1.PublishEventRequest{PubsubName: "ps"})
	wantCode(t, err, codes.InvalidArgument, "topic is empty")
	_, err = c.PublishEvent(ctx, &runtimev1.PublishEventRequest{PubsubName: "ps", Topic: "t", DataContentType: "application/cloudevents+json", Data: []byte("[")})
	wantCode(t, err, codes.InvalidArgument, "cannot create cloudevent")
	//lint:ignore SA1019 older SDKs still call the alpha RPC; it must keep working
	res, err := c.BulkPublishEventAlpha1(ctx, &runtimev1.BulkPublishRequest{PubsubName: "ps", Topic: "t", Entries: []*runtimev1.BulkPublishRequestEntry{
		{EntryId: "1", Event: []byte("a"), ContentType: "text/plain"}, {EntryId: "2", Event: []byte(`{"b":1}`), ContentType: "application/json"},
	}})
	if err != nil || len(res.GetFailedEntries()) != 0 {
		t.Errorf("bulk = %v, %v", res, err)
	}
	unimpl := start(t, Config{AppID: "x"})
	_, err = unimpl.PublishEvent(ctx, &runtimev1.PublishEventRequest{PubsubName: "ps", Topic: "t"})
	wantCode(t, err, codes.Unimplemented, "pub/sub")
}

// TestGRPCStreamingSubscription publishes over gRPC and receives over a
// SubscribeTopicEventsAlpha1 stream: RETRY redelivers, SUCCESS acks, and
// an event left unanswered when the stream closes comes back on the next
// stream.
func TestGRPCStreamingSubscription(t *testing.T) {
	c := pubsubClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	open := func() runtimev1.Dapr_SubscribeTopicEventsAlpha1Client {
		t.Helper()
		s, err := c.SubscribeTopicEventsAlpha1(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&runtimev1.SubscribeTopicEventsRequestAlpha1{SubscribeTopicEventsRequestType: &runtimev1.SubscribeTopicEventsRequestAlpha1_InitialRequest{
			InitialRequest: &runtimev1.SubscribeTopicEventsRequestInitialAlpha1{PubsubName: "ps", Topic: "live"},
		}}); err != nil {
			t.Fatal(err)
		}
		first, err := s.Recv()
		if err != nil || first.GetInitialResponse() == nil {
			t.Fatalf("initial response = %v, %v", first, err)
		}
		return s
	}
	answer := func(s runtimev1.Dapr_SubscribeTopicEventsAlpha1Client, id string, st runtimev1.TopicEventResponse_TopicEventResponseStatus) {
		t.Helper()
		if err := s.Send(&runtimev1.SubscribeTopicEventsRequestAlpha1{SubscribeTopicEventsRequestType: &runtimev1.SubscribeTopicEventsRequestAlpha1_EventProcessed{
			EventProcessed: &runtimev1.SubscribeTopicEventsRequestProcessedAlpha1{Id: id, Status: &runtimev1.TopicEventResponse{Status: st}},
		}}); err != nil {
			t.Fatal(err)
		}
	}

	s := open()
	pctx := metadata.AppendToOutgoingContext(ctx, "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if _, err := c.PublishEvent(pctx, &runtimev1.PublishEventRequest{PubsubName: "ps", Topic: "live", Data: []byte(`{"n":1}`), DataContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	ev, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	m := ev.GetEventMessage()
	var data map[string]any
	_ = json.Unmarshal(m.GetData(), &data)
	if m.GetTopic() != "live" || m.GetPubsubName() != "ps" || m.GetSource() != "myapp" || m.GetType() != "com.dapr.event.sent" || data["n"] != 1.0 ||
		m.GetExtensions().GetFields()["traceparent"].GetStringValue() == "" {
		t.Errorf("event = %v", m)
	}
	answer(s, m.GetId(), runtimev1.TopicEventResponse_RETRY)
	again, err := s.Recv()
	if err != nil || again.GetEventMessage().GetId() != m.GetId() {
		t.Fatalf("redelivery = %v, %v", again, err)
	}
	answer(s, m.GetId(), runtimev1.TopicEventResponse_SUCCESS)

	// Left unanswered when the stream closes: the delivery gives up (the
	// message is not acknowledged) and the subscription ends cleanly.
	if _, err := c.PublishEvent(ctx, &runtimev1.PublishEventRequest{PubsubName: "ps", Topic: "live", Data: []byte("two")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseSend()
	for {
		if _, err := s.Recv(); err != nil {
			if err != io.EOF {
				t.Logf("stream ended: %v", err)
			}
			break
		}
	}
	// The in-memory broker keeps nothing for a closed subscription; a new
	// stream gets new events.
	s2 := open()
	if _, err := c.PublishEvent(ctx, &runtimev1.PublishEventRequest{PubsubName: "ps", Topic: "live", Data: []byte("three"), DataContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	back, err := s2.Recv()
	if err != nil || string(back.GetEventMessage().GetData()) != "three" {
		t.Fatalf("after reconnect = %v, %v", back, err)
	}
	answer(s2, back.GetEventMessage().GetId(), runtimev1.TopicEventResponse_SUCCESS)

	// A stream that does not start with an initial request is refused.
	bad, err := c.SubscribeTopicEventsAlpha1(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = bad.Send(&runtimev1.SubscribeTopicEventsRequestAlpha1{SubscribeTopicEventsRequestType: &runtimev1.SubscribeTopicEventsRequestAlpha1_EventProcessed{EventProcessed: &runtimev1.SubscribeTopicEventsRequestProcessedAlpha1{Id: "x"}}})
	_, err = bad.Recv()
	wantCode(t, err, codes.Unknown, "initial request is required")

	// daprd's checks of the initial request and of a second one, in its
	// words.
	for _, tc := range []struct {
		first, second *runtimev1.SubscribeTopicEventsRequestInitialAlpha1
		want          string
	}{
		{&runtimev1.SubscribeTopicEventsRequestInitialAlpha1{Topic: "a"}, nil, "pubsubName is required"},
		{&runtimev1.SubscribeTopicEventsRequestInitialAlpha1{PubsubName: "ps"}, nil, "topic is required"},
		{&runtimev1.SubscribeTopicEventsRequestInitialAlpha1{PubsubName: "ps", Topic: "dup"},
			&runtimev1.SubscribeTopicEventsRequestInitialAlpha1{PubsubName: "ps", Topic: "dup"}, "duplicate initial request received"},
	} {
		s, err := c.SubscribeTopicEventsAlpha1(ctx)
		if err != nil {
			t.Fatal(err)
		}
		initial := func(r *runtimev1.SubscribeTopicEventsRequestInitialAlpha1) {
			_ = s.Send(&runtimev1.SubscribeTopicEventsRequestAlpha1{SubscribeTopicEventsRequestType: &runtimev1.SubscribeTopicEventsRequestAlpha1_InitialRequest{InitialRequest: r}})
		}
		initial(tc.first)
		if tc.second != nil {
			if _, err := s.Recv(); err != nil {
				t.Fatalf("initial response: %v", err)
			}
			initial(tc.second)
		}
		_, err = s.Recv()
		wantCode(t, err, codes.Unknown, tc.want)
	}
}

// TestGRPCStreamErrors: a topic event stream is refused with Dapr's
// messages, which clients match on.
func TestGRPCStreamErrors(t *testing.T) {
	c := pubsubClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	initial := func(pubsubName, topic string) *runtimev1.SubscribeTopicEventsRequestAlpha1 {
		return &runtimev1.SubscribeTopicEventsRequestAlpha1{SubscribeTopicEventsRequestType: &runtimev1.SubscribeTopicEventsRequestAlpha1_InitialRequest{
			InitialRequest: &runtimev1.SubscribeTopicEventsRequestInitialAlpha1{PubsubName: pubsubName, Topic: topic},
		}}
	}
	tests := []struct {
		name string
		msgs []*runtimev1.SubscribeTopicEventsRequestAlpha1
		want string
	}{
		{"no pubsub name", []*runtimev1.SubscribeTopicEventsRequestAlpha1{initial("", "a")}, "pubsubName is required"},
		{"no topic", []*runtimev1.SubscribeTopicEventsRequestAlpha1{initial("ps", "")}, "topic is required"},
		{"second initial request", []*runtimev1.SubscribeTopicEventsRequestAlpha1{initial("ps", "b"), initial("ps", "b")}, "duplicate initial request received"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.SubscribeTopicEventsAlpha1(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tt.msgs {
				_ = s.Send(m)
			}
			for {
				if _, err = s.Recv(); err != nil {
					break
				}
			}
			wantCode(t, err, codes.Unknown, tt.want)
		})
	}
}
