package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/identity"
)

// With an identity, the APIs' requests carry its SVID sources to the
// components they use.
func TestSVIDContext(t *testing.T) {
	id := &identity.Source{}
	seen := func(ctx context.Context) bool {
		_, x := components.X509SVIDFrom(ctx)
		_, j := components.JWTSVIDFrom(ctx)
		return x && j
	}
	var got bool
	h := svidHTTP(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = seen(r.Context()) }), id)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1.0/state/s/k", nil))
	if !got {
		t.Error("HTTP request without the SVID sources")
	}
	got = false
	_, _ = svidUnary(id)(context.Background(), nil, &grpc.UnaryServerInfo{}, func(ctx context.Context, _ any) (any, error) {
		got = seen(ctx)
		return nil, nil
	})
	if !got {
		t.Error("unary call without the SVID sources")
	}
	got = false
	_ = svidStreamed(id)(nil, bareStream{}, &grpc.StreamServerInfo{}, func(_ any, ss grpc.ServerStream) error {
		got = seen(ss.Context())
		return nil
	})
	if !got {
		t.Error("stream without the SVID sources")
	}
}

type bareStream struct{ grpc.ServerStream }

func (bareStream) Context() context.Context { return context.Background() }
