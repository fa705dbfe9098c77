package proxy

import (
	"context"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/inmemory"
	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/workflow"
)

// TestStopEndsTopicEventStreams: open topic event streams (one subscribed,
// one that never sent its initial request) do not hold the gRPC server
// until the grace runs out, as daprd's (subscriptions/stream/disconnect):
// Run returns nil well within the grace, not ErrGraceExceeded.
func TestStopEndsTopicEventStreams(t *testing.T) {
	s, _, _ := streamSidecar(t, api.PubSubMetrics{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitHTTP(t, s.HTTPAddr())

	client := grpcClient(t, s)
	streamCtx, cancelStreams := context.WithCancel(context.Background())
	defer cancelStreams()
	subscribed := openStream(t, streamCtx, client)
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

// streamSidecar is a sidecar without an app serving pub/sub "mypub"
// (in-memory), with a grace of 5s; metrics records its deliveries.
func streamSidecar(t *testing.T, metrics api.PubSubMetrics) (*Sidecar, *api.PubSub, *components.Registry[pubsub.PubSub]) {
	t.Helper()
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
	ps := api.NewPubSub(api.PubSubConfig{Registry: m.Registry(), AppID: "lone", Metrics: metrics})
	s, _ := loneWith(t, ListenConfig{Addresses: []string{"127.0.0.1"}, InternalAddress: "127.0.0.1", MetricsPort: -1},
		Self{AppID: "lone"}, APIs{PubSub: ps})
	s.o.GracefulShutdown = 5 * time.Second
	return s, ps, m.Registry()
}

func grpcClient(t *testing.T, s *Sidecar) runtimev1.DaprClient {
	t.Helper()
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return runtimev1.NewDaprClient(conn)
}

// openStream subscribes to mypub/a and reads the initial response.
func openStream(t *testing.T, ctx context.Context, client runtimev1.DaprClient) runtimev1.Dapr_SubscribeTopicEventsAlpha1Client {
	t.Helper()
	stream, err := client.SubscribeTopicEventsAlpha1(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&runtimev1.SubscribeTopicEventsRequestAlpha1{
		SubscribeTopicEventsRequestType: &runtimev1.SubscribeTopicEventsRequestAlpha1_InitialRequest{
			InitialRequest: &runtimev1.SubscribeTopicEventsRequestInitialAlpha1{PubsubName: "mypub", Topic: "a"},
		},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("initial response: %v", err)
	}
	return stream
}

// TestShutdownDrainsTopicEventStreams: when the sidecar's shutdown begins,
// a stream holding an unanswered event stays open so the subscriber can
// still answer it (daprd's shutdown/graceful/subscription/streaming); the
// answer counts, and then the stream ends cleanly (not with the server's
// Unavailable).
func TestShutdownDrainsTopicEventStreams(t *testing.T) {
	var mu sync.Mutex
	var statuses []string
	s, ps, _ := streamSidecar(t, api.PubSubMetrics{Ingress: func(_, _, processStatus, _ string, _ time.Duration) {
		mu.Lock()
		statuses = append(statuses, processStatus)
		mu.Unlock()
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitHTTP(t, s.HTTPAddr())
	stream := openStream(t, context.Background(), grpcClient(t, s))
	if err := ps.Publish(context.Background(), api.PublishRequest{PubsubName: "mypub", Topic: "a", Data: []byte(`{}`), ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	ev, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	cancel() // shutdown begins with the event unanswered
	if err := stream.Send(&runtimev1.SubscribeTopicEventsRequestAlpha1{
		SubscribeTopicEventsRequestType: &runtimev1.SubscribeTopicEventsRequestAlpha1_EventProcessed{
			EventProcessed: &runtimev1.SubscribeTopicEventsRequestProcessedAlpha1{
				Id: ev.GetEventMessage().GetId(), Status: &runtimev1.TopicEventResponse{Status: runtimev1.TopicEventResponse_SUCCESS},
			},
		},
	}); err != nil {
		t.Fatalf("answering after shutdown began: %v", err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("stream ended with %v, want io.EOF (ended by the sidecar once drained)", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return")
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(statuses, []string{"success"}) {
		t.Fatalf("deliveries = %v, want one success", statuses)
	}
}

// TestStopEndsWorkItemStreams: a workflow worker's open GetWorkItems
// stream does not hold the gRPC server until the grace runs out (a
// SIGHUP's restart stalled on it): the stream ends with daprd's Canceled
// "shutting down", which the SDKs reconnect on, and Run returns nil well
// within the grace.
func TestStopEndsWorkItemStreams(t *testing.T) {
	wf := workflow.New(workflow.Config{AppID: "lone"})
	s, _ := loneWith(t, ListenConfig{Addresses: []string{"127.0.0.1"}, InternalAddress: "127.0.0.1", MetricsPort: -1},
		Self{AppID: "lone"}, APIs{Workflows: wf})
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
	t.Cleanup(func() { _ = conn.Close() })
	stream, err := protos.NewTaskHubSidecarServiceClient(conn).GetWorkItems(context.Background(), &protos.GetWorkItemsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); wf.ConnectedWorkers() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the worker never connected")
		}
	}

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil (the work-item stream should end when the sidecar stops)", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("stopping took %v: the work-item stream held the server", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("work-item stream ended with %v, want Canceled (daprd's shutting down)", err)
	}
}
