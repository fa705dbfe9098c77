package appchannel

import (
	"context"
	"slices"
	"sync"
	"testing"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tandemrun/tandem/proxy/cloudevents"
	"github.com/tandemrun/tandem/proxy/subscriptions"
)

// tokenApp is a gRPC subscriber that records the dapr-api-token values
// each callback received. Without OnBulkTopicEvent it answers Unimplemented
// there, so deliveries fall back to the alpha callback.
type tokenApp struct {
	runtimev1.UnimplementedAppCallbackServer
	runtimev1.UnimplementedAppCallbackAlphaServer
	bulk bool

	mu   sync.Mutex
	seen map[string][]string // method -> dapr-api-token values
}

func (a *tokenApp) record(ctx context.Context, method string) {
	md, _ := metadata.FromIncomingContext(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = map[string][]string{}
	}
	a.seen[method] = md.Get(apiTokenKey)
}

func (a *tokenApp) tokens(method string) ([]string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, ok := a.seen[method]
	return v, ok
}

func (a *tokenApp) OnTopicEvent(ctx context.Context, _ *runtimev1.TopicEventRequest) (*runtimev1.TopicEventResponse, error) {
	a.record(ctx, "OnTopicEvent")
	return &runtimev1.TopicEventResponse{}, nil
}

func (a *tokenApp) ListTopicSubscriptions(ctx context.Context, _ *emptypb.Empty) (*runtimev1.ListTopicSubscriptionsResponse, error) {
	a.record(ctx, "ListTopicSubscriptions")
	return &runtimev1.ListTopicSubscriptionsResponse{Subscriptions: []*runtimev1.TopicSubscription{{PubsubName: "ps", Topic: "orders"}}}, nil
}

func (a *tokenApp) OnBulkTopicEvent(ctx context.Context, in *runtimev1.TopicEventBulkRequest) (*runtimev1.TopicEventBulkResponse, error) {
	if !a.bulk {
		return nil, status.Error(codes.Unimplemented, "no bulk")
	}
	a.record(ctx, "OnBulkTopicEvent")
	return bulkOK(in), nil
}

func (a *tokenApp) OnBulkTopicEventAlpha1(ctx context.Context, in *runtimev1.TopicEventBulkRequest) (*runtimev1.TopicEventBulkResponse, error) {
	a.record(ctx, "OnBulkTopicEventAlpha1")
	return bulkOK(in), nil
}

func bulkOK(in *runtimev1.TopicEventBulkRequest) *runtimev1.TopicEventBulkResponse {
	out := &runtimev1.TopicEventBulkResponse{}
	for _, e := range in.GetEntries() {
		out.Statuses = append(out.Statuses, &runtimev1.TopicEventBulkResponseEntry{EntryId: e.GetEntryId()})
	}
	return out
}

func startTokenApp(t *testing.T, a *tokenApp) int {
	return serveApp(t, func(s *grpc.Server) {
		runtimev1.RegisterAppCallbackServer(s, a)
		runtimev1.RegisterAppCallbackAlphaServer(s, a)
	})
}

