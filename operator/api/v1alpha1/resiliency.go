package v1alpha1

import "maps"

// Policies are a Resiliency's named timeouts, retries and circuit breakers.
type Policies struct {
	Timeouts        map[string]string         `json:"timeouts,omitempty"`
	Retries         map[string]Retry          `json:"retries,omitempty"`
	CircuitBreakers map[string]CircuitBreaker `json:"circuitBreakers,omitempty"`
}

// Retry is a retry policy: constant or exponential back-off.
type Retry struct {
	Policy      string         `json:"policy,omitempty"`
	Duration    string         `json:"duration,omitempty"`
	MaxInterval string         `json:"maxInterval,omitempty"`
	MaxRetries  *int           `json:"maxRetries,omitempty"`
	Matching    *RetryMatching `json:"matching,omitempty"`
}

// RetryMatching limits a retry policy to some HTTP and gRPC status codes.
type RetryMatching struct {
	HTTPStatusCodes string `json:"httpStatusCodes,omitempty"`
	GRPCStatusCodes string `json:"gRPCStatusCodes,omitempty"`
}

// CircuitBreaker is a circuit-breaker policy.
type CircuitBreaker struct {
	MaxRequests int    `json:"maxRequests,omitempty"`
	Interval    string `json:"interval,omitempty"`
	Timeout     string `json:"timeout,omitempty"`
	Trip        string `json:"trip,omitempty"`
}

// Targets name the policies each app, actor type and component uses.
type Targets struct {
	Apps       map[string]EndpointPolicyNames  `json:"apps,omitempty"`
	Actors     map[string]ActorPolicyNames     `json:"actors,omitempty"`
	Components map[string]ComponentPolicyNames `json:"components,omitempty"`
}

// PolicyNames name one direction's policies.
type PolicyNames struct {
	Timeout        string `json:"timeout,omitempty"`
	Retry          string `json:"retry,omitempty"`
	CircuitBreaker string `json:"circuitBreaker,omitempty"`
}

// ComponentPolicyNames name a component's inbound and outbound policies
// (both always written, as Dapr's operator writes them).
type ComponentPolicyNames struct {
	Inbound  PolicyNames `json:"inbound"`
	Outbound PolicyNames `json:"outbound"`
}

// EndpointPolicyNames name the policies of calls to an app.
type EndpointPolicyNames struct {
	PolicyNames
	CircuitBreakerCacheSize int `json:"circuitBreakerCacheSize,omitempty"`
}

// ActorPolicyNames name the policies of calls to an actor type.
type ActorPolicyNames struct {
	EndpointPolicyNames
	CircuitBreakerScope string `json:"circuitBreakerScope,omitempty"`
}

// DeepCopy returns a copy of p that shares no memory with it.
func (p Policies) DeepCopy() Policies {
	out := Policies{Timeouts: maps.Clone(p.Timeouts), CircuitBreakers: maps.Clone(p.CircuitBreakers)}
	if p.Retries != nil {
		out.Retries = make(map[string]Retry, len(p.Retries))
		for k, r := range p.Retries {
			if r.MaxRetries != nil {
				n := *r.MaxRetries
				r.MaxRetries = &n
			}
			if r.Matching != nil {
				m := *r.Matching
				r.Matching = &m
			}
			out.Retries[k] = r
		}
	}
	return out
}

// DeepCopy returns a copy of t that shares no memory with it.
func (t Targets) DeepCopy() Targets {
	return Targets{Apps: maps.Clone(t.Apps), Actors: maps.Clone(t.Actors), Components: maps.Clone(t.Components)}
}
