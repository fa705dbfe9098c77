package resiliency

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FieldError is one problem in a Resiliency document, located by file and
// YAML path.
type FieldError struct {
	File    string
	Path    string // e.g. spec.targets.apps.orders.retry
	Message string
}

func (e *FieldError) Error() string {
	if e.File == "" {
		return e.Path + ": " + e.Message
	}
	return e.File + ": " + e.Path + ": " + e.Message
}

// Validate checks one document on its own: values, trip expressions, status
// code lists and that every policy a target names is defined in it (or is a
// Dapr built-in). Targets may name policies of another file, which only
// Build, seeing all files, accepts. The error joins every FieldError.
func (r *Resiliency) Validate() error {
	return ValidateAll(r)
}

// ValidateAll checks documents that will be merged, resolving policy names
// across all of them as Build does.
func ValidateAll(docs ...*Resiliency) error {
	_, err := compileAll(docs)
	return err
}

// compiled holds the typed policies of one or more documents.
type compiled struct {
	timeouts map[string]time.Duration
	retries  map[string]*Retry
	breakers map[string]*CircuitBreaker
	apps     map[string]PolicyNames
	actors   map[string]ActorPolicyNames
	comps    map[string]ComponentPolicyNames
}

func newCompiled() *compiled {
	return &compiled{
		timeouts: map[string]time.Duration{},
		retries:  map[string]*Retry{},
		breakers: map[string]*CircuitBreaker{},
		apps:     map[string]PolicyNames{},
		actors:   map[string]ActorPolicyNames{},
		comps:    map[string]ComponentPolicyNames{},
	}
}

// compileAll merges docs in order (later names win, as in Dapr) on top of
// the built-in policies, then checks target references against the result.
func compileAll(docs []*Resiliency) (*compiled, error) {
	c := newCompiled()
	maps.Copy(c.retries, builtInRetries())
	var errs []error
	for _, d := range docs {
		if d == nil {
			continue
		}
		errs = append(errs, c.addPolicies(d)...)
	}
	for _, d := range docs {
		if d == nil {
			continue
		}
		errs = append(errs, c.addTargets(d)...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func (c *compiled) addPolicies(d *Resiliency) []error {
	var errs []error
	fail := func(path, format string, args ...any) {
		errs = append(errs, &FieldError{File: d.File, Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if d.APIVersion != "" && d.APIVersion != APIVersion {
		fail("apiVersion", "is %q; Resiliency is %s", d.APIVersion, APIVersion)
	}
	for _, s := range d.Scopes {
		if strings.TrimSpace(s) == "" {
			fail("scopes", "contains an empty app ID")
		}
	}
	pol := d.Spec.Policies
	for _, name := range slices.Sorted(maps.Keys(pol.Timeouts)) {
		path := "spec.policies.timeouts." + name
		dur, err := parseDuration(pol.Timeouts[name])
		if err != nil {
			fail(path, "%v", err)
			continue
		}
		c.timeouts[name] = dur
	}
	for _, name := range slices.Sorted(maps.Keys(pol.Retries)) {
		path := "spec.policies.retries." + name
		if name == builtInActorNotFoundRetries {
			fail(path, "is a protected built-in policy and cannot be overridden; choose another name")
			continue
		}
		r, ferrs := compileRetry(name, pol.Retries[name])
		for _, fe := range ferrs {
			fail(path+fe.Path, "%s", fe.Message)
		}
		if len(ferrs) == 0 {
			if isBuiltIn(name) && r.MaxRetries >= 0 && r.MaxRetries < 3 {
				// Dapr never lets a built-in retry drop below 3 retries.
				r.MaxRetries = 3
			}
			c.retries[name] = r
		}
	}
	for _, name := range slices.Sorted(maps.Keys(pol.CircuitBreakers)) {
		path := "spec.policies.circuitBreakers." + name
		cb, ferrs := compileBreaker(name, pol.CircuitBreakers[name])
		for _, fe := range ferrs {
			fail(path+fe.Path, "%s", fe.Message)
		}
		if len(ferrs) == 0 {
			c.breakers[name] = cb
		}
	}
	return errs
}

func (c *compiled) addTargets(d *Resiliency) []error {
	var errs []error
	check := func(path string, n PolicyNames) {
		if n.Timeout != "" {
			if _, ok := c.timeouts[n.Timeout]; !ok {
				errs = append(errs, missing(d.File, path+".timeout", "timeout", n.Timeout, c.timeouts))
			}
		}
		if n.Retry != "" {
			if _, ok := c.retries[n.Retry]; !ok {
				errs = append(errs, missing(d.File, path+".retry", "retry", n.Retry, c.retries))
			}
		}
		if n.CircuitBreaker != "" {
			if _, ok := c.breakers[n.CircuitBreaker]; !ok {
				errs = append(errs, missing(d.File, path+".circuitBreaker", "circuit breaker", n.CircuitBreaker, c.breakers))
			}
		}
	}
	t := d.Spec.Targets
	for _, app := range slices.Sorted(maps.Keys(t.Apps)) {
		check("spec.targets.apps."+app, t.Apps[app])
		c.apps[app] = t.Apps[app]
	}
	for _, typ := range slices.Sorted(maps.Keys(t.Actors)) {
		a := t.Actors[typ]
		path := "spec.targets.actors." + typ
		check(path, PolicyNames{Timeout: a.Timeout, Retry: a.Retry, CircuitBreaker: a.CircuitBreaker})
		switch a.CircuitBreakerScope {
		case "type", "id", "both":
		case "":
			if a.CircuitBreaker != "" {
				errs = append(errs, &FieldError{File: d.File, Path: path + ".circuitBreakerScope",
					Message: "is required with circuitBreaker; use type, id or both"})
			}
		default:
			errs = append(errs, &FieldError{File: d.File, Path: path + ".circuitBreakerScope",
				Message: fmt.Sprintf("is %q; use type, id or both", a.CircuitBreakerScope)})
		}
		c.actors[typ] = a
	}
	for _, name := range slices.Sorted(maps.Keys(t.Components)) {
		cp := t.Components[name]
		check("spec.targets.components."+name+".outbound", cp.Outbound)
		check("spec.targets.components."+name+".inbound", cp.Inbound)
		c.comps[name] = cp
	}
	return errs
}

func missing[V any](file, path, kind, name string, defined map[string]V) error {
	var names []string
	for n := range defined {
		if !isBuiltIn(n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	list := "(none)"
	if len(names) > 0 {
		list = strings.Join(names, ", ")
	}
	return &FieldError{File: file, Path: path,
		Message: fmt.Sprintf("no %s policy named %q; defined: %s", kind, name, list)}
}

// parseDuration reads a Dapr duration: an integer is milliseconds,
// anything else uses time.ParseDuration.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration; write e.g. 5s or 500ms")
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
			return 0, fmt.Errorf("duration %q out of range", s)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q; write e.g. 5s, 500ms or 1m30s", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return d, nil
}

// optDuration parses s, or returns def when s is empty.
func optDuration(s string, def time.Duration) (time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return def, nil
	}
	return parseDuration(s)
}
