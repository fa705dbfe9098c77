package acl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/identity"
)

// Which policy level decided a call (Dapr's metric families
// dapr_runtime_acl_{app,global}_policy_action_{allowed,blocked}_total).
const (
	PolicyApp    = "app"
	PolicyGlobal = "global"
)

// Decision describes one evaluated call, for metrics.
type Decision struct {
	Caller    identity.App
	Operation string // normalised, as in Dapr's message (no "/" added)
	Verb      string // "NONE" when the call has none
	Allowed   bool
	// Policy is PolicyApp or PolicyGlobal.
	Policy string
}

// Options tune Compile.
type Options struct {
	// HTTP is true when this sidecar's app speaks HTTP (--app-protocol http,
	// https or h2c): operations are then matched case-insensitively and the
	// HTTP verb decides. For a gRPC app the operation's action decides.
	HTTP bool
	// OnDecision, if set, is called for every evaluated call (metrics).
	OnDecision func(Decision)
}

// ACL is a compiled access control spec. A nil *ACL allows everything.
// It is immutable and safe for concurrent use.
type ACL struct {
	defaultAction string
	trustDomain   string
	policies      map[string]*policy // appId||namespace
	http          bool
	onDecision    func(Decision)
}

type policy struct {
	appID, namespace, trustDomain string
	defaultAction                 string // may be empty
	ops                           node
}

func key(appID, namespace string) string { return appID + "||" + namespace }

// Compile builds an ACL from spec. It returns nil (allow everything) when
// spec sets neither a default action, a trust domain nor policies, and an
// error naming every policy without an appId, trustDomain or namespace, as
// Dapr refuses to start then.
func Compile(spec config.AccessControl, o Options) (*ACL, error) {
	if spec.DefaultAction == "" && spec.TrustDomain == "" && len(spec.Policies) == 0 {
		return nil, nil
	}
	a := &ACL{
		defaultAction: strings.ToLower(spec.DefaultAction),
		trustDomain:   spec.TrustDomain,
		policies:      make(map[string]*policy, len(spec.Policies)),
		http:          o.HTTP,
		onDecision:    o.OnDecision,
	}
	if a.trustDomain == "" {
		a.trustDomain = config.DefaultTrustDomain
	}
	if a.defaultAction == "" {
		if len(spec.Policies) > 0 {
			// Policies without a global default: the safer choice.
			a.defaultAction = config.Deny
		} else {
			a.defaultAction = config.Allow
		}
	}
	var problems []error
	for i, p := range spec.Policies {
		var missing []string
		for _, f := range []struct{ name, v string }{{"appId", p.AppID}, {"trustDomain", p.TrustDomain}, {"namespace", p.Namespace}} {
			if f.v == "" {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Errorf("accessControl.policies[%d] (appId %q): %s must be set", i, p.AppID, strings.Join(missing, ", ")))
			continue
		}
		pol := &policy{appID: p.AppID, namespace: p.Namespace, trustDomain: p.TrustDomain, defaultAction: p.DefaultAction}
		for _, op := range p.Operations {
			name := op.Name
			if !strings.HasPrefix(name, "/") {
				name = "/" + name
			}
			if o.HTTP {
				name = strings.ToLower(name)
			}
			c := &operation{name: name, action: op.Action, verbs: make(map[string]string, len(op.HTTPVerb))}
			for _, v := range op.HTTPVerb {
				c.verbs[v] = op.Action
			}
			pol.ops.put(name, c)
		}
		// A later policy for the same app and namespace replaces an earlier one.
		a.policies[key(p.AppID, p.Namespace)] = pol
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("invalid access control spec: %w", errors.Join(problems...))
	}
	return a, nil
}

// Allow decides whether caller may invoke operation (the method path) with
// verb (an HTTP verb such as "POST"; "" or "NONE" when the call has none).
// A caller whose TrustDomain is empty has no certificate identity (mTLS
// off) and gets the global default action. When the call is denied, reason
// is Dapr's message naming the caller's SPIFFE ID, operation and verb.
func (a *ACL) Allow(caller identity.App, operation, verb string) (allowed bool, reason string) {
	if a == nil {
		return true, ""
	}
	if verb == "" {
		verb = "NONE"
	}
	op, err := normalize(operation)
	if err != nil {
		return false, "error in method normalization: " + err.Error()
	}
	action, level := a.evaluate(caller, op, verb)
	allowed = strings.EqualFold(action, config.Allow)
	if a.onDecision != nil {
		a.onDecision(Decision{Caller: caller, Operation: op, Verb: verb, Allowed: allowed, Policy: level})
	}
	if allowed {
		return true, ""
	}
	return false, fmt.Sprintf("access control policy has denied access to id: %s operation: %s verb: %s", callerName(caller), op, verb)
}

func callerName(c identity.App) string {
	if c.TrustDomain == "" || c.Namespace == "" || c.AppID == "" {
		if c.AppID != "" {
			return c.AppID
		}
		return "unknown"
	}
	return c.String()
}

// evaluate returns the action that applies and the level that set it.
func (a *ACL) evaluate(caller identity.App, op, verb string) (string, string) {
	action, level := a.defaultAction, PolicyGlobal
	if caller.TrustDomain == "" || caller.AppID == "" {
		return action, level
	}
	pol, ok := a.policies[key(caller.AppID, caller.Namespace)]
	if !ok || pol.trustDomain != caller.TrustDomain || pol.namespace != caller.Namespace {
		return action, level
	}
	if pol.defaultAction != "" {
		action, level = pol.defaultAction, PolicyApp
	}
	if !strings.HasPrefix(op, "/") {
		op = "/" + op
	}
	if a.http {
		op = strings.ToLower(op)
	}
	o := pol.ops.search(op)
	if o == nil {
		return action, level
	}
	if !a.http {
		return o.action, level
	}
	if verb == "NONE" {
		// Dapr: an HTTP app called without a verb gets the policy's own
		// default, which denies when it is empty.
		return pol.defaultAction, level
	}
	if v, ok := o.verbs[verb]; ok {
		return v, level
	}
	if v, ok := o.verbs["*"]; ok {
		return v, level
	}
	return action, level
}

// DeniedError is returned by Check for a refused call. Its message is
// Dapr's, so callers see the same text daprd sends.
type DeniedError struct{ Reason string }

func (e *DeniedError) Error() string { return e.Reason }

// Check is Allow as an error: nil when allowed, *DeniedError otherwise.
// It is what cmd wires as the invocation server's Authorize hook.
func (a *ACL) Check(caller identity.App, operation, verb string) error {
	if ok, reason := a.Allow(caller, operation, verb); !ok {
		return &DeniedError{Reason: reason}
	}
	return nil
}
