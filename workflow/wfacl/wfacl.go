// Package wfacl is Dapr 1.18's WorkflowAccessPolicy (dapr.io/v1alpha1): an
// allow-list, kept by the app whose workflows and activities other apps
// call, of which caller app IDs may do which operations (schedule,
// terminate, raise, pause, resume, purge, get, rerun) on which workflows,
// and which activities they may schedule, by exact name or glob. With no
// policy loaded every call is allowed; with one, a call no rule allows is
// denied. The sidecar of the callee enforces it (workflow's actors); calls
// of an app to its own actors are never checked.
package wfacl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"

	"go.yaml.in/yaml/v3"
)

// Kind is the resource kind.
const Kind = "WorkflowAccessPolicy"

// Operation is a workflow operation a rule allows.
type Operation string

// Dapr's operations.
const (
	Schedule  Operation = "schedule"
	Terminate Operation = "terminate"
	Raise     Operation = "raise"
	Pause     Operation = "pause"
	Resume    Operation = "resume"
	Purge     Operation = "purge"
	Get       Operation = "get"
	Rerun     Operation = "rerun"
)

var operations = map[Operation]bool{Schedule: true, Terminate: true, Raise: true, Pause: true, Resume: true, Purge: true, Get: true, Rerun: true}

// Target is what an operation is done on.
type Target int

// A workflow or an activity.
const (
	Workflow Target = iota
	Activity
)

// Policy is one WorkflowAccessPolicy resource.
type Policy struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Spec struct {
		Rules []Rule `yaml:"rules"`
	} `yaml:"spec"`
	Scopes []string `yaml:"scopes"`
}

// Rule grants its callers the listed operations.
type Rule struct {
	Callers []struct {
		AppID string `yaml:"appID"`
	} `yaml:"callers"`
	Workflows []struct {
		Name       string      `yaml:"name"`
		Operations []Operation `yaml:"operations"`
	} `yaml:"workflows"`
	Activities []struct {
		Name string `yaml:"name"`
	} `yaml:"activities"`
}

// Parse reads the WorkflowAccessPolicy documents of a YAML file (other
// kinds are skipped).
func Parse(data []byte) ([]Policy, error) {
	var out []Policy
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var p Policy
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("workflow access policy: %w", err)
		}
		if p.Kind == Kind {
			out = append(out, p)
		}
	}
}

// Warning is a part of a policy that was left out, and why.
type Warning struct {
	Policy string
	Reason string
}

func (w Warning) String() string { return w.Policy + ": " + w.Reason }

// Policies is the compiled allow-list of one app; nil allows everything.
type Policies struct {
	names []string
	rules []rule
}

// Names are the names of the policies loaded (the metadata API lists
// them).
func (p *Policies) Names() []string {
	if p == nil {
		return nil
	}
	return p.names
}

type rule struct {
	callers map[string]bool
	grants  []grant
}

type grant struct {
	target  Target
	op      Operation
	pattern string
}

// Validate checks a policy as the resource's schema does: every rule has
// callers with app IDs and workflows or activities, every workflow entry
// a name and known operations, every activity entry a name.
func Validate(p Policy) error {
	for i, r := range p.Spec.Rules {
		if len(r.Callers) == 0 {
			return fmt.Errorf("spec.rules[%d].callers: at least one caller is required", i)
		}
		for j, c := range r.Callers {
			if c.AppID == "" {
				return fmt.Errorf("spec.rules[%d].callers[%d].appID: must not be empty", i, j)
			}
		}
		if len(r.Workflows) == 0 && len(r.Activities) == 0 {
			return fmt.Errorf("spec.rules[%d]: at least one of workflows or activities must contain a rule", i)
		}
		for j, w := range r.Workflows {
			if w.Name == "" {
				return fmt.Errorf("spec.rules[%d].workflows[%d].name: must not be empty", i, j)
			}
			if len(w.Operations) == 0 {
				return fmt.Errorf("spec.rules[%d].workflows[%d].operations: at least one operation is required", i, j)
			}
			for _, op := range w.Operations {
				if !operations[op] {
					return fmt.Errorf("spec.rules[%d].workflows[%d].operations: unsupported value %q", i, j, op)
				}
			}
		}
		for j, a := range r.Activities {
			if a.Name == "" {
				return fmt.Errorf("spec.rules[%d].activities[%d].name: must not be empty", i, j)
			}
		}
	}
	return nil
}

// Compile builds the allow-list from the policies in scope of appID (no
// scopes: every app). A policy that fails Validate is not loaded (a
// Warning says why). No policy loaded: nil, every call allowed. Entries
// with bad globs are left out, as daprd leaves them (a policy that is
// loaded but grants nothing denies every call).
func Compile(policies []Policy, appID string) (*Policies, []Warning) {
	var warn []Warning
	var in []Policy
	for _, p := range policies {
		if len(p.Scopes) != 0 && !contains(p.Scopes, appID) {
			continue
		}
		if err := Validate(p); err != nil {
			warn = append(warn, Warning{p.Metadata.Name, fmt.Sprintf("workflow access policy %q failed validation: %v", p.Metadata.Name, err)})
			continue
		}
		in = append(in, p)
	}
	if len(in) == 0 {
		return nil, warn
	}
	out := &Policies{rules: []rule{}}
	for _, p := range in {
		name := p.Metadata.Name
		out.names = append(out.names, name)
		for _, r := range p.Spec.Rules {
			if len(r.Callers) == 0 {
				warn = append(warn, Warning{name, "a rule with no callers is ignored"})
				continue
			}
			cr := rule{callers: map[string]bool{}}
			for _, c := range r.Callers {
				cr.callers[c.AppID] = true
			}
			for _, w := range r.Workflows {
				if _, err := path.Match(w.Name, ""); err != nil || w.Name == "" {
					warn = append(warn, Warning{name, fmt.Sprintf("workflow name %q is not a valid glob; ignored", w.Name)})
					continue
				}
				if len(w.Operations) == 0 {
					warn = append(warn, Warning{name, fmt.Sprintf("workflow %q lists no operations; ignored", w.Name)})
					continue
				}
				for _, op := range w.Operations {
					if !operations[op] {
						warn = append(warn, Warning{name, fmt.Sprintf("workflow %q: unknown operation %q ignored", w.Name, op)})
						continue
					}
					cr.grants = append(cr.grants, grant{Workflow, op, w.Name})
				}
			}
			for _, a := range r.Activities {
				if _, err := path.Match(a.Name, ""); err != nil || a.Name == "" {
					warn = append(warn, Warning{name, fmt.Sprintf("activity name %q is not a valid glob; ignored", a.Name)})
					continue
				}
				cr.grants = append(cr.grants, grant{Activity, Schedule, a.Name})
			}
			if len(cr.grants) > 0 {
				out.rules = append(out.rules, cr)
			}
		}
	}
	return out, warn
}

// Allows reports whether caller may do op on the workflow or activity
// named name.
func (p *Policies) Allows(caller string, target Target, op Operation, name string) bool {
	if p == nil {
		return true
	}
	for _, r := range p.rules {
		if !r.callers[caller] {
			continue
		}
		for _, g := range r.grants {
			if g.target != target || g.op != op {
				continue
			}
			if ok, err := path.Match(g.pattern, name); err == nil && ok {
				return true
			}
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
