package observe

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemrun/tandem/resiliency"
)

// breakerStates are the values of cb_state's status label; daprd also
// reports "unknown", which gobreaker never is.
var breakerStates = []resiliency.BreakerState{resiliency.StateClosed, resiliency.StateHalfOpen, resiliency.StateOpen}

// resiliencyLabels are daprd's labels of count, activations_total and
// cb_state (pkg/diagnostics/resiliency_monitoring.go).
var resiliencyLabels = []string{"app_id", "name", "policy", "namespace", "flow_direction", "target", "status"}

type resiliencyMetrics struct {
	loaded      *prometheus.CounterVec
	count       *prometheus.CounterVec
	activations *prometheus.CounterVec
	cbState     *prometheus.GaugeVec
	exhausted   *prometheus.CounterVec
	ejections   prometheus.Counter
	ejected     prometheus.Gauge
	appID       string
}

func newResiliencyMetrics(appID string) *resiliencyMetrics {
	return &resiliencyMetrics{
		appID: appID,
		loaded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_resiliency_loaded", Help: "Number of resiliency policies loaded.",
		}, []string{"app_id", "name", "namespace"}),
		count: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_resiliency_count", Help: "Number of times a resiliency policyKey has been applied to a building block.",
		}, resiliencyLabels),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_resiliency_activations_total", Help: "Number of times a resiliency policyKey has been activated in a building block after a failure or after a state change.",
		}, resiliencyLabels),
		cbState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dapr_resiliency_cb_state", Help: "A resiliency policy's current CircuitBreakerState state: 1 for the state the breaker was in when last used, 0 for the others.",
		}, resiliencyLabels),
		exhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_resiliency_retry_budget_exhausted_total", Help: "Retries refused because the retry budget was spent.",
		}, []string{"app_id", "target"}),
		ejections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tandem_resiliency_ejections_total", Help: "Instances taken out of rotation by outlier ejection.", ConstLabels: prometheus.Labels{"app_id": appID},
		}),
		ejected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tandem_resiliency_ejected_instances", Help: "Instances currently ejected.", ConstLabels: prometheus.Labels{"app_id": appID},
		}),
	}
}

func (r *resiliencyMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{r.loaded, r.count, r.activations, r.cbState, r.exhausted, r.ejections, r.ejected}
}

func (r *resiliencyMetrics) labels(s resiliency.Scope, kind resiliency.PolicyKind, status string) []string {
	return []string{r.appID, s.Name, string(kind), s.Namespace, s.Direction, s.Target, status}
}

// ResiliencyHooks returns resiliency.Hooks that record daprd's resiliency
// metrics (documents loaded, policies applied and activated, breaker
// states) and retry budget refusals. Targets are app IDs and component
// names, bounded by what is configured and called.
func (m *Metrics) ResiliencyHooks() resiliency.Hooks {
	if m == nil {
		return resiliency.Hooks{}
	}
	r := m.res
	return resiliency.Hooks{
		Loaded: func(name, namespace string) {
			r.loaded.WithLabelValues(r.appID, name, namespace).Inc()
		},
		Applied: func(s resiliency.Scope, kind resiliency.PolicyKind, status string) {
			r.count.WithLabelValues(r.labels(s, kind, status)...).Inc()
			if kind != resiliency.KindBreaker {
				return
			}
			// As daprd: the gauge shows the state the breaker was in when
			// a call last used it.
			for _, st := range breakerStates {
				v := 0.0
				if string(st) == status {
					v = 1
				}
				r.cbState.WithLabelValues(r.labels(s, kind, string(st))...).Set(v)
			}
		},
		Activated: func(s resiliency.Scope, kind resiliency.PolicyKind, status string) {
			r.activations.WithLabelValues(r.labels(s, kind, status)...).Inc()
		},
		BudgetExhausted: func(target string) {
			r.exhausted.WithLabelValues(r.appID, target).Inc()
		},
	}
}

// EjectorHooks return callbacks for resiliency.EjectorConfig's OnEject and
// OnReturn. Addresses are not labels (instances come and go).
func (m *Metrics) EjectorHooks() (onEject func(addr string, d time.Duration), onReturn func(addr string)) {
	if m == nil {
		return nil, nil
	}
	r := m.res
	return func(string, time.Duration) {
			r.ejections.Inc()
			r.ejected.Inc()
		}, func(string) {
			r.ejected.Dec()
		}
}
