package observe

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// payloadRatioBuckets are daprd's buckets of the payload size ratios.
var payloadRatioBuckets = []float64{0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0, 1.5, 2.0}

// workflowMetrics are daprd's dapr_runtime_workflow_* metrics of the
// workflow engine's work (workflow.RuntimeMetrics); latencies in
// milliseconds.
type workflowMetrics struct {
	opCount, execCount, actOpCount, actExecCount                       *prometheus.CounterVec
	opLatency, execLatency, schedLatency, actOpLatency, actExecLatency *prometheus.HistogramVec
	payloadRatio, actPayloadRatio                                      *prometheus.HistogramVec
}

func newWorkflowMetrics(buckets []float64) *workflowMetrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append([]string{"app_id", "namespace"}, labels...))
	}
	histogram := func(name, help string, b []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: b}, append([]string{"app_id", "namespace"}, labels...))
	}
	return &workflowMetrics{
		opCount: counter("dapr_runtime_workflow_operation_count",
			"The number of successful/failed workflow operation requests.", "operation", "status"),
		opLatency: histogram("dapr_runtime_workflow_operation_latency",
			"The latencies of responses for workflow operation requests.", buckets, "operation", "status"),
		execCount: counter("dapr_runtime_workflow_execution_count",
			"The number of successful/failed/terminated/recoverable workflow executions.", "workflow_name", "status"),
		execLatency: histogram("dapr_runtime_workflow_execution_latency",
			"The total time taken to run workflow to completion.", buckets, "workflow_name", "status"),
		schedLatency: histogram("dapr_runtime_workflow_scheduling_latency",
			"Interval between workflow execution request and workflow execution.", buckets, "workflow_name"),
		actOpCount: counter("dapr_runtime_workflow_activity_operation_count",
			"The number of successful/failed activity operation requests.", "activity_name", "status"),
		actOpLatency: histogram("dapr_runtime_workflow_activity_operation_latency",
			"The latencies of responses for activity operation requests.", buckets, "activity_name", "status"),
		actExecCount: counter("dapr_runtime_workflow_activity_execution_count",
			"The number of successful/failed/recoverable activity executions.", "activity_name", "status"),
		actExecLatency: histogram("dapr_runtime_workflow_activity_execution_latency",
			"The total time taken to run an activity to completion.", buckets, "activity_name", "status"),
		payloadRatio: histogram("dapr_runtime_workflow_payload_size_ratio",
			"Workflow payload size as a fraction of the configured gRPC max body size; values >=0.95 trip the stall, values >1 exceed the limit.",
			payloadRatioBuckets, "workflow_name"),
		actPayloadRatio: histogram("dapr_runtime_workflow_activity_payload_size_ratio",
			"Activity payload size as a fraction of the configured gRPC max body size; values >=0.95 trip the stall, values >1 exceed the limit.",
			payloadRatioBuckets, "workflow_name", "activity_name"),
	}
}

func (w *workflowMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{w.opCount, w.opLatency, w.execCount, w.execLatency, w.schedLatency,
		w.actOpCount, w.actOpLatency, w.actExecCount, w.actExecLatency, w.payloadRatio, w.actPayloadRatio}
}

// record counts one event of name (an operation, workflow or activity)
// with status and, when took is known, observes its latency.
func (m *Metrics) record(count *prometheus.CounterVec, latency *prometheus.HistogramVec, name, status string, took time.Duration) {
	count.WithLabelValues(m.appID, m.namespace, name, status).Inc()
	if took > 0 {
		latency.WithLabelValues(m.appID, m.namespace, name, status).Observe(ms(took))
	}
}

// ms is d in milliseconds, as daprd's latencies.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// WorkflowOperation records an API operation on a workflow instance
// (create_workflow, add_event, purge_workflow) and its latency.
func (m *Metrics) WorkflowOperation(operation string, ok bool, took time.Duration) {
	if m == nil || m.wf == nil {
		return
	}
	status := "success"
	if !ok {
		status = "failed"
	}
	m.record(m.wf.opCount, m.wf.opLatency, operation, status, took)
}

// WorkflowExecution records an instance that ended with status (success,
// failed, terminated) after took.
func (m *Metrics) WorkflowExecution(workflow, status string, took time.Duration) {
	if m == nil || m.wf == nil {
		return
	}
	m.record(m.wf.execCount, m.wf.execLatency, workflow, status, took)
}

// WorkflowScheduling records how long an instance waited for its first
// run.
func (m *Metrics) WorkflowScheduling(workflow string, took time.Duration) {
	if m == nil || m.wf == nil || took <= 0 {
		return
	}
	m.wf.schedLatency.WithLabelValues(m.appID, m.namespace, workflow).Observe(ms(took))
}

// ActivityOperation records an activity handed to a worker.
func (m *Metrics) ActivityOperation(activity, status string, took time.Duration) {
	if m == nil || m.wf == nil {
		return
	}
	m.record(m.wf.actOpCount, m.wf.actOpLatency, activity, status, took)
}

// ActivityExecution records an activity's result (success or failed).
func (m *Metrics) ActivityExecution(activity, status string, took time.Duration) {
	if m == nil || m.wf == nil {
		return
	}
	m.record(m.wf.actExecCount, m.wf.actExecLatency, activity, status, took)
}

// WorkflowPayloadRatio records a workflow work item's size as a share of
// the max message size.
func (m *Metrics) WorkflowPayloadRatio(workflow string, ratio float64) {
	if m == nil || m.wf == nil {
		return
	}
	m.wf.payloadRatio.WithLabelValues(m.appID, m.namespace, workflow).Observe(ratio)
}

// ActivityPayloadRatio records an activity request's size as a share of
// the max message size.
func (m *Metrics) ActivityPayloadRatio(workflow, activity string, ratio float64) {
	if m == nil || m.wf == nil {
		return
	}
	m.wf.actPayloadRatio.WithLabelValues(m.appID, m.namespace, workflow, activity).Observe(ratio)
}
