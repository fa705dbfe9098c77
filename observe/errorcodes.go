package observe

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// errorCodeMetrics is Dapr's dapr_error_code_total: one count per API error
// written to a caller, by error code and category. It exists only when the
// Configuration sets metrics.recordErrorCodes, as in Dapr.
type errorCodeMetrics struct {
	appID string
	total *prometheus.CounterVec
}

func newErrorCodeMetrics(appID string) *errorCodeMetrics {
	return &errorCodeMetrics{
		appID: appID,
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_error_code_total",
			Help: "Total number of times an error with a specific error code was encountered.",
		}, []string{"app_id", "category", "error_code"}),
	}
}

func (e *errorCodeMetrics) record(code, category string) {
	if e == nil || code == "" || category == "" {
		return
	}
	e.total.WithLabelValues(e.appID, category, code).Inc()
}

// RecordErrorCode counts one API error (code, category) in
// dapr_error_code_total; it does nothing unless recordErrorCodes is on.
// The HTTP API's errors are counted by HTTPMiddleware, through the
// response writer (see apierr.ErrorRecorder).
func (m *Metrics) RecordErrorCode(code, category string) {
	if m == nil {
		return
	}
	m.errCodes.record(code, category)
}

// codedError is an API error that knows its Dapr error code and category
// (proxy/apierr's *Error, also through the status error its gRPC API
// returns).
type codedError interface {
	error
	ErrorCode() string
	ErrorCategory() string
}

// recordErr counts err in dapr_error_code_total when it carries a code, as
// daprd's gRPC interceptors count the APIErrors its handlers return; other
// errors (plain status errors) are not counted, as in daprd.
func (e *errorCodeMetrics) recordErr(err error) {
	var c codedError
	if err != nil && errors.As(err, &c) {
		e.record(c.ErrorCode(), c.ErrorCategory())
	}
}

func (e *errorCodeMetrics) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	e.recordErr(err)
	return resp, err
}

func (e *errorCodeMetrics) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	e.recordErr(err)
	return err
}

// errorCodeServerOptions count the errors the public gRPC API returns in
// dapr_error_code_total; none unless recordErrorCodes is on.
func (m *Metrics) errorCodeServerOptions() []grpc.ServerOption {
	if m == nil || m.errCodes == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.errCodes.unary),
		grpc.ChainStreamInterceptor(m.errCodes.stream),
	}
}
