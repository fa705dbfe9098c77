package subscriptions

import (
	"fmt"
	"strings"

	"cel.dev/cel-go/cel"

	"github.com/tandemrun/tandem/proxy/cloudevents"
)

// Rule routes events whose Match expression is true to Path.
type Rule struct {
	// Match is a CEL expression over the variable "event" (the CloudEvent:
	// event.type, event.data.x, ...); "" always matches.
	Match string
	Path  string
	prog  cel.Program
}

// NewRule compiles match. The expression must be boolean.
func NewRule(match, path string) (*Rule, error) {
	r := &Rule{Match: strings.TrimSpace(match), Path: path}
	if r.Match == "" {
		return r, nil
	}
	env, err := cel.NewEnv(cel.Variable("event", cel.DynType))
	if err != nil {
		return nil, fmt.Errorf("routing rule: %w", err)
	}
	ast, iss := env.Compile(r.Match)
	if iss.Err() != nil {
		return nil, fmt.Errorf("routing rule match %q: %w", r.Match, iss.Err())
	}
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, fmt.Errorf("routing rule match %q is %s, not a boolean", r.Match, t)
	}
	if r.prog, err = env.Program(ast); err != nil {
		return nil, fmt.Errorf("routing rule match %q: %w", r.Match, err)
	}
	return r, nil
}

// matches evaluates the rule against ev.
func (r *Rule) matches(ev cloudevents.Event) (bool, error) {
	if r.prog == nil {
		return true, nil
	}
	out, _, err := r.prog.Eval(map[string]any{"event": ev})
	if err != nil {
		return false, fmt.Errorf("evaluate routing rule %q: %w", r.Match, err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("routing rule %q returned %v, not a boolean", r.Match, out.Value())
	}
	return b, nil
}

// Route returns the path of the first rule matching ev; ok is false when
// none does. An evaluation error (e.g. a missing field the expression reads
// without has()) is returned as in Dapr: the event is dead-lettered or
// redelivered, not silently routed elsewhere.
func (s *Subscription) Route(ev cloudevents.Event) (path string, ok bool, err error) {
	for _, r := range s.Rules {
		m, err := r.matches(ev)
		if err != nil {
			return "", false, err
		}
		if m {
			return r.Path, true, nil
		}
	}
	return "", false, nil
}
