package resiliency

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// defaultsYAML defines every default level with a distinct timeout, so the
// chosen name can be read back from Timeout().
const defaultsYAML = `
kind: Resiliency
spec:
  policies:
    timeouts:
      DefaultTimeoutPolicy: 1s
      DefaultAppTimeoutPolicy: 2s
      DefaultComponentTimeoutPolicy: 3s
      DefaultComponentOutboundTimeoutPolicy: 4s
      DefaultStatestoreComponentOutboundTimeoutPolicy: 5s
      DefaultPubsubComponentInboundTimeoutPolicy: 6s
      own: 9s
    retries:
      DefaultRetryPolicy: {maxRetries: 1}
      DefaultComponentInboundRetryPolicy: {maxRetries: 2}
    circuitBreakers:
      DefaultCircuitBreakerPolicy: {}
  targets:
    apps:
      listed: {timeout: own}
    components:
      mystore: {inbound: {timeout: own}}
`

func TestDefaultPolicyPrecedence(t *testing.T) {
	s, err := Build("me", []*Resiliency{mustParse(t, "d.yaml", defaultsYAML)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		p          *Policy
		timeout    time.Duration
		maxRetries int // -9: no retry
		breaker    bool
	}{
		{"app not listed", s.ForApp("other"), 2 * time.Second, 1, true},
		{"app listed uses only its own names", s.ForApp("listed"), 9 * time.Second, -9, false},
		{"statestore outbound", s.ForComponentOutbound("s", Statestore), 5 * time.Second, 1, true},
		{"pubsub outbound", s.ForComponentOutbound("p", Pubsub), 4 * time.Second, 1, true},
		{"pubsub inbound", s.ForComponentInbound("p", Pubsub), 6 * time.Second, 2, true},
		{"binding inbound", s.ForComponentInbound("b", Binding), 3 * time.Second, 2, true},
		{"unknown kind outbound", s.ForComponentOutbound("x", ""), 4 * time.Second, 1, true},
		{"listed component, inbound named", s.ForComponentInbound("mystore", Statestore), 9 * time.Second, -9, false},
		{"listed component, outbound empty", s.ForComponentOutbound("mystore", Statestore), 0, -9, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.timeout == 0 && tt.maxRetries == -9 && !tt.breaker {
				if tt.p != nil {
					t.Fatalf("want nil policy, got %+v", tt.p)
				}
				return
			}
			if got := tt.p.Timeout(); got != tt.timeout {
				t.Errorf("timeout = %v, want %v", got, tt.timeout)
			}
			r := tt.p.Retry()
			switch {
			case tt.maxRetries == -9 && r != nil:
				t.Errorf("retry = %+v, want none", r)
			case tt.maxRetries != -9 && (r == nil || r.MaxRetries != tt.maxRetries):
				t.Errorf("retry = %+v, want maxRetries %d", r, tt.maxRetries)
			}
			if _, ok := tt.p.BreakerState(); ok != tt.breaker {
				t.Errorf("breaker = %v, want %v", ok, tt.breaker)
			}
		})
	}
}

func TestPoliciesFoundAgainWithoutAllocating(t *testing.T) {
	s, err := Build("me", []*Resiliency{mustParse(t, "d.yaml", defaultsYAML)})
	if err != nil {
		t.Fatal(err)
	}
	asks := map[string]func() *Policy{
		"app":                func() *Policy { return s.ForApp("other") },
		"component outbound": func() *Policy { return s.ForComponentOutbound("mystatestore", Statestore) },
		"component inbound":  func() *Policy { return s.ForComponentInbound("mystatestore", Statestore) },
		"actor type":         func() *Policy { return s.ForActor("T", "a1") },
		"built-in":           func() *Policy { return s.BuiltIn(BuiltInServiceRetries) },
	}
	for name, ask := range asks {
		first := ask()
		if first == nil || ask() != first {
			t.Errorf("%s: asked twice, got %p then another policy", name, first)
		}
		if n := testing.AllocsPerRun(50, func() { ask() }); n != 0 {
			t.Errorf("%s: %v allocations to find the policy again, want 0", name, n)
		}
	}
	if s.ForComponentInbound("mystatestore", Statestore) == s.ForComponentOutbound("mystatestore", Statestore) {
		t.Error("a component's inbound and outbound calls share a policy")
	}
}

