package resilient

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/resiliency"
)

func TestResolverEjectsAndForgets(t *testing.T) {
	ctx := context.Background()
	req := resolve.Request{AppID: "pool"}
	inner := &fakeResolver{addrs: []string{"a:1", "b:1"}}
	var returned []string
	r := NewResolver(inner, ResolverOptions{Resync: time.Nanosecond, Ejection: resiliency.EjectorConfig{
		ConsecutiveFailures: 2, BaseEjection: time.Hour,
		OnReturn: func(addr string) { returned = append(returned, addr) },
	}})
	resolveN := func(n int) []string {
		var out []string
		for range n {
			a, err := r.Resolve(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, a)
		}
		return out
	}
	if got := resolveN(2); !slices.Equal(got, []string{"a:1", "b:1"}) {
		t.Fatalf("round robin = %v", got)
	}
	boom := errors.New("connection reset")
	r.Report(req, "b:1", boom)
	r.Report(req, "b:1", boom)
	if got := r.Ejected(req); !slices.Equal(got, []string{"b:1"}) {
		t.Fatalf("ejected = %v, want [b:1]", got)
	}
	for _, a := range resolveN(5) {
		if a != "a:1" {
			t.Fatalf("resolved %s, an ejected instance", a)
		}
	}
	// b goes away: it is forgotten (and counted as returned), and the
	// new instance c is in rotation.
	inner.mu.Lock()
	inner.addrs = []string{"a:1", "c:1"}
	inner.mu.Unlock()
	got := resolveN(4)
	if !slices.Contains(got, "c:1") || slices.Contains(got, "b:1") {
		t.Errorf("after b left: resolved %v, want a and c", got)
	}
	if !slices.Equal(returned, []string{"b:1"}) || r.ejected.Load() != 0 {
		t.Errorf("returned = %v, ejected count %d; want b forgotten", returned, r.ejected.Load())
	}
}

func TestResolverRecordsPicks(t *testing.T) {
	for _, disabled := range []bool{false, true} {
		r := NewResolver(&fakeResolver{addrs: []string{"a:1"}}, ResolverOptions{Disabled: disabled})
		rec := &recorder{}
		if _, err := r.Resolve(withRecorder(context.Background(), rec), resolve.Request{AppID: "x"}); err != nil {
			t.Fatal(err)
		}
		if got := rec.list(); len(got) != 1 || got[0].addr != "a:1" || got[0].req.AppID != "x" {
			t.Errorf("disabled=%v: recorded %v", disabled, got)
		}
	}
}
