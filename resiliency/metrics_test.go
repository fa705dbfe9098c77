package resiliency

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// metricLog records Applied, Activated and Loaded calls as strings.
type metricLog struct {
	mu  sync.Mutex
	log []string
}

func (m *metricLog) add(s string) { m.mu.Lock(); m.log = append(m.log, s); m.mu.Unlock() }

func (m *metricLog) take() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.log
	m.log = nil
	return out
}

func (m *metricLog) hooks() Hooks {
	f := func(what string) func(Scope, PolicyKind, string) {
		return func(s Scope, k PolicyKind, status string) {
			m.add(fmt.Sprintf("%s %s/%s %s %s %s %s", what, s.Namespace, s.Name, s.Target, s.Direction, k, status))
		}
	}
	return Hooks{
		Applied:   f("applied"),
		Activated: f("activated"),
		Loaded:    func(name, ns string) { m.add("loaded " + ns + "/" + name) },
	}
}

// TestMetricHooksBreaker follows daprd's resiliency/apps/defaultcircuitbreaker
// case: the breaker's state is reported as each call starts, and an
// activation when a call changed it.
func TestMetricHooksBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ml := &metricLog{}
		doc := mustParse(t, "a.yaml", "kind: Resiliency\nmetadata: {name: first}\nspec: {}")
		cb := mustParse(t, "b.yaml", "kind: Resiliency\nmetadata: {name: myres, namespace: ns}\nspec:\n"+
			indent("policies: {circuitBreakers: {cb: {maxRequests: 1, timeout: 5s, trip: consecutiveFailures >= 3}}}\ntargets: {apps: {server: {circuitBreaker: cb}}}"))
		s, err := Build("me", []*Resiliency{doc, cb}, WithHooks(ml.hooks()))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ml.take(), []string{"loaded /first", "loaded ns/myres"}; !slices.Equal(got, want) {
			t.Fatalf("Build reported %q, want %q", got, want)
		}
		const scope = "ns/myres app_server outbound circuitbreaker "
		ctx := t.Context()
		f := failing(errBoom, errBoom, errBoom, nil)
		for range 4 { // three failures open the breaker; the fourth is rejected
			_, _ = Do(ctx, s.ForApp("server"), f.op)
		}
		want := []string{
			"applied " + scope + "closed", "applied " + scope + "closed", "applied " + scope + "closed",
			"activated " + scope + "open",
			"applied " + scope + "open",
		}
		if got := ml.take(); !slices.Equal(got, want) {
			t.Fatalf("while opening:\n got %q\nwant %q", got, want)
		}
		time.Sleep(5*time.Second + time.Millisecond)
		if _, err := Do(ctx, s.ForApp("server"), f.op); err != nil {
			t.Fatalf("trial call: %v", err)
		}
		want = []string{"applied " + scope + "half-open", "activated " + scope + "closed"}
		if got := ml.take(); !slices.Equal(got, want) {
			t.Fatalf("trial call:\n got %q\nwant %q", got, want)
		}
	})
}

// TestMetricHooksRetryTimeout: retry and timeout are reported applied once
// per call; a retry activates on each retry, a timeout once per call.
func TestMetricHooksRetryTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ml := &metricLog{}
		s := buildSet(t, "policies: {timeouts: {t: 1s}, retries: {r: {policy: constant, duration: 10ms, maxRetries: 2}}}\n"+
			"targets: {components: {store: {outbound: {timeout: t, retry: r}}}}", WithHooks(ml.hooks()))
		ml.take()
		slow := func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() }
		if _, err := Do(t.Context(), s.ForComponentOutbound("store", Statestore), slow); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a timeout", err)
		}
		const sc = "/ Statestore_store outbound "
		want := []string{
			"applied " + sc + "timeout ", "applied " + sc + "retry ",
			"activated " + sc + "timeout ", "activated " + sc + "retry ", "activated " + sc + "retry ",
		}
		if got := ml.take(); !slices.Equal(got, want) {
			t.Fatalf("\n got %q\nwant %q", got, want)
		}
		// Dapr's built-in retries report nothing.
		_, _ = Do(t.Context(), s.BuiltIn(BuiltInServiceRetries), failing(nil).op)
		if got := ml.take(); len(got) != 0 {
			t.Errorf("built-in policy reported %q", got)
		}
	})
}