func TestNoPoliciesNilPolicy(t *testing.T) {
	s, err := Build("me", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := s.ForApp("x"); p != nil {
		t.Errorf("ForApp with no documents = %+v, want nil", p)
	}
	var nilSet *Set
	if nilSet.ForApp("x") != nil || nilSet.ForComponentInbound("x", Pubsub) != nil || nilSet.BuiltIn(BuiltInServiceRetries) != nil {
		t.Error("nil Set must hand out nil policies")
	}
	p := s.BuiltIn(BuiltInServiceRetries)
	if r := p.Retry(); r == nil || r.MaxRetries != 3 || r.Duration != time.Second {
		t.Errorf("built-in service retries = %+v", r)
	}
}

func TestMergeAndScopes(t *testing.T) {
	a := mustParse(t, "a.yaml", "kind: Resiliency\nmetadata: {name: a}\nspec: {policies: {timeouts: {t: 1s}, retries: {DaprBuiltInServiceRetries: {maxRetries: 1, duration: 2s}}}, targets: {apps: {x: {timeout: t}}}}")
	b := mustParse(t, "b.yaml", "kind: Resiliency\nmetadata: {name: b}\nspec: {policies: {timeouts: {t: 2s}}}")
	other := mustParse(t, "c.yaml", "kind: Resiliency\nmetadata: {name: c}\nscopes: [someone-else]\nspec: {policies: {timeouts: {t: 7s}}, targets: {apps: {x: {retry: nope}}}}")
	mine := mustParse(t, "d.yaml", "kind: Resiliency\nmetadata: {name: d}\nscopes: [me]\nspec: {targets: {apps: {y: {timeout: t}}}}")
	s, err := Build("me", []*Resiliency{a, b, other, mine})
	if err != nil {
		t.Fatalf("out-of-scope document must be ignored, even if invalid: %v", err)
	}
	if got := s.Loaded(); len(got) != 3 || got[0] != "a" || got[1] != "b" || got[2] != "d" {
		t.Errorf("Loaded = %v", got)
	}
	if got := s.ForApp("x").Timeout(); got != 2*time.Second {
		t.Errorf("later file should win: timeout %v, want 2s", got)
	}
	if got := s.ForApp("y").Timeout(); got != 2*time.Second {
		t.Errorf("cross-file reference: %v", got)
	}
	if r := s.BuiltIn(BuiltInServiceRetries).Retry(); r.MaxRetries != 3 || r.Duration != 2*time.Second {
		t.Errorf("built-in override = %+v; want duration 2s and maxRetries raised to 3", r)
	}
	if _, err := Build("someone-else", []*Resiliency{a, other}); err == nil {
		t.Error("in-scope invalid document must fail Build")
	}
}

func TestKindOf(t *testing.T) {
	for in, want := range map[string]ComponentKind{
		"state.redis": Statestore, "pubsub.kafka": Pubsub, "bindings.http": Binding,
		"secretstores.local.file": Secretstore, "configuration.redis": Configuration,
		"lock.redis": Lock, "crypto.jwks": Crypto, "conversation.echo": Conversation, "middleware.http.x": "",
	} {
		if got := KindOf(in); got != want {
			t.Errorf("KindOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestForActor(t *testing.T) {
	s, err := Build("me", []*Resiliency{mustParse(t, "a.yaml", `
kind: Resiliency
spec:
  policies:
    timeouts:
      DefaultActorTimeoutPolicy: 7s
      fast: 500ms
    retries:
      five: {policy: constant, duration: 10ms, maxRetries: 5}
    circuitBreakers:
      cb: {}
  targets:
    actors:
      abc: {timeout: fast, retry: five}
      byid: {circuitBreaker: cb, circuitBreakerScope: id}
      bytype: {circuitBreaker: cb, circuitBreakerScope: type}
      small: {circuitBreaker: cb, circuitBreakerScope: id, circuitBreakerCacheSize: 2}
`)})
	if err != nil {
		t.Fatal(err)
	}
	if p := s.ForActor("abc", "1"); p.Timeout() != 500*time.Millisecond || p.Retry() == nil || p.Retry().MaxRetries != 5 {
		t.Errorf("listed type: timeout %v retry %+v", p.Timeout(), p.Retry())
	}
	if p := s.ForActor("other", "1"); p.Timeout() != 7*time.Second || p.Retry() != nil {
		t.Errorf("unlisted type: timeout %v retry %+v", p.Timeout(), p.Retry())
	}
	if s.ForActor("byid", "1").breaker == s.ForActor("byid", "2").breaker {
		t.Error("scope id: two actors share a breaker")
	}
	if again := s.ForActor("byid", "1"); again.breaker != s.ForActor("byid", "1").breaker {
		t.Error("scope id: one actor got two breakers")
	}
	if s.ForActor("bytype", "1") != s.ForActor("bytype", "2") {
		t.Error("scope type: two actors of the type have different policies")
	}
	// Only circuitBreakerCacheSize actors keep a breaker.
	first := s.ForActor("small", "0").breaker
	for i := range 3 {
		s.ForActor("small", fmt.Sprint(i))
	}
	if s.ForActor("small", "2").breaker == nil || s.ForActor("small", "0").breaker == first {
		t.Error("scope id with circuitBreakerCacheSize 2: the least recent actor kept its breaker")
	}
	if _, ok := s.ForActor("byid", "1").BreakerState(); !ok {
		t.Error("scope id: no breaker")
	}
}

// Scope both: each call goes through its actor's own breaker and its
// type's. Failures count for both; once the type's breaker is open, every
// actor of the type is refused, though their own breakers are closed.
func TestForActorScopeBoth(t *testing.T) {
	s, err := Build("me", []*Resiliency{mustParse(t, "a.yaml", `
kind: Resiliency
spec:
  policies:
    circuitBreakers:
      cb: {maxRequests: 1, timeout: 1h, trip: consecutiveFailures >= 3}
  targets:
    actors:
      both: {circuitBreaker: cb, circuitBreakerScope: both}
`)})
	if err != nil {
		t.Fatal(err)
	}
	x, y := s.ForActor("both", "x"), s.ForActor("both", "y")
	if x.breaker == y.breaker || x.typeBreaker == nil || x.typeBreaker != y.typeBreaker {
		t.Fatal("scope both: want one breaker per actor and one shared by the type")
	}
	boom := errors.New("boom")
	fail := func(context.Context) (int, error) { return 0, boom }
	ok := func(context.Context) (int, error) { return 1, nil }
	for range 3 {
		if _, err := Do(t.Context(), s.ForActor("both", "hot"), fail); !errors.Is(err, boom) {
			t.Fatalf("failing call: %v", err)
		}
	}
	if st, _ := s.ForActor("both", "hot").BreakerState(); st != StateOpen {
		t.Fatalf("the failing actor's breaker is %s, want open", st)
	}
	var open *BreakerOpenError
	if _, err := Do(t.Context(), s.ForActor("both", "cold"), ok); !errors.As(err, &open) {
		t.Fatalf("an actor of a type whose breaker tripped: %v, want refused", err)
	}
	if st, _ := s.ForActor("both", "cold").BreakerState(); st != StateClosed {
		t.Errorf("the other actor's own breaker is %s, want closed", st)
	}
}

// BenchmarkForActor is the lookup every actor call makes: a type with a
// policy and one with none (the defaults).
func BenchmarkForActor(b *testing.B) {
	s, err := Build("me", []*Resiliency{mustParse(b, "a.yaml", `
kind: Resiliency
spec:
  policies:
    timeouts:
      fast: 500ms
  targets:
    actors:
      abc: {timeout: fast}
`)})
	if err != nil {
		b.Fatal(err)
	}
	for _, typ := range []string{"abc", "other"} {
		b.Run("type="+typ, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.ForActor(typ, "1")
			}
		})
	}
}
