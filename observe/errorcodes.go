package observe

import "github.com/prometheus/client_golang/prometheus"

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
