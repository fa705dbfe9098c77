package observe

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"
)

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkHTTPMiddleware measures what observe adds to one HTTP API
// request: a no-op handler, bare and wrapped.
func BenchmarkHTTPMiddleware(b *testing.B) {
	noop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	m, _ := newTestMetrics(b, MetricsOptions{})
	mp, _ := newTestMetrics(b, MetricsOptions{HTTP: HTTPMetricsOptions{PathMatching: []string{"/v1.0/invoke/{id}/method/{method...}"}}})
	cases := []struct {
		name string
		h    http.Handler
	}{
		{"bare", noop},
		{"metrics", m.HTTPMiddleware(noop)},
		{"metrics+pathMatching", mp.HTTPMiddleware(noop)},
		{"hooks_metrics_tracing_off", NewHooks(m, nil, nil).HTTPMiddleware(noop)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodPost, "/v1.0/invoke/b/method/orders", nil)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				c.h.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkGRPCInterceptors measures the unary server interceptors on a
// no-op CallLocal handler (metrics + invocation metrics, as installed on
// the internal server).
func BenchmarkGRPCInterceptors(b *testing.B) {
	m, _ := newTestMetrics(b, MetricsOptions{})
	info := &grpc.UnaryServerInfo{FullMethod: callLocalMethod}
	handler := func(ctx context.Context, req any) (any, error) { return nil, nil }
	chain := func(ctx context.Context, req any) (any, error) {
		return m.grpc.unary(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			return m.inv.serverUnary(ctx, req, info, handler)
		})
	}
	req := newInvokeRequest()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = chain(context.Background(), req)
	}
}
