package resiliency

import (
	"container/list"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
)

// Hooks are optional callbacks for metrics and logs; nil fields are skipped.
// They are called synchronously and must be quick.
type Hooks struct {
	// Retry runs before each retry: attempt is the number of the attempt
	// about to start (2 for the first retry), err what the last one returned.
	Retry func(target string, attempt int, err error)
	// Timeout runs when an attempt hits its per-attempt timeout.
	Timeout func(target string)
	// BreakerStateChange runs when a breaker moves between states. It runs
	// under the breaker's lock: don't call back into the Policy.
	BreakerStateChange func(target, policy string, from, to BreakerState)
	// BudgetExhausted runs when a retry is refused by the retry budget.
	BudgetExhausted func(target string)

	// Applied runs as a Do call starts, once for each kind of policy the
	// target has; status is the breaker's state then (after an open breaker
	// whose timeout passed turned half-open), "" for the other kinds.
	// Dapr's dapr_resiliency_count and dapr_resiliency_cb_state.
	Applied func(s Scope, kind PolicyKind, status string)
	// Activated runs when a policy acts on a Do call: before each retry,
	// on the call's first attempt timeout, and when a breaker's state after
	// an attempt differs from before it (status: the new state). Dapr's
	// dapr_resiliency_activations_total.
	Activated func(s Scope, kind PolicyKind, status string)
	// Loaded runs once for each document a successful Build merged
	// (dapr_resiliency_loaded).
	Loaded func(name, namespace string)
}

// PolicyKind is a kind of policy, as Dapr's metrics label it.
type PolicyKind string

// Policy kinds.
const (
	KindTimeout PolicyKind = "timeout"
	KindRetry   PolicyKind = "retry"
	KindBreaker PolicyKind = "circuitbreaker"
)

// Scope names a policy's target in metrics the way daprd does.
type Scope struct {
	// Name and Namespace are those of the Resiliency document in effect;
	// like daprd, the last one merged names every target.
	Name, Namespace string
	// Target is "app_<app ID>" or "<Kind>_<component>" (Statestore_orders).
	Target string
	// Direction is "outbound" (to an app or component) or "inbound"
	// (component deliveries to the app).
	Direction string
}

// Flow directions of a Scope.
const (
	Outbound = "outbound"
	Inbound  = "inbound"
)

// BuildOption configures Build.
type BuildOption func(*buildConfig)

type buildConfig struct {
	log      *slog.Logger
	hooks    Hooks
	budget   BudgetConfig
	previous *Set
	rnd      func() float64
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) BuildOption { return func(c *buildConfig) { c.log = l } }

// WithHooks sets metric callbacks.
func WithHooks(h Hooks) BuildOption { return func(c *buildConfig) { c.hooks = h } }

// WithRetryBudget sets the per-target retry budget (see BudgetConfig).
func WithRetryBudget(b BudgetConfig) BuildOption { return func(c *buildConfig) { c.budget = b } }

// WithPrevious hands over live state on hot reload: breakers whose policy
// settings did not change keep their state (an open breaker stays open),
// and retry budgets keep their counts.
func WithPrevious(old *Set) BuildOption { return func(c *buildConfig) { c.previous = old } }

// WithRand sets the source of back-off jitter, a function returning values
// in [0, 1); tests use it for exact timings.
func WithRand(f func() float64) BuildOption { return func(c *buildConfig) { c.rnd = f } }

// Set is the merged Resiliency configuration of one app, and the owner of
// the live circuit breakers and retry budgets. It is safe for concurrent
// use; a nil *Set hands out nil Policies (run once, no policy).
type Set struct {
	appID  string
	c      *compiled
	cfg    buildConfig
	loaded []string
	last   Metadata // the last document merged, Dapr's label for every target

	mu       sync.Mutex
	breakers map[string]*breaker // policy name + "\x00" + target key
	budgets  map[string]*budget  // target key
	policies map[string]*Policy  // target key
	// components are the component targets' policies again, by a key that
	// costs no allocation to look up (every state, pub/sub and binding
	// operation asks).
	components map[componentKey]*Policy
	// actorBreakers are the per-actor breakers of actor types with
	// circuitBreakerScope id or both, by type.
	actorBreakers map[string]*lruBreakers
}

