package observe

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestWorkflowAttestationMetrics: attestations are counted under daprd's
// names and labels; a nil Metrics takes them silently.
func TestWorkflowAttestationMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, MetricsOptions{AppID: "app"})
	if err != nil {
		t.Fatal(err)
	}
	m.WorkflowAttestationGenerated("activity", true)
	m.WorkflowAttestationGenerated("activity", true)
	m.WorkflowAttestationVerified("child", false, 3*time.Millisecond)
	m.WorkflowAttestationCertCache(true)
	m.WorkflowAttestationCertCache(false)
	var nilM *Metrics
	nilM.WorkflowAttestationGenerated("activity", true)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "dapr_runtime_workflow_attestation_") {
			continue
		}
		for _, s := range f.GetMetric() {
			key := f.GetName()
			for _, l := range s.GetLabel() {
				key += "|" + l.GetName() + ":" + l.GetValue()
			}
			got[key] = s.GetCounter().GetValue() + float64(s.GetHistogram().GetSampleCount())
		}
	}
	for key, want := range map[string]float64{
		"dapr_runtime_workflow_attestation_generated_count|app_id:app|attestation_kind:activity|namespace:|status:success":        2,
		"dapr_runtime_workflow_attestation_verified_count|app_id:app|attestation_kind:child|attestation_result:reject|namespace:": 1,
		"dapr_runtime_workflow_attestation_verify_latency|app_id:app|attestation_kind:child|attestation_result:reject|namespace:": 1,
		"dapr_runtime_workflow_attestation_cert_cache_count|app_id:app|cert_cache_outcome:hit|namespace:":                         1,
		"dapr_runtime_workflow_attestation_cert_cache_count|app_id:app|cert_cache_outcome:miss|namespace:":                        1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v (all: %v)", key, got[key], want, got)
		}
	}
}
