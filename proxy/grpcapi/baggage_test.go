package grpcapi

import (
	"context"
	"slices"
	"strings"
	"testing"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/headers"
)

// Baggage goes to the app and back to the caller in the response header;
// malformed baggage is refused with InvalidArgument, as daprd does with
// tracing on or off.
func TestBaggage(t *testing.T) {
	inv := &fakeInvoker{respond: func() (*invoke.Response, error) { return resp(200, nil, "text/plain", "", "ok"), nil }}
	client := start(t, Config{Invoker: inv})
	req := &runtimev1.InvokeServiceRequest{Id: "app", Message: &commonv1.InvokeRequest{Method: "m", HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_GET}}}

	var hdr metadata.MD
	ctx := metadata.AppendToOutgoingContext(context.Background(), "baggage", "key1=value1,key2=value2")
	if _, err := client.InvokeService(ctx, req, grpc.Header(&hdr)); err != nil {
		t.Fatal(err)
	}
	// Echoed as daprd does, re-encoded by otel's baggage.String(), whose
	// members come in no fixed order.
	echoed := strings.Split(strings.Join(hdr.Get("baggage"), ","), ",")
	slices.Sort(echoed)
	if got := strings.Join(echoed, ","); got != "key1=value1,key2=value2" {
		t.Errorf("response baggage = %q", got)
	}
	if got := headers.First(inv.last().req.Message.GetMetadata(), "baggage"); got != "key1=value1,key2=value2" {
		t.Errorf("app got baggage %q", got)
	}

	hdr = nil
	if _, err := client.InvokeService(context.Background(), req, grpc.Header(&hdr)); err != nil {
		t.Fatal(err)
	}
	if len(hdr.Get("baggage")) != 0 {
		t.Errorf("baggage without any sent: %v", hdr.Get("baggage"))
	}

	n := len(inv.calls)
	ctx = metadata.AppendToOutgoingContext(context.Background(), "baggage", "invalid-baggage")
	_, err := client.InvokeService(ctx, req)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "invalid baggage header") {
		t.Errorf("malformed baggage: %v", err)
	}
	if len(inv.calls) != n {
		t.Error("a call with malformed baggage reached the app")
	}
}
