package proxy

import (
	"context"
	"testing"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/inmemory"
	"github.com/tandemrun/tandem/proxy/api"
)

// TestStopEndsTopicEventStreams: open topic event streams (one subscribed,
// one that never sent its initial request) do not hold the gRPC server
// until the grace runs out, as daprd's (subscriptions/stream/disconnect):
// Run returns nil well within the grace, not ErrGraceExceeded.
func TestStopEndsTopicEventStreams(t *testing.T) {
	newFn, types := components.FactoryFromMap(map[string]func() pubsub.PubSub{
		inmemory.Type: func() pubsub.PubSub { return inmemory.New(nil) },
	})
	m := components.NewManager(pubsub.Kind(newFn, types), components.ManagerOptions{Resolve: components.Env{AppID: "lone"}.Resolve})
	t.Cleanup(func() { _ = m.Close() })
	m.Apply([]components.Component{{Name: "mypub", Type: inmemory.Type, InitTimeout: components.DefaultInitTimeout}})
	deadline := time.Now().Add(10 * time.Second)
	for _, err := m.Registry().Ready("mypub"); err != nil; _, err = m.Registry().Ready("mypub") {
		if time.Now().After(deadline) {
			t.Fatal("pub/sub mypub never got ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ps := api.NewPubSub(api.PubSubConfig{Registry: m.Registry(), AppID: "lone"})
	s, _ := loneWith(t, ListenConfig{Addresses: []string{"127.0.0.1"}, InternalAddress: "127.0.0.1", MetricsPort: -1},
		Self{AppID: "lone"}, APIs{PubSub: ps})
	s.o.GracefulShutdown = 5 * time.Second

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitHTTP(t, s.HTTPAddr())

	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := runtimev1.NewDaprClient(conn)
	streamCtx, cancelStreams := context.WithCancel(context.Background())
	defer cancelStreams()
	subscribed, err := client.SubscribeTopicEventsAlpha1(streamCtx)
	if err != nil {
		t.Fatal(err)
	}
	if err := subscribed.Send(&runtimev1.SubscribeTopicEventsRequestAlpha1{
		SubscribeTopicEventsRequestType: &runtimev1.SubscribeTopicEventsRequestAlpha1_InitialRequest{
			InitialRequest: &runtimev1.SubscribeTopicEventsRequestInitialAlpha1{PubsubName: "mypub", Topic: "a"},
		},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := subscribed.Recv(); err != nil {
		t.Fatalf("initial response: %v", err)
	}
	silent, err := client.SubscribeTopicEventsAlpha1(streamCtx)
	if err != nil {
		t.Fatal(err)
	}
	_ = silent

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil (the streams should end when the sidecar stops)", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("stopping took %v: the streams held the server", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := subscribed.Recv(); err == nil {
		t.Fatal("the subscribed stream is still open after the sidecar stopped")
	}
}
