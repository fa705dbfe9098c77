package observe

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemrun/tandem/resiliency"
)

// Resiliency policy kinds, Dapr's "policy" label values.
const (
	policyRetry   = "retry"
	policyTimeout = "timeout"
	policyBreaker = "circuitbreaker"
)

var breakerStates = []resiliency.BreakerState{resiliency.StateClosed, resiliency.StateHalfOpen, resiliency.StateOpen}

type resiliencyMetrics struct {
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
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dapr_resiliency_activations_total", Help: "Times a resiliency policy activated: a retry, an attempt timeout, or a circuit breaker changing state (status is the new state).",
		}, []string{"app_id", "policy", "target", "status"}),
		cbState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dapr_resiliency_cb_state", Help: "Circuit breaker state per target: 1 for the current state, 0 otherwise.",
		}, []string{"app_id", "name", "target", "status"}),
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
	return []prometheus.Collector{r.activations, r.cbState, r.exhausted, r.ejections, r.ejected}
}

// ResiliencyHooks returns resiliency.Hooks that record retries, attempt
// timeouts, breaker transitions and budget refusals. Targets are app IDs
// and component names, bounded by what is configured and called.
func (m *Metrics) ResiliencyHooks() resiliency.Hooks {
	if m == nil {
		return resiliency.Hooks{}
	}
	r := m.res
	return resiliency.Hooks{
		Retry: func(target string, _ int, _ error) {
			r.activations.WithLabelValues(r.appID, policyRetry, target, "").Inc()
		},
		Timeout: func(target string) {
			r.activations.WithLabelValues(r.appID, policyTimeout, target, "").Inc()
		},
		BreakerStateChange: func(target, policy string, _, to resiliency.BreakerState) {
			r.activations.WithLabelValues(r.appID, policyBreaker, target, string(to)).Inc()
			for _, s := range breakerStates {
				v := 0.0
				if s == to {
					v = 1
				}
				r.cbState.WithLabelValues(r.appID, policy, target, string(s)).Set(v)
			}
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
