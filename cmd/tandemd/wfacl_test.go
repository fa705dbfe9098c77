package main

import (
	"log/slog"
	"testing"

	"github.com/tandemrun/tandem/components"
)

func TestWorkflowPoliciesFollowTheResources(t *testing.T) {
	rc := &runtimeComponents{log: slog.New(slog.DiscardHandler)}
	w := &workflowPolicies{rc: rc, appID: "target"}
	if w.current() != nil {
		t.Fatal("no resources: a policy is in force")
	}
	doc := func(name, rules string) components.Document {
		return components.Document{Kind: "WorkflowAccessPolicy", Name: name,
			Raw: []byte("kind: WorkflowAccessPolicy\nmetadata: {name: " + name + "}\nspec:\n  rules:\n" + rules)}
	}
	rc.mu.Lock()
	rc.set = &components.Set{Documents: []components.Document{
		doc("good", "  - callers: [{appID: caller}]\n    activities: [{name: a}]\n"),
		doc("bad", "  - callers: [{appID: caller}]\n"),
	}}
	rc.mu.Unlock()
	p := w.current()
	if names := p.Names(); len(names) != 1 || names[0] != "good" {
		t.Fatalf("loaded %v, want only good", names)
	}
	rc.mu.Lock()
	rc.set = &components.Set{}
	rc.mu.Unlock()
	if w.current() != nil {
		t.Error("a removed policy stays in force")
	}
}
