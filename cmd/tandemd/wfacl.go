package main

import (
	"context"
	"sync"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/workflow/wfacl"
)

// workflowPolicies compiles the WorkflowAccessPolicy resources of the
// resources in effect (files or the operator), again whenever they change.
type workflowPolicies struct {
	rc    *runtimeComponents
	appID string

	mu   sync.Mutex
	from *components.Set
	p    *wfacl.Policies
}

// current is the policy of the resources in effect; nil allows all.
func (w *workflowPolicies) current() *wfacl.Policies {
	w.rc.mu.RLock()
	set := w.rc.set
	w.rc.mu.RUnlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if set == w.from {
		return w.p
	}
	var all []wfacl.Policy
	if set != nil {
		for _, d := range set.DocumentsOf(wfacl.Kind) {
			ps, err := wfacl.Parse(d.Raw)
			if err != nil {
				w.rc.log.Error("workflow access policy not loaded", "name", d.Name, "source", d.Source, "error", err)
				continue
			}
			all = append(all, ps...)
		}
	}
	p, warnings := wfacl.Compile(all, w.appID)
	for _, warn := range warnings {
		w.rc.log.Warn("workflow access policy problem: not all of it is in force", "policy", warn.Policy, "reason", warn.Reason)
	}
	w.from, w.p = set, p
	return p
}

// Run compiles the policies whenever the resources change, so that a bad
// policy is reported when it is loaded rather than at the next workflow
// call, until ctx ends.
func (w *workflowPolicies) Run(ctx context.Context) error {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		w.current()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