// Build merges the documents that apply to appID (scopes) in order, later
// definitions of a name replacing earlier ones, validates the result and
// returns the Set. Documents whose scopes leave appID out are ignored.
func Build(appID string, docs []*Resiliency, opts ...BuildOption) (*Set, error) {
	cfg := buildConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	if cfg.rnd == nil {
		cfg.rnd = rand.Float64
	}
	var in []*Resiliency
	var loaded []string
	for _, d := range docs {
		if d == nil {
			continue
		}
		if !d.AppliesTo(appID) {
			cfg.log.Debug("resiliency document not scoped to this app; ignored",
				"file", d.File, "name", d.Metadata.Name, "app_id", appID)
			continue
		}
		in = append(in, d)
		loaded = append(loaded, d.Metadata.Name)
	}
	c, err := compileAll(in)
	if err != nil {
		return nil, err
	}
	s := &Set{
		appID: appID, c: c, cfg: cfg, loaded: loaded,
		breakers:   map[string]*breaker{},
		budgets:    map[string]*budget{},
		policies:   map[string]*Policy{},
		components: map[componentKey]*Policy{},
	}
	if old := cfg.previous; old != nil {
		old.mu.Lock()
		for key, b := range old.breakers {
			name, _, _ := strings.Cut(key, "\x00")
			if t, ok := c.breakers[name]; ok && t.same(b.tmpl) {
				s.breakers[key] = b
			}
		}
		if old.cfg.budget == cfg.budget {
			for key, b := range old.budgets {
				s.budgets[key] = b
			}
		}
		old.mu.Unlock()
	}
	if len(in) > 0 {
		s.last = in[len(in)-1].Metadata
	}
	if cfg.hooks.Loaded != nil {
		for _, d := range in {
			cfg.hooks.Loaded(d.Metadata.Name, d.Metadata.Namespace)
		}
	}
	return s, nil
}

// Loaded returns the names of the documents in effect, in merge order.
func (s *Set) Loaded() []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s.loaded...)
}

// ComponentKind is a component's building block as Dapr's Default…Policy
// names spell it.
type ComponentKind string

// Component kinds.
const (
	Statestore    ComponentKind = "Statestore"
	Pubsub        ComponentKind = "Pubsub"
	Binding       ComponentKind = "Binding"
	Secretstore   ComponentKind = "Secretstore"
	Configuration ComponentKind = "Configuration"
	Lock          ComponentKind = "Lock"
	Crypto        ComponentKind = "Crypto"
	Conversation  ComponentKind = "Conversation"
)

// KindOf maps a component's spec.type ("state.redis") to its kind;
// unknown prefixes return "".
func KindOf(componentType string) ComponentKind {
	prefix, _, _ := strings.Cut(componentType, ".")
	switch prefix {
	case "state":
		return Statestore
	case "pubsub":
		return Pubsub
	case "bindings":
		return Binding
	case "secretstores":
		return Secretstore
	case "configuration":
		return Configuration
	case "lock":
		return Lock
	case "crypto":
		return Crypto
	case "conversation":
		return Conversation
	}
	return ""
}

// ForApp returns the policy for service invocation of appID: the policies
// spec.targets.apps names for it or, if it is not listed, the
// DefaultApp…Policy / Default…Policy ones. Nil if none apply.
func (s *Set) ForApp(appID string) *Policy {
	if s == nil {
		return nil
	}
	// Every invocation asks: the policy, once made, is found without
	// formatting its label again.
	if p, ok := s.made("app/" + appID); ok {
		return p
	}
	names, ok := s.c.apps[appID]
	return s.policy("app/"+appID, fmt.Sprintf("app %q", appID), "app_"+appID, Outbound, names, ok, "App")
}

