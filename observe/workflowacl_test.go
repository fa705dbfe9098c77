package observe

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestWorkflowACLMetrics: decisions are counted under daprd's names and
// labels; a nil Metrics takes them silently.
func TestWorkflowACLMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, MetricsOptions{AppID: "target", Namespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	m.WorkflowACL(true, "schedule", "caller", "workflow")
	m.WorkflowACL(true, "schedule", "caller", "workflow")
	m.WorkflowACL(false, "terminate", "other", "activity")
	var nilM *Metrics
	nilM.WorkflowACL(true, "schedule", "caller", "workflow")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "dapr_runtime_workflow_acl_") {
			continue
		}
		for _, s := range f.GetMetric() {
			key := f.GetName()
			for _, l := range s.GetLabel() {
				key += "|" + l.GetName() + ":" + l.GetValue()
			}
			got[key] = s.GetCounter().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"dapr_runtime_workflow_acl_action_allowed_total|app_id:target|operation:schedule|src_app_id:caller|type:workflow": 2,
		"dapr_runtime_workflow_acl_action_denied_total|app_id:target|operation:terminate|src_app_id:other|type:activity":  1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v (all: %v)", key, got[key], want, got)
		}
	}
}
