package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestActorsCallbackStream: an app with no port hosts an actor type over
// Dapr 1.18's callback stream (SubscribeActorEventsAlpha1) on our
// placement; another sidecar's HTTP API calls it, the call reaches the app
// on the stream with its data and the answer comes back; when the stream
// ends the type is no longer hosted.
func TestActorsCallbackStream(t *testing.T) {
	place := placementAddrs(startTandemPlacement(t, 1))
	host := actorSidecar(t, "streamhost", 0, place, "")
	caller := actorSidecar(t, "streamcaller", 0, place, "")
	conn, err := grpc.NewClient(host.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := runtimev1.NewDaprClient(conn).SubscribeActorEventsAlpha1(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&runtimev1.SubscribeActorEventsRequestAlpha1{RequestType: &runtimev1.SubscribeActorEventsRequestAlpha1_InitialRequest{
		InitialRequest: &runtimev1.SubscribeActorEventsRequestInitialAlpha1{Entities: []string{"streamed"}},
	}}); err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.GetInitialResponse() == nil {
		t.Fatalf("initial response: %v %v", m, err)
	}
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			if r := m.GetInvokeRequest(); r != nil {
				_ = stream.Send(&runtimev1.SubscribeActorEventsRequestAlpha1{RequestType: &runtimev1.SubscribeActorEventsRequestAlpha1_InvokeResponse{
					InvokeResponse: &runtimev1.SubscribeActorEventsRequestInvokeResponseAlpha1{
						Id: r.GetId(), Data: fmt.Appendf(nil, "%s/%s/%s:%s", r.GetActorType(), r.GetActorId(), r.GetMethod(), r.GetData()),
					},
				}})
			}
		}
	}()
	for _, s := range []*framework.Sidecar{host, caller} {
		waitActorsReady(t, s)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := httpDo(t, http.MethodPost, caller.HTTPURL()+"/v1.0/actors/streamed/a1/method/ping", "hello")
		if code == http.StatusOK {
			if body != "streamed/a1/ping:hello" {
				t.Fatalf("answer %q", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("call through the stream: %d %s\n%s", code, body, host.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, md := httpDo(t, http.MethodGet, host.HTTPURL()+"/v1.0/metadata", "")
	if !strings.Contains(md, `"type":"streamed"`) {
		t.Fatalf("metadata does not list the streamed type: %s", md)
	}
	cancel()
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, md = httpDo(t, http.MethodGet, host.HTTPURL()+"/v1.0/metadata", "")
		if !strings.Contains(md, `"type":"streamed"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the type is still hosted after the stream ended: %s", md)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