// made returns the policy made earlier for key, if any.
func (s *Set) made(key string) (*Policy, bool) {
	s.mu.Lock()
	p, ok := s.policies[key]
	s.mu.Unlock()
	return p, ok
}

// defaultActorBreakers is how many actors of a type keep a circuit breaker
// with circuitBreakerScope id when circuitBreakerCacheSize is not set
// (Dapr's default).
const defaultActorBreakers = 5000

// ForActor returns the policy for calls of the actor actorType/actorID:
// the policies spec.targets.actors names for its type or, if the type is
// not listed, the DefaultActor…/Default… ones. The circuit breaker is kept
// per type, or per actor with circuitBreakerScope id (one breaker per actor
// then, for the circuitBreakerCacheSize actors called last), or both with
// both: a call is refused while its actor's or its type's is open, and its
// failure counts for both (as Dapr's docs describe "both").
func (s *Set) ForActor(actorType, actorID string) *Policy {
	if s == nil {
		return nil
	}
	a, ok := s.c.actors[actorType]
	// Every actor call asks: the type's policy, once made, is found
	// without formatting its label again.
	p, made := s.made("actor/" + actorType)
	if !made {
		p = s.policy("actor/"+actorType, fmt.Sprintf("actor type %q", actorType), "actor_"+actorType, Outbound,
			PolicyNames{Timeout: a.Timeout, Retry: a.Retry, CircuitBreaker: a.CircuitBreaker}, ok, "Actor")
	}
	if p == nil || p.breaker == nil || (a.CircuitBreakerScope != "id" && a.CircuitBreakerScope != "both") {
		return p
	}
	size := a.CircuitBreakerCacheSize
	if size <= 0 {
		size = defaultActorBreakers
	}
	own := *p
	own.target = fmt.Sprintf("actor %q of type %q", actorID, actorType)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.actorBreakers == nil {
		s.actorBreakers = map[string]*lruBreakers{}
	}
	lb := s.actorBreakers[actorType]
	if lb == nil {
		lb = &lruBreakers{order: list.New(), byID: map[string]*list.Element{}}
		s.actorBreakers[actorType] = lb
	}
	own.breaker = lb.get(actorID, size, func() *breaker { return newBreaker(p.breaker.tmpl, own.target, &s.cfg.hooks) })
	if a.CircuitBreakerScope == "both" {
		own.typeBreaker = p.breaker
	}
	return &own
}

// lruBreakers keeps the breakers of the actors of one type called last.
type lruBreakers struct {
	order *list.List // of *actorBreaker, most recent first
	byID  map[string]*list.Element
}

type actorBreaker struct {
	id string
	b  *breaker
}

func (l *lruBreakers) get(id string, size int, mk func() *breaker) *breaker {
	if e, ok := l.byID[id]; ok {
		l.order.MoveToFront(e)
		return e.Value.(*actorBreaker).b
	}
	ab := &actorBreaker{id: id, b: mk()}
	l.byID[id] = l.order.PushFront(ab)
	for l.order.Len() > size {
		last := l.order.Back()
		l.order.Remove(last)
		delete(l.byID, last.Value.(*actorBreaker).id)
	}
	return ab.b
}

// ForComponentOutbound returns the policy for calls from the sidecar to a
// component (state store, publish, output binding...). Defaults are looked
// up most specific first: Default<Kind>ComponentOutbound…,
// DefaultComponentOutbound…, DefaultComponent…, Default…Policy.
func (s *Set) ForComponentOutbound(name string, kind ComponentKind) *Policy {
	return s.forComponent(name, kind, "Outbound")
}

// ForComponentInbound returns the policy for deliveries from a component to
// the app (pub/sub messages, input bindings), with defaults as for
// ForComponentOutbound but Inbound.
func (s *Set) ForComponentInbound(name string, kind ComponentKind) *Policy {
	return s.forComponent(name, kind, "Inbound")
}

