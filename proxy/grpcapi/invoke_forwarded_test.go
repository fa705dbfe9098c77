package grpcapi

import (
	"context"
	"slices"
	"testing"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/metadata"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/headers"
)

// TestInvokeServiceForwardedMetadata: daprd adds the forwarding entries in
// its messaging layer, so InvokeService gets them like the HTTP API's
// invocations: after the caller's, and not when the app calls itself.
func TestInvokeServiceForwardedMetadata(t *testing.T) {
	fwd := headers.NewForwarded("192.0.2.10", "sidecar-host")
	ours := headers.Metadata{}
	fwd.AddTo(ours)
	for _, tt := range []struct {
		name, target string
		self         bool
	}{
		{"other app", "other", false},
		{"self invocation adds nothing", "me", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inv := &fakeInvoker{respond: func() (*invoke.Response, error) { return resp(200, nil, "", "", ""), nil }}
			client := start(t, Config{AppID: "me", Forwarded: fwd, Invoker: inv})
			ctx := metadata.AppendToOutgoingContext(context.Background(), "x-forwarded-for", "203.0.113.9")
			if _, err := client.InvokeService(ctx, &runtimev1.InvokeServiceRequest{
				Id: tt.target, Message: &commonv1.InvokeRequest{Method: "m"},
			}); err != nil {
				t.Fatal(err)
			}
			md := inv.last().req.Message.GetMetadata()
			for _, k := range []string{"x-forwarded-for", "x-forwarded-host", "forwarded"} {
				var want []string
				if k == "x-forwarded-for" {
					want = []string{"203.0.113.9"}
				}
				if !tt.self {
					want = append(want, ours[k].GetValues()...)
				}
				if got := md[k].GetValues(); !slices.Equal(got, want) {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}
