package main

import (
	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"

	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/workflow"
)

// workflowClusterLimits are the Configuration's cluster-wide workflow
// limits as daprd sends them to the scheduler on its job streams: the
// global ones on the workflow and activity actor types, the named ones on
// the type and the name (the concurrency key the engine's reminders
// carry). Limits that are not positive, or have no name, are left out as
// daprd leaves them out. runs says which of the engine's runs must go
// through the scheduler for them.
func workflowClusterLimits(namespace, appID string, wf config.Workflow) (limits []*schedulerv1.ConcurrencyLimit, runs workflow.ClusterLimits) {
	wfType, actType := workflow.ActorTypes(namespace, appID)
	target := func(actorType string) *schedulerv1.ConcurrencyLimit_Actor {
		return &schedulerv1.ConcurrencyLimit_Actor{Actor: &schedulerv1.ConcurrencyLimitActor{Type: actorType}}
	}
	global := func(actorType string, max *int32) bool {
		if max == nil || *max <= 0 {
			return false
		}
		limits = append(limits, &schedulerv1.ConcurrencyLimit{Target: target(actorType), MaxConcurrent: *max})
		return true
	}
	named := func(actorType string, list []config.NamedConcurrencyLimit) bool {
		any := false
		for _, l := range list {
			if l.Name == nil || l.MaxConcurrent == nil || *l.MaxConcurrent <= 0 {
				continue
			}
			limits = append(limits, &schedulerv1.ConcurrencyLimit{Target: target(actorType), Name: new(*l.Name), MaxConcurrent: *l.MaxConcurrent})
			any = true
		}
		return any
	}
	wfGlobal := global(wfType, wf.GlobalMaxConcurrentWorkflowInvocations)
	actGlobal := global(actType, wf.GlobalMaxConcurrentActivityInvocations)
	wfNamed := named(wfType, wf.WorkflowConcurrencyLimits)
	actNamed := named(actType, wf.ActivityConcurrencyLimits)
	return limits, workflow.ClusterLimits{Workflows: wfGlobal || wfNamed, Activities: actGlobal || actNamed}
}
