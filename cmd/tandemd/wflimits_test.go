package main

import (
	"testing"

	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/workflow"
)

func TestWorkflowClusterLimits(t *testing.T) {
	i32 := func(n int32) *int32 { return &n }
	str := func(s string) *string { return &s }
	wfType, actType := workflow.ActorTypes("ns", "app")

	limits, runs := workflowClusterLimits("ns", "app", config.Workflow{})
	if len(limits) != 0 || runs != (workflow.ClusterLimits{}) {
		t.Fatalf("no limits configured: %v, %+v", limits, runs)
	}

	limits, runs = workflowClusterLimits("ns", "app", config.Workflow{
		GlobalMaxConcurrentActivityInvocations: i32(3),
		GlobalMaxConcurrentWorkflowInvocations: i32(0), // not a limit
		ActivityConcurrencyLimits: []config.NamedConcurrencyLimit{
			{Name: str("limited"), MaxConcurrent: i32(1)},
			{Name: str("none"), MaxConcurrent: i32(-1)},
			{MaxConcurrent: i32(2)},
		},
	})
	if runs != (workflow.ClusterLimits{Activities: true}) {
		t.Fatalf("runs = %+v, want activities only", runs)
	}
	if len(limits) != 2 ||
		limits[0].GetActor().GetType() != actType || limits[0].Name != nil || limits[0].GetMaxConcurrent() != 3 ||
		limits[1].GetActor().GetType() != actType || limits[1].GetName() != "limited" || limits[1].GetMaxConcurrent() != 1 {
		t.Fatalf("limits = %v", limits)
	}

	limits, runs = workflowClusterLimits("ns", "app", config.Workflow{
		WorkflowConcurrencyLimits: []config.NamedConcurrencyLimit{{Name: str("slow"), MaxConcurrent: i32(1)}},
	})
	if runs != (workflow.ClusterLimits{Workflows: true}) || len(limits) != 1 ||
		limits[0].GetActor().GetType() != wfType || limits[0].GetName() != "slow" {
		t.Fatalf("named workflow limit: %v, %+v", limits, runs)
	}
}
