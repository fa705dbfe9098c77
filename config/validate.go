package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// FieldError is one invalid value. Validate joins them with errors.Join.
type FieldError struct {
	Source string // file
	Path   string // e.g. spec.accessControl.policies[1].operations[0].action
	Value  string // the offending value, quoted in the message
	Msg    string // what is wrong and what to write instead
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Source, e.Path, e.Msg)
}

type problems struct {
	source string
	errs   []error
}

func (p *problems) add(path, value, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{Source: p.source, Path: path, Value: value, Msg: fmt.Sprintf(format, args...)})
}

// oneOf checks an optional, case-insensitive enum value.
func (p *problems) oneOf(path, value string, allowed ...string) {
	if value == "" {
		return
	}
	for _, a := range allowed {
		if strings.EqualFold(value, a) {
			return
		}
	}
	p.add(path, value, "%q is not valid; use one of %s", value, strings.Join(allowed, "|"))
}

func (p *problems) required(path, value, what string) {
	if strings.TrimSpace(value) == "" {
		p.add(path, value, "is required; set it to %s", what)
	}
}

// httpVerbs are the values accepted in operations[].httpVerb ("*" = any).
const httpVerbs = "GET|HEAD|POST|PUT|DELETE|CONNECT|OPTIONS|TRACE|PATCH|*"

// Validate checks values Dapr would reject or silently misread. Every error
// is a *FieldError naming the file, the field path and the allowed values;
// all problems are reported at once.
func (c *Configuration) Validate() error {
	p := &problems{source: c.Source}
	s := &c.Spec

	if _, err := parseSamplingRate(s.Tracing.SamplingRate); err != nil {
		p.add("spec.tracing.samplingRate", s.Tracing.SamplingRate,
			"%q is not a sampling rate; write a number between \"0\" (off) and \"1\" (every request), e.g. \"0.1\"", s.Tracing.SamplingRate)
	}
	if z := s.Tracing.Zipkin.EndpointAddress; z != "" {
		if u, err := url.Parse(z); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add("spec.tracing.zipkin.endpointAddress", z,
				"%q is not an http(s) URL; write it like http://localhost:9411/api/v2/spans", z)
		}
	}
	p.oneOf("spec.tracing.otel.protocol", s.Tracing.Otel.Protocol, "grpc", "http")
	p.duration("spec.tracing.otel.timeout", s.Tracing.Otel.Timeout, false)

	for _, m := range []struct {
		path string
		spec Metrics
	}{{"spec.metric", s.Metric}, {"spec.metrics", s.Metrics}} {
		prev := 0
		for i, b := range m.spec.LatencyDistributionBuckets {
			if b <= prev {
				p.add(fmt.Sprintf("%s.latencyDistributionBuckets[%d]", m.path, i), fmt.Sprint(b),
					"bucket %d must be positive and greater than the one before it; list bucket bounds (milliseconds) in increasing order", b)
			}
			prev = b
		}
	}

	p.duration("spec.mtls.workloadCertTTL", s.MTLS.WorkloadCertTTL, true)
	p.duration("spec.mtls.allowedClockSkew", s.MTLS.AllowedClockSkew, false)

	stores := map[string]int{}
	for i, sc := range s.Secrets.Scopes {
		path := fmt.Sprintf("spec.secrets.scopes[%d]", i)
		p.required(path+".storeName", sc.StoreName, "the name of a secret store component")
		if j, dup := stores[sc.StoreName]; dup && sc.StoreName != "" {
			p.add(path+".storeName", sc.StoreName, "%q is already scoped by spec.secrets.scopes[%d]; merge the two entries", sc.StoreName, j)
		}
		stores[sc.StoreName] = i
		p.oneOf(path+".defaultAccess", sc.DefaultAccess, Allow, Deny)
	}

	c.validateACL(p)

	for i, f := range s.Features {
		p.required(fmt.Sprintf("spec.features[%d].name", i), f.Name, "a feature name such as HotReload")
	}
	for _, list := range []struct {
		path  string
		rules []APIRule
	}{{"spec.api.allowed", s.API.Allowed}, {"spec.api.denied", s.API.Denied}} {
		for i, r := range list.rules {
			path := fmt.Sprintf("%s[%d]", list.path, i)
			p.required(path+".name", r.Name, "an API name such as state, publish or invoke")
			p.required(path+".version", r.Version, "an API version such as v1.0 or v1.0-alpha1")
			p.oneOf(path+".protocol", r.Protocol, "http", "grpc")
		}
	}
	if r := s.Workflow.StateRetentionPolicy; r != nil {
		for _, f := range []struct {
			key string
			d   *Duration
		}{{"anyTerminal", r.AnyTerminal}, {"completed", r.Completed}, {"failed", r.Failed}, {"terminated", r.Terminated}} {
			path := "spec.workflow.stateRetentionPolicy." + f.key
			switch v, err := f.d.ParseSet(); {
			case err != nil:
				p.add(path, string(*f.d), "%v", err)
			case v != nil && *v < 0:
				p.add(path, string(*f.d), "%q is negative; write how long to keep a workflow's state after it ends, \"0s\" to purge it at once", string(*f.d))
			}
		}
	}
	for i, d := range s.Components.Deny {
		p.required(fmt.Sprintf("spec.components.deny[%d]", i), d, "a component type such as state.redis or state.redis/v1")
	}
	return errors.Join(p.errs...)
}

