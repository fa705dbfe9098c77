package observe

import (
	"testing"
	"time"
)

// The workflow engine's metrics have daprd's names and labels (the keys
// Dapr's metrics/workflow cases read); latencies of 0 are not observed.
func TestWorkflowRuntimeMetrics(t *testing.T) {
	m, reg := newTestMetrics(t, MetricsOptions{AppID: "myapp"})
	m.WorkflowOperation("create_workflow", true, time.Millisecond)
	m.WorkflowExecution("wf", "terminated", 0)
	m.WorkflowScheduling("wf", 2*time.Millisecond)
	m.ActivityOperation("act", "success", time.Millisecond)
	m.ActivityExecution("act", "failed", time.Millisecond)
	m.WorkflowPayloadRatio("wf", 0.5)
	m.ActivityPayloadRatio("wf", "act", 0.25)
	for name, want := range map[string]map[string]float64{
		"dapr_runtime_workflow_operation_count":             {"app_id=myapp,namespace=,operation=create_workflow,status=success": 1},
		"dapr_runtime_workflow_execution_count":             {"app_id=myapp,namespace=,status=terminated,workflow_name=wf": 1},
		"dapr_runtime_workflow_execution_latency":           {},
		"dapr_runtime_workflow_activity_operation_count":    {"activity_name=act,app_id=myapp,namespace=,status=success": 1},
		"dapr_runtime_workflow_activity_execution_count":    {"activity_name=act,app_id=myapp,namespace=,status=failed": 1},
		"dapr_runtime_workflow_scheduling_latency":          {"app_id=myapp,namespace=,workflow_name=wf": 1},
		"dapr_runtime_workflow_payload_size_ratio":          {"app_id=myapp,namespace=,workflow_name=wf": 1},
		"dapr_runtime_workflow_activity_payload_size_ratio": {"activity_name=act,app_id=myapp,namespace=,workflow_name=wf": 1},
	} {
		got := series(t, reg, name)
		if len(got) != len(want) {
			t.Errorf("%s = %v, want %v", name, got, want)
			continue
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s{%s} = %v, want %v (all %v)", name, k, got[k], v, got)
			}
		}
	}
	var off *Metrics
	off.WorkflowExecution("wf", "success", time.Second) // nil records nothing
}
