package injector

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the webhook's counters, with the names and labels of Dapr's
// injector.
type Metrics struct {
	requests  prometheus.Counter
	succeeded *prometheus.CounterVec
	failed    *prometheus.CounterVec
}

// NewMetrics registers the counters in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dapr_injector_sidecar_injection_requests_total",
			Help: "The total number of sidecar injection requests.",
		}),
		succeeded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_injector_sidecar_injection_succeeded_total",
			Help: "The total number of successful sidecar injections.",
		}, []string{"app_id"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_injector_sidecar_injection_failed_total",
			Help: "The total number of failed sidecar injections.",
		}, []string{"app_id", "reason"}),
	}
	reg.MustRegister(m.requests, m.succeeded, m.failed)
	return m
}

func (m *Metrics) request() {
	if m != nil {
		m.requests.Inc()
	}
}

func (m *Metrics) injected(appID string) {
	if m != nil {
		m.succeeded.WithLabelValues(appID).Inc()
	}
}

// Reasons of failed injections, as Dapr's injector labels them.
const (
	reasonPodPatch = "pod_patch" // not a pod, or a caller not allowed
	reasonPatch    = "patch"     // the pod's annotations are refused
)

func (m *Metrics) failedFor(appID, reason string) {
	if m != nil {
		m.failed.WithLabelValues(appID, reason).Inc()
	}
}