// TestGRPCAppTokenOnEveryCallback drives the app the way pub/sub does
// (proxy/api.PubSub.Run): clients on the channel's connection, used by
// the subscriptions package's discovery and deliverers.
func TestGRPCAppTokenOnEveryCallback(t *testing.T) {
	ev := cloudevents.Event{"id": "e1", "specversion": "1.0", "source": "s", "type": "t", "data": "x"}
	for _, tt := range []struct {
		name  string
		token string
		bulk  bool
	}{
		{"token, bulk callback", "app-tok", true},
		{"token, alpha bulk callback", "app-tok", false},
		{"no token", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			app := &tokenApp{bulk: tt.bulk}
			ch, err := NewGRPC(GRPCConfig{Port: startTokenApp(t, app), APIToken: tt.token})
			if err != nil {
				t.Fatal(err)
			}
			defer ch.Close()
			client := runtimev1.NewAppCallbackClient(ch.Conn())
			d := subscriptions.GRPCDeliverer{App: client, Alpha: runtimev1.NewAppCallbackAlphaClient(ch.Conn())}
			ctx := context.Background()

			subs, err := subscriptions.DiscoverGRPC(ctx, client, subscriptions.RetryPolicy{Attempts: 1}, nil)
			if err != nil || len(subs) != 1 {
				t.Fatalf("DiscoverGRPC = %v, %v", subs, err)
			}
			// An event whose broker metadata names a token must not smuggle
			// it to the app.
			msg := &subscriptions.Message{Event: ev, Topic: "orders", PubsubName: "ps",
				Metadata: map[string]string{subscriptions.MetadataKeyPubSub: "ps", apiTokenKey: "forged"}}
			if st, err := d.Deliver(ctx, msg); err != nil || st != subscriptions.Success {
				t.Fatalf("Deliver = %v, %v", st, err)
			}
			bulk := &subscriptions.BulkMessage{Topic: "orders", PubsubName: "ps",
				Metadata: map[string]string{subscriptions.MetadataKeyPubSub: "ps"},
				Entries:  []subscriptions.BulkEntry{{EntryID: "a", Message: msg}}}
			if st, err := d.DeliverBulk(ctx, bulk); err != nil || !slices.Equal(st, []subscriptions.Status{subscriptions.Success}) {
				t.Fatalf("DeliverBulk = %v, %v", st, err)
			}

			bulkMethod := "OnBulkTopicEventAlpha1"
			if tt.bulk {
				bulkMethod = "OnBulkTopicEvent"
			}
			for _, m := range []string{"ListTopicSubscriptions", "OnTopicEvent", bulkMethod} {
				got, called := app.tokens(m)
				if !called {
					t.Errorf("%s not called", m)
					continue
				}
				want := []string{tt.token}
				if tt.token == "" {
					want = nil
					if m == "OnTopicEvent" {
						want = []string{"forged"} // no token configured: metadata passes as is
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: app saw dapr-api-token %q, want %q", m, got, want)
				}
			}
		})
	}
}

// TestWithAPIToken checks the interceptor on the outgoing metadata shapes
// a caller may bring.
func TestWithAPIToken(t *testing.T) {
	for _, tt := range []struct {
		name string
		ctx  context.Context
	}{
		{"no metadata", context.Background()},
		{"other metadata", metadata.NewOutgoingContext(context.Background(), metadata.Pairs("x-a", "1"))},
		{"same token", metadata.NewOutgoingContext(context.Background(), metadata.Pairs(apiTokenKey, "tok", "x-a", "1"))},
		{"other token", metadata.NewOutgoingContext(context.Background(), metadata.Pairs(apiTokenKey, "forged", "x-a", "1"))},
		{"token appended", metadata.AppendToOutgoingContext(context.Background(), apiTokenKey, "forged")},
		{"two tokens", metadata.NewOutgoingContext(context.Background(), metadata.Pairs(apiTokenKey, "tok", apiTokenKey, "tok"))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var sent metadata.MD
			invoker := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
				sent, _ = metadata.FromOutgoingContext(ctx)
				return nil
			}
			if err := withAPIToken("tok")(tt.ctx, "/m", nil, nil, nil, invoker); err != nil {
				t.Fatal(err)
			}
			var streamed metadata.MD
			streamer := func(ctx context.Context, _ *grpc.StreamDesc, _ *grpc.ClientConn, _ string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
				streamed, _ = metadata.FromOutgoingContext(ctx)
				return nil, nil
			}
			// Streams carry it too: the gRPC proxy forwards calls on them.
			if _, err := withAPITokenStream("tok")(tt.ctx, &grpc.StreamDesc{}, nil, "/m", streamer); err != nil {
				t.Fatal(err)
			}
			in, _ := metadata.FromOutgoingContext(tt.ctx)
			for kind, md := range map[string]metadata.MD{"unary": sent, "stream": streamed} {
				if got := md.Get(apiTokenKey); !slices.Equal(got, []string{"tok"}) {
					t.Errorf("%s: dapr-api-token = %q, want [tok]", kind, got)
				}
				if got, want := md.Get("x-a"), in.Get("x-a"); !slices.Equal(got, want) {
					t.Errorf("%s: x-a = %q, want %q", kind, got, want)
				}
			}
		})
	}
}
