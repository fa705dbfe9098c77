package resiliency

import "time"

// Policy is what applies to one target: a per-attempt timeout, a retry
// policy and a circuit breaker, any of which may be absent. Get one from a
// Set; a nil *Policy is valid and means "run once".
type Policy struct {
	target      string
	timeout     time.Duration
	timeoutName string
	retry       *Retry
	breaker     *breaker
	// typeBreaker is an actor type's breaker that also guards a call of
	// one actor (circuitBreakerScope both); breaker is the actor's own.
	typeBreaker *breaker
	budget      *budget
	hooks       *Hooks
	scope       *Scope // nil: no Applied/Activated hooks (built-in policies)
	rnd         func() float64
}

// applied reports, as a call starts, each kind of policy p has.
func (p *Policy) applied() {
	if p.scope == nil || p.hooks.Applied == nil {
		return
	}
	if p.timeout > 0 {
		p.hooks.Applied(*p.scope, KindTimeout, "")
	}
	if p.retry != nil {
		p.hooks.Applied(*p.scope, KindRetry, "")
	}
	if p.breaker != nil {
		p.hooks.Applied(*p.scope, KindBreaker, string(p.breaker.State()))
	}
}

// activated reports a policy acting on a call.
func (p *Policy) activated(kind PolicyKind, status string) {
	if p.scope != nil && p.hooks.Activated != nil {
		p.hooks.Activated(*p.scope, kind, status)
	}
}

// Target describes the target in messages, e.g. app "orders".
func (p *Policy) Target() string {
	if p == nil {
		return ""
	}
	return p.target
}

// Timeout is the per-attempt timeout; 0 means none.
func (p *Policy) Timeout() time.Duration {
	if p == nil {
		return 0
	}
	return p.timeout
}

// Retry returns a copy of the retry policy, or nil.
func (p *Policy) Retry() *Retry {
	if p == nil || p.retry == nil {
		return nil
	}
	r := *p.retry
	return &r
}

// BreakerState returns the state of the target's circuit breaker, and false
// if the policy has none.
func (p *Policy) BreakerState() (BreakerState, bool) {
	if p == nil || p.breaker == nil {
		return "", false
	}
	return p.breaker.State(), true
}

// Breaker returns a copy of the circuit breaker's settings, or nil if the
// policy has none (for translating a policy into another system's terms,
// such as xDS).
func (p *Policy) Breaker() *CircuitBreaker {
	if p == nil || p.breaker == nil {
		return nil
	}
	c := *p.breaker.tmpl
	return &c
}
