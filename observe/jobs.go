package observe

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// jobTriggerOp is daprd's operation label of job triggers.
const jobTriggerOp = "job_trigger_op"

// jobMetrics count the scheduler's job triggers delivered to the app, as
// daprd's dapr_component_job_* metrics.
type jobMetrics struct {
	success, failure prometheus.Counter
	latency          *prometheus.HistogramVec
	appID, namespace string
}

func newJobMetrics(appID, namespace string, buckets []float64) *jobMetrics {
	labels := prometheus.Labels{"app_id": appID, "namespace": namespace, "operation": jobTriggerOp}
	return &jobMetrics{
		success: prometheus.NewCounter(prometheus.CounterOpts{Name: "dapr_component_job_success_count",
			Help: "The number of successful job triggers.", ConstLabels: labels}),
		failure: prometheus.NewCounter(prometheus.CounterOpts{Name: "dapr_component_job_failure_count",
			Help: "The number of failed job triggers.", ConstLabels: labels}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dapr_component_job_latencies",
			Help:    "The latency of the response from the app that processed the triggered job, in milliseconds.",
			Buckets: buckets}, []string{"app_id", "namespace", "operation", "success"}),
		appID: appID, namespace: namespace,
	}
}

func (j *jobMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{j.success, j.failure, j.latency}
}

// JobTriggered records one job trigger delivered to the app: success is
// the app's acceptance, d how long it took.
func (m *Metrics) JobTriggered(success bool, d time.Duration) {
	if m == nil || m.jobs == nil {
		return
	}
	if success {
		m.jobs.success.Inc()
	} else {
		m.jobs.failure.Inc()
	}
	if d > 0 {
		m.jobs.latency.WithLabelValues(m.jobs.appID, m.jobs.namespace, jobTriggerOp, strconv.FormatBool(success)).
			Observe(float64(d) / float64(time.Millisecond))
	}
}
