package observe

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// workflowAttestMetrics count the attestations of workflow results (with
// WorkflowHistorySigning), as daprd's dapr_runtime_workflow_attestation_*
// metrics.
type workflowAttestMetrics struct {
	generated, verified, certCache *prometheus.CounterVec
	latency                        *prometheus.HistogramVec
}

func newWorkflowAttestMetrics(buckets []float64) *workflowAttestMetrics {
	return &workflowAttestMetrics{
		generated: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dapr_runtime_workflow_attestation_generated_count",
			Help: "The number of completion attestations produced by this host."}, []string{"app_id", "namespace", "attestation_kind", "status"}),
		verified: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dapr_runtime_workflow_attestation_verified_count",
			Help: "The number of completion attestations verified at inbox ingestion."}, []string{"app_id", "namespace", "attestation_kind", "attestation_result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dapr_runtime_workflow_attestation_verify_latency",
			Help: "The time taken to verify a completion attestation at inbox ingestion.", Buckets: buckets},
			[]string{"app_id", "namespace", "attestation_kind", "attestation_result"}),
		certCache: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dapr_runtime_workflow_attestation_cert_cache_count",
			Help: "The number of signer certificate chain-of-trust cache lookups."}, []string{"app_id", "namespace", "cert_cache_outcome"}),
	}
}

func (w *workflowAttestMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{w.generated, w.verified, w.latency, w.certCache}
}

// WorkflowAttestationGenerated records an attestation this host made (or
// failed to make) for a result of kind activity or child.
func (m *Metrics) WorkflowAttestationGenerated(kind string, ok bool) {
	if m == nil || m.wfattest == nil {
		return
	}
	status := "success"
	if !ok {
		status = "failed"
	}
	m.wfattest.generated.WithLabelValues(m.appID, m.namespace, kind, status).Inc()
}

// WorkflowAttestationVerified records the verification of a result's
// attestation (or its absence) and the time it took.
func (m *Metrics) WorkflowAttestationVerified(kind string, ok bool, took time.Duration) {
	if m == nil || m.wfattest == nil {
		return
	}
	result := "ok"
	if !ok {
		result = "reject"
	}
	m.wfattest.verified.WithLabelValues(m.appID, m.namespace, kind, result).Inc()
	if took > 0 {
		m.wfattest.latency.WithLabelValues(m.appID, m.namespace, kind, result).Observe(float64(took.Milliseconds()))
	}
}

// WorkflowAttestationCertCache records a lookup of a signer's chain in
// the cache of chains already verified against the trust anchors.
func (m *Metrics) WorkflowAttestationCertCache(hit bool) {
	if m == nil || m.wfattest == nil {
		return
	}
	outcome := "miss"
	if hit {
		outcome = "hit"
	}
	m.wfattest.certCache.WithLabelValues(m.appID, m.namespace, outcome).Inc()
}
