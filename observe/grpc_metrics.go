package observe

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type grpcKey struct {
	method string
	code   codes.Code
}

type grpcChildren struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

type grpcMetrics struct {
	count   *prometheus.CounterVec
	latency *prometheus.HistogramVec
	appID   string
	cache   *boundCache[grpcKey, grpcChildren]
}

func newGRPCMetrics(appID string, buckets []float64, maxSeries int) *grpcMetrics {
	labels := []string{"app_id", "grpc_server_method", "grpc_server_status"}
	g := &grpcMetrics{
		appID: appID,
		count: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_grpc_io_server_completed_rpcs", Help: "Count of gRPC calls completed by the sidecar's gRPC servers, by method and status.",
		}, labels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dapr_grpc_io_server_server_latency", Help: "Time from the first byte of a gRPC request received to the last byte of its response sent, in milliseconds.", Buckets: buckets,
		}, labels),
	}
	g.cache = newBoundCache(maxSeries, g.bind, func() grpcChildren {
		return g.bindLabels(overflowLabel, overflowLabel)
	})
	return g
}

func (g *grpcMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{g.count, g.latency}
}

func (g *grpcMetrics) bind(k grpcKey) grpcChildren { return g.bindLabels(k.method, k.code.String()) }

func (g *grpcMetrics) bindLabels(method, code string) grpcChildren {
	return grpcChildren{
		count:   g.count.WithLabelValues(g.appID, method, code),
		latency: g.latency.WithLabelValues(g.appID, method, code),
	}
}

func (g *grpcMetrics) record(method string, err error, elapsed time.Duration) {
	c := g.cache.get(grpcKey{method: method, code: status.Code(err)})
	c.count.Inc()
	c.latency.Observe(float64(elapsed) / float64(time.Millisecond))
}

func (g *grpcMetrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	g.record(info.FullMethod, err, time.Since(start))
	return resp, err
}

func (g *grpcMetrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	g.record(info.FullMethod, err, time.Since(start))
	return err
}

// GRPCServerOptions record dapr_grpc_io_server_* for every call; use them
// on the public gRPC API and on the internal server. Method names that
// callers make up (gRPC proxying) are capped like every request-derived
// label.
func (m *Metrics) GRPCServerOptions() []grpc.ServerOption {
	if m == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.grpc.unary),
		grpc.ChainStreamInterceptor(m.grpc.stream),
	}
}
