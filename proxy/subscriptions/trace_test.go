package subscriptions

import (
	"context"
	"net"
	"testing"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/cloudevents"
)

// topicApp is a gRPC app that records the metadata of OnTopicEvent.
type topicApp struct {
	runtimev1.UnimplementedAppCallbackServer
	got chan metadata.MD
}

func (a *topicApp) OnTopicEvent(ctx context.Context, _ *runtimev1.TopicEventRequest) (*runtimev1.TopicEventResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	a.got <- md
	return &runtimev1.TopicEventResponse{}, nil
}

// TestTraceOnDelivery: the app receives the event's trace context as
// traceparent (and tracestate, and grpc-trace-bin for gRPC); an event
// without a valid one comes with Dapr's all-zero traceparent.
func TestTraceOnDelivery(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02"
	tests := []struct {
		name      string
		ev        cloudevents.Event
		wantTP    string
		wantState string
		wantBin   bool
	}{
		{"traceparent", cloudevents.Event{"id": "1", "traceparent": tp, "tracestate": "k=v"}, tp, "k=v", true},
		{"traceid only", cloudevents.Event{"id": "1", "traceid": tp}, tp, "", true},
		{"none", cloudevents.Event{"id": "1"}, zeroTraceParent, "", false},
		{"empty", cloudevents.Event{"id": "1", "traceparent": "", "traceid": ""}, zeroTraceParent, "", false},
		{"all zero", cloudevents.Event{"id": "1", "traceparent": zeroTraceParent}, zeroTraceParent, "", false},
		{"malformed", cloudevents.Event{"id": "1", "traceparent": "not-a-trace"}, zeroTraceParent, "", false},
	}

	httpApp := &fakeApp{status: 200}
	hch := startApp(t, httpApp)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gapp := &topicApp{got: make(chan metadata.MD, 1)}
	srv := grpc.NewServer()
	runtimev1.RegisterAppCallbackServer(srv, gapp)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	gd := GRPCDeliverer{App: runtimev1.NewAppCallbackClient(conn)}

	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Message{Event: tt.ev, Data: []byte(`{}`), Topic: "t", PubsubName: "ps", Path: "/t", Metadata: map[string]string{"traceparent": "ignored"}}
			if st, err := (HTTPDeliverer{App: hch}).Deliver(context.Background(), m); st != Success {
				t.Fatalf("HTTP delivery = %v, %v", st, err)
			}
			httpApp.mu.Lock()
			r := httpApp.got[i]
			httpApp.mu.Unlock()
			if got := r.Header.Get("traceparent"); got != tt.wantTP {
				t.Errorf("HTTP traceparent = %q, want %q", got, tt.wantTP)
			}
			if got := r.Header.Get("tracestate"); got != tt.wantState {
				t.Errorf("HTTP tracestate = %q, want %q", got, tt.wantState)
			}

			if st, err := gd.Deliver(context.Background(), m); st != Success {
				t.Fatalf("gRPC delivery = %v, %v", st, err)
			}
			md := <-gapp.got
			if got := md.Get("traceparent"); len(got) != 1 || got[0] != tt.wantTP {
				t.Errorf("gRPC traceparent = %q, want %q", got, tt.wantTP)
			}
			bin := md.Get("grpc-trace-bin")
			if tt.wantBin {
				want, _ := invoke.TraceBinFromParent(tt.wantTP)
				if len(bin) != 1 || bin[0] != string(want) {
					t.Errorf("grpc-trace-bin = %x, want %x", bin, want)
				}
			} else if len(bin) != 0 {
				t.Errorf("grpc-trace-bin = %x, want none", bin)
			}
		})
	}
}