func (c *Configuration) validateACL(p *problems) {
	acl := c.Spec.AccessControl
	p.oneOf("spec.accessControl.defaultAction", acl.DefaultAction, Allow, Deny)
	for i, pol := range acl.Policies {
		path := fmt.Sprintf("spec.accessControl.policies[%d]", i)
		// Dapr refuses to start when any of these three is missing.
		p.required(path+".appId", pol.AppID, "the app ID of the calling app")
		p.required(path+".trustDomain", pol.TrustDomain, "the caller's trust domain (usually \"public\")")
		p.required(path+".namespace", pol.Namespace, "the caller's namespace (usually \"default\")")
		p.oneOf(path+".defaultAction", pol.DefaultAction, Allow, Deny)
		for j, op := range pol.Operations {
			opath := fmt.Sprintf("%s.operations[%d]", path, j)
			p.required(opath+".name", op.Name, "a method path such as /orders or /orders/*")
			p.oneOf(opath+".action", op.Action, Allow, Deny)
			for k, v := range op.HTTPVerb {
				if !slices.Contains(strings.Split(httpVerbs, "|"), v) {
					p.add(fmt.Sprintf("%s.httpVerb[%d]", opath, k), v,
						"%q is not an HTTP verb; use one of %s (upper case)", v, httpVerbs)
				}
			}
		}
	}
}

func (p *problems) duration(path string, d Duration, positive bool) {
	v, err := d.Parse()
	switch {
	case err != nil:
		p.add(path, string(d), "%v", err)
	case v < 0 || (positive && d != "" && v == 0):
		p.add(path, string(d), "%q must be greater than zero", string(d))
	}
}

// lint returns warnings for values Dapr accepts but that probably do not
// do what the author meant, and settings Tandem accepts but ignores.
func (c *Configuration) lint() []Warning {
	var out []Warning
	warn := func(path, format string, args ...any) {
		out = append(out, Warning{Source: c.Source, Path: path, Message: fmt.Sprintf(format, args...)})
	}
	s := &c.Spec
	seen := map[string]int{}
	for i, pol := range s.AccessControl.Policies {
		key := pol.AppID + "||" + pol.Namespace
		if j, dup := seen[key]; dup {
			warn(fmt.Sprintf("spec.accessControl.policies[%d]", i),
				"repeats appId %q in namespace %q from policies[%d]; only this later entry takes effect", pol.AppID, pol.Namespace, j)
		}
		seen[key] = i
		for j, op := range pol.Operations {
			if op.Action == "" {
				warn(fmt.Sprintf("spec.accessControl.policies[%d].operations[%d].action", i, j),
					"is empty, which Dapr treats as deny; write action: deny (or allow) explicitly")
			}
		}
	}
	for _, p := range []struct {
		field string
		p     Pipeline
	}{{"spec.httpPipeline", s.HTTPPipeline}, {"spec.appHttpPipeline", s.AppHTTPPipeline}} {
		for i, h := range p.p.Handlers {
			at := fmt.Sprintf("%s.handlers[%d]", p.field, i)
			if h.Name == "" {
				warn(at+".name", "is empty: the handler names no component and is skipped")
			}
			if !strings.HasPrefix(h.Type, "middleware.http.") {
				warn(at+".type", "is %q, not a middleware.http.* type: no component matches it and the handler is skipped", h.Type)
			}
		}
	}
	return out
}