func (s *Set) forComponent(name string, kind ComponentKind, dir string) *Policy {
	if s == nil {
		return nil
	}
	ck := componentKey{name: name, kind: kind, inbound: dir == "Inbound"}
	s.mu.Lock()
	p, made := s.components[ck]
	s.mu.Unlock()
	if made {
		return p
	}
	cp, ok := s.c.comps[name]
	names := cp.Outbound
	if dir == "Inbound" {
		names = cp.Inbound
	}
	levels := []string{string(kind) + "Component" + dir, "Component" + dir, "Component"}
	if kind == "" {
		levels = levels[1:]
	}
	key := "component/" + name + "/" + strings.ToLower(dir) + "/" + string(kind)
	label := fmt.Sprintf("component %q (%s)", name, strings.ToLower(dir))
	p = s.policy(key, label, string(kind)+"_"+name, strings.ToLower(dir), names, ok, levels...)
	s.mu.Lock()
	s.components[ck] = p
	s.mu.Unlock()
	return p
}

// componentKey names a component target: its name, kind and direction.
type componentKey struct {
	name    string
	kind    ComponentKind
	inbound bool
}

// BuiltIn returns one of Dapr's built-in retry policies
// (BuiltInServiceRetries...), as overridden by the documents. It has no
// timeout or breaker.
func (s *Set) BuiltIn(name string) *Policy {
	if s == nil {
		return nil
	}
	// A short key: found without allocating (up to 32 bytes).
	if p, ok := s.made("b/" + name); ok {
		return p
	}
	return s.policy("b/"+name, name, "", "", PolicyNames{Retry: name}, true)
}

// policy returns the cached Policy for a target, building it on first use.
// explicit says the target is listed in spec.targets: then only its own
// names apply, as in Dapr; otherwise each kind falls back to the defaults.
// metricTarget and direction make the policy's Scope; an empty
// metricTarget (Dapr's built-in retries) reports no Applied or Activated.
func (s *Set) policy(key, label, metricTarget, direction string, names PolicyNames, explicit bool, levels ...string) *Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.policies[key]; ok {
		return p
	}
	if !explicit {
		names = PolicyNames{
			Timeout:        defaultName(s.c.timeouts, "Timeout", levels),
			Retry:          defaultName(s.c.retries, "Retry", levels),
			CircuitBreaker: defaultName(s.c.breakers, "CircuitBreaker", levels),
		}
	}
	p := &Policy{target: label, hooks: &s.cfg.hooks, rnd: s.cfg.rnd}
	if metricTarget != "" {
		p.scope = &Scope{Name: s.last.Name, Namespace: s.last.Namespace, Target: metricTarget, Direction: direction}
	}
	if names.Timeout != "" {
		p.timeout = s.c.timeouts[names.Timeout]
		p.timeoutName = names.Timeout
	}
	if r := s.c.retries[names.Retry]; names.Retry != "" && r != nil {
		p.retry = r
		if !s.cfg.budget.Unlimited {
			b := s.budgets[key]
			if b == nil {
				b = newBudget(s.cfg.budget)
				s.budgets[key] = b
			}
			p.budget = b
		}
	}
	if t := s.c.breakers[names.CircuitBreaker]; names.CircuitBreaker != "" && t != nil {
		bk := names.CircuitBreaker + "\x00" + key
		b := s.breakers[bk]
		if b == nil {
			b = newBreaker(t, label, &s.cfg.hooks)
			s.breakers[bk] = b
		}
		p.breaker = b
	}
	if p.timeout == 0 && p.retry == nil && p.breaker == nil {
		p = nil
	}
	s.policies[key] = p
	return p
}

// defaultName finds the most specific Default<level><kind>Policy defined.
func defaultName[V any](defined map[string]V, kind string, levels []string) string {
	for _, l := range append(levels, "") {
		n := "Default" + l + kind + "Policy"
		if _, ok := defined[n]; ok {
			return n
		}
	}
	return ""
}
