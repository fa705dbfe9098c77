package observe

import "github.com/prometheus/client_golang/prometheus"

// workflowACLMetrics count the workflow access policy's decisions on other
// apps' calls, as daprd's dapr_runtime_workflow_acl_action_* metrics.
type workflowACLMetrics struct {
	allowed, denied *prometheus.CounterVec
}

func newWorkflowACLMetrics() *workflowACLMetrics {
	labels := []string{"app_id", "operation", "src_app_id", "type"}
	return &workflowACLMetrics{
		allowed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dapr_runtime_workflow_acl_action_allowed_total",
			Help: "The number of workflow and activity operations of other apps a workflow access policy allowed."}, labels),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dapr_runtime_workflow_acl_action_denied_total",
			Help: "The number of workflow and activity operations of other apps a workflow access policy denied."}, labels),
	}
}

// WorkflowACL records one decision of the workflow access policy on a call
// from app src: operation (schedule, terminate, raise, ...) on a workflow
// or an activity (kind).
func (m *Metrics) WorkflowACL(allowed bool, operation, src, kind string) {
	if m == nil || m.wfacl == nil {
		return
	}
	c := m.wfacl.denied
	if allowed {
		c = m.wfacl.allowed
	}
	c.WithLabelValues(m.appID, operation, src, kind).Inc()
}
