package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/internal/loadreport"
	"github.com/tandemrun/tandem/scaler/externalscaler"
)

// Options configure a Server.
type Options struct {
	// Reports returns the load reports of an app's sidecars, usually
	// (*Reader).Reports.
	Reports func(ctx context.Context, appID, namespace string) ([]loadreport.Report, error)
	// Broker, if set, asks the broker itself for the backlog of a query
	// naming pubsubName and topic when no sidecar of the app reports it
	// (the app is scaled to zero): ok false means it cannot tell.
	Broker func(ctx context.Context, q Query) (value float64, ok bool, err error)
	// Poll is how often StreamIsActive looks again (default 250 ms).
	Poll time.Duration
	// ServerOptions are given to the gRPC server Run makes: its transport
	// credentials (TLS) above all.
	ServerOptions []grpc.ServerOption
	Log           *slog.Logger
}

// Server is KEDA's ExternalScaler service over the sidecars' reports.
type Server struct {
	externalscaler.UnimplementedExternalScalerServer
	o Options
}

var _ externalscaler.ExternalScalerServer = (*Server)(nil)

// New returns a Server; o.Reports is required.
func New(o Options) (*Server, error) {
	if o.Reports == nil {
		return nil, errors.New("scaler: a source of load reports is required")
	}
	if o.Poll <= 0 {
		o.Poll = 250 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{o: o}, nil
}

// Register adds the ExternalScaler service to g.
func (s *Server) Register(g *grpc.Server) { externalscaler.RegisterExternalScalerServer(g, s) }

// Run serves the ExternalScaler service and gRPC health on lis until ctx
// ends.
func (s *Server) Run(ctx context.Context, lis net.Listener) error {
	g := grpc.NewServer(s.o.ServerOptions...)
	s.Register(g)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()
	s.o.Log.Info("KEDA external scaler serving", "address", lis.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		hs.Shutdown()
		g.GracefulStop()
		<-errc
		return nil
	}
}

// measure parses ref's metadata and computes its value.
func (s *Server) measure(ctx context.Context, ref *externalscaler.ScaledObjectRef) (Query, float64, error) {
	q, err := ParseQuery(ref.GetScalerMetadata(), ref.GetNamespace())
	if err != nil {
		return q, 0, status.Errorf(codes.InvalidArgument, "ScaledObject %s/%s: %v", ref.GetNamespace(), ref.GetName(), err)
	}
	reports, err := s.o.Reports(ctx, q.AppID, q.Namespace)
	if len(reports) == 0 && q.Metric == MetricPending && s.o.Broker != nil {
		// No sidecar runs (or answers): the broker itself can tell.
		v, ok, berr := s.o.Broker(ctx, q)
		if berr == nil && ok {
			return q, v, nil
		}
		if berr != nil {
			err = errors.Join(err, fmt.Errorf("broker: %w", berr))
		}
	}
	if err != nil {
		if len(reports) == 0 {
			return q, 0, status.Errorf(codes.Unavailable, "ScaledObject %s/%s: no sidecar of app %q answered: %v", ref.GetNamespace(), ref.GetName(), q.AppID, err)
		}
		s.o.Log.Warn("some sidecars did not answer; using the others", "app_id", q.AppID, "error", err)
	}
	return q, q.Value(reports), nil
}

// IsActive: the app has more than activationValue to do.
func (s *Server) IsActive(ctx context.Context, ref *externalscaler.ScaledObjectRef) (*externalscaler.IsActiveResponse, error) {
	q, v, err := s.measure(ctx, ref)
	if err != nil {
		return nil, err
	}
	return &externalscaler.IsActiveResponse{Result: v > q.Activation}, nil
}

// StreamIsActive sends IsActive's answer now and each time it changes
// (looked at every Poll), until KEDA hangs up. A failed look is logged
// and retried; it changes nothing.
func (s *Server) StreamIsActive(ref *externalscaler.ScaledObjectRef, stream externalscaler.ExternalScaler_StreamIsActiveServer) error {
	ctx := stream.Context()
	if _, err := ParseQuery(ref.GetScalerMetadata(), ref.GetNamespace()); err != nil {
		return status.Errorf(codes.InvalidArgument, "ScaledObject %s/%s: %v", ref.GetNamespace(), ref.GetName(), err)
	}
	t := time.NewTicker(s.o.Poll)
	defer t.Stop()
	sent, last := false, false
	for {
		q, v, err := s.measure(ctx, ref)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.o.Log.Warn("cannot tell whether the app is active; retrying", "scaled_object", ref.GetNamespace()+"/"+ref.GetName(), "error", err)
		} else if active := v > q.Activation; !sent || active != last {
			if err := stream.Send(&externalscaler.IsActiveResponse{Result: active}); err != nil {
				return err
			}
			sent, last = true, active
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// GetMetricSpec gives the metric's name and its target per replica.
func (s *Server) GetMetricSpec(_ context.Context, ref *externalscaler.ScaledObjectRef) (*externalscaler.GetMetricSpecResponse, error) {
	q, err := ParseQuery(ref.GetScalerMetadata(), ref.GetNamespace())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "ScaledObject %s/%s: %v", ref.GetNamespace(), ref.GetName(), err)
	}
	return &externalscaler.GetMetricSpecResponse{MetricSpecs: []*externalscaler.MetricSpec{{
		MetricName: q.MetricName(), TargetSize: int64(math.Ceil(q.Target)), TargetSizeFloat: q.Target,
	}}}, nil
}

// GetMetrics gives the metric's current value for the whole app.
func (s *Server) GetMetrics(ctx context.Context, req *externalscaler.GetMetricsRequest) (*externalscaler.GetMetricsResponse, error) {
	q, v, err := s.measure(ctx, req.GetScaledObjectRef())
	if err != nil {
		return nil, err
	}
	name := req.GetMetricName()
	if name == "" {
		name = q.MetricName()
	}
	return &externalscaler.GetMetricsResponse{MetricValues: []*externalscaler.MetricValue{{
		MetricName: name, MetricValue: int64(math.Round(v)), MetricValueFloat: v,
	}}}, nil
}
