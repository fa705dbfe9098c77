package wfacl

import (
	"strings"
	"testing"
)

const policies = `
apiVersion: dapr.io/v1alpha1
kind: WorkflowAccessPolicy
metadata:
  name: p1
scopes:
- target
spec:
  rules:
  - callers:
    - appID: caller
    workflows:
    - name: Order*
      operations: [schedule, terminate]
    - name: Exact
      operations: [raise]
    activities:
    - name: Charge
  - callers:
    - appID: other
    workflows:
    - name: "[bad"
      operations: [schedule]
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: notapolicy
---
apiVersion: dapr.io/v1alpha1
kind: WorkflowAccessPolicy
metadata:
  name: elsewhere
scopes:
- someoneelse
spec:
  rules:
  - callers:
    - appID: caller
    activities:
    - name: "*"
`

func TestCompileAndAllow(t *testing.T) {
	ps, err := Parse([]byte(policies))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 {
		t.Fatalf("parsed %d policies, want 2", len(ps))
	}
	p, warn := Compile(ps, "target")
	if p == nil {
		t.Fatal("a policy in scope compiled to allow-all")
	}
	if len(warn) != 1 {
		t.Errorf("warnings %v, want 1 (bad glob)", warn)
	}
	if names := p.Names(); len(names) != 1 || names[0] != "p1" {
		t.Errorf("loaded %v, want p1", names)
	}
	for _, tc := range []struct {
		caller string
		target Target
		op     Operation
		name   string
		want   bool
	}{
		{"caller", Workflow, Schedule, "OrderFlow", true},
		{"caller", Workflow, Terminate, "Order", true},
		{"caller", Workflow, Purge, "OrderFlow", false},
		{"caller", Workflow, Raise, "Exact", true},
		{"caller", Workflow, Raise, "Exactly", false},
		{"caller", Activity, Schedule, "Charge", true},
		{"caller", Activity, Schedule, "Refund", false},
		{"caller", Workflow, Schedule, "Charge", false},
		{"other", Workflow, Schedule, "OrderFlow", false},
		{"", Activity, Schedule, "Charge", false},
	} {
		if got := p.Allows(tc.caller, tc.target, tc.op, tc.name); got != tc.want {
			t.Errorf("Allows(%q, %v, %s, %q) = %v, want %v", tc.caller, tc.target, tc.op, tc.name, got, tc.want)
		}
	}
	// Out of scope of every policy: allow-all.
	if p, _ := Compile(ps[:1], "nobody"); p != nil || !p.Allows("x", Activity, Schedule, "y") {
		t.Error("an app no policy is scoped to is not allow-all")
	}
	// A policy in scope granting nothing denies everything.
	empty, _ := Parse([]byte("kind: WorkflowAccessPolicy\nmetadata: {name: e}\nspec: {}\n"))
	if p, _ := Compile(empty, "target"); p == nil || p.Allows("caller", Workflow, Schedule, "w") {
		t.Error("an empty policy allows calls")
	}
}

func TestInvalidPoliciesAreNotLoaded(t *testing.T) {
	for name, rules := range map[string]string{
		"empty-appid": "  - callers: [{appID: \"\"}]\n    workflows: [{name: WF, operations: [schedule]}]\n",
		"empty-ops":   "  - callers: [{appID: a}]\n    workflows: [{name: WF, operations: []}]\n",
		"empty-rule":  "  - callers: [{appID: a}]\n",
		"no-callers":  "  - callers: []\n    activities: [{name: x}]\n",
		"bad-op":      "  - callers: [{appID: a}]\n    workflows: [{name: WF, operations: [fly]}]\n",
		"other-shape": "  - callers: [{appID: a}]\n    operations: [{type: workflow, name: P, action: allow}]\n",
	} {
		ps, err := Parse([]byte("kind: WorkflowAccessPolicy\nmetadata: {name: " + name + "}\nspec:\n  rules:\n" + rules))
		if err != nil || len(ps) != 1 {
			t.Fatalf("%s: %v %d", name, err, len(ps))
		}
		p, warn := Compile(ps, "t")
		if p != nil || len(warn) != 1 || !strings.Contains(warn[0].Reason, `"`+name+`" failed validation`) {
			t.Errorf("%s: compiled %v, warnings %v", name, p, warn)
		}
	}
}

func TestParseRejectsBadYAML(t *testing.T) {
	if _, err := Parse([]byte("kind: WorkflowAccessPolicy\nspec: [")); err == nil {
		t.Error("bad YAML accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(policies))
	f.Add([]byte("kind: WorkflowAccessPolicy\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := Parse(data)
		if err != nil {
			return
		}
		p, _ := Compile(ps, "a")
		_ = p.Allows("b", Workflow, Schedule, "w")
	})
}
