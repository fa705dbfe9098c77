package main

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	opclient "github.com/tandemrun/tandem/operator/client"
)

func opComponent(name, typ string, scopes ...string) opclient.Resource {
	sc := ""
	if len(scopes) > 0 {
		sc = fmt.Sprintf(`,"scopes":[%q]`, scopes[0])
	}
	return opclient.Resource{Kind: opclient.Components, Name: name, Namespace: "default", JSON: []byte(fmt.Sprintf(
		`{"apiVersion":"dapr.io/v1alpha1","kind":"Component","metadata":{"name":%q,"namespace":"default"},"spec":{"type":%q,"version":"v1"}%s}`, name, typ, sc))}
}

func opSubscription(name, topic string) opclient.Resource {
	return opclient.Resource{Kind: opclient.Subscriptions, Name: name, Namespace: "default", JSON: []byte(fmt.Sprintf(
		`{"apiVersion":"dapr.io/v2alpha1","kind":"Subscription","metadata":{"name":%q},"spec":{"pubsubname":"ps","topic":%q,"routes":{"default":"/a"}}}`, name, topic))}
}

// nextChange waits for the change r publishes.
func nextChange(t *testing.T, r *operatorResources) components.Change {
	t.Helper()
	select {
	case ch := <-r.changes:
		return ch
	case <-time.After(5 * time.Second):
		t.Fatal("no change published")
		return components.Change{}
	}
}

// TestOperatorResourcesMirror: snapshots and events become the same
// components.Change the folder watch sends, scopes applied; an event that
// changes nothing sends nothing.
func TestOperatorResourcesMirror(t *testing.T) {
	r := newOperatorResources(nil, "myapp", slog.New(slog.DiscardHandler))
	ctx := t.Context()
	comps := r.watch(ctx, opclient.Components, 0)
	subs := r.watch(ctx, opclient.Subscriptions, 0)

	go comps.Snapshot([]opclient.Resource{opComponent("store", "state.in-memory"), opComponent("other", "state.in-memory", "otherapp")})
	ch := nextChange(t, r)
	if len(ch.Set.Components) != 1 || ch.Set.Components[0].Name != "store" || len(ch.Events) != 1 || ch.Events[0].Op != components.Added {
		t.Fatalf("snapshot change = %+v", ch)
	}

	go subs.Event(opclient.Event{Type: opclient.Created, Resource: opSubscription("s1", "a")})
	ch = nextChange(t, r)
	if len(ch.Set.Subscriptions) != 1 || ch.Set.Subscriptions[0].Topic != "a" || len(ch.Set.Components) != 1 {
		t.Fatalf("subscription created: %+v", ch.Set)
	}

	// The same subscription again: no change. Then a real update.
	done := make(chan struct{})
	go func() {
		subs.Event(opclient.Event{Type: opclient.Updated, Resource: opSubscription("s1", "a")})
		subs.Event(opclient.Event{Type: opclient.Updated, Resource: opSubscription("s1", "b")})
		close(done)
	}()
	ch = nextChange(t, r)
	<-done
	if ch.Set.Subscriptions[0].Topic != "b" || len(ch.Events) != 1 || ch.Events[0].Op != components.Changed {
		t.Fatalf("subscription updated: %+v %+v", ch.Set.Subscriptions, ch.Events)
	}

	go comps.Event(opclient.Event{Type: opclient.Deleted, Resource: opComponent("store", "state.in-memory")})
	ch = nextChange(t, r)
	if len(ch.Set.Components) != 0 || ch.Events[0].Op != components.Removed {
		t.Fatalf("component deleted: %+v", ch)
	}

	// A component rescoped away from the app is removed too.
	go comps.Event(opclient.Event{Type: opclient.Created, Resource: opComponent("x", "pubsub.in-memory")})
	if ch = nextChange(t, r); len(ch.Set.Components) != 1 {
		t.Fatalf("x not added: %+v", ch.Set)
	}
	go comps.Event(opclient.Event{Type: opclient.Updated, Resource: opComponent("x", "pubsub.in-memory", "otherapp")})
	if ch = nextChange(t, r); len(ch.Set.Components) != 0 {
		t.Fatalf("x kept after being scoped to another app: %+v", ch.Set)
	}

	eps := r.watch(ctx, opclient.HTTPEndpoints, 0)
	go eps.Event(opclient.Event{Type: opclient.Created, Resource: opclient.Resource{Kind: opclient.HTTPEndpoints, Name: "ep",
		JSON: []byte(`{"apiVersion":"dapr.io/v1alpha1","kind":"HTTPEndpoint","metadata":{"name":"ep"},"spec":{"baseUrl":"http://localhost:1234"}}`)}})
	if ch = nextChange(t, r); len(ch.Set.HTTPEndpoints) != 1 || ch.Set.HTTPEndpoints[0].Name != "ep" {
		t.Fatalf("HTTPEndpoint not added: %+v", ch.Set)
	}
}

// TestPublishStopsWithContext: a change nobody takes does not block once
// the context ends.
func TestPublishStopsWithContext(t *testing.T) {
	r := newOperatorResources(nil, "myapp", slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r.watch(ctx, opclient.Components, 0).Snapshot([]opclient.Resource{opComponent("a", "state.in-memory")})
	if len(r.current.Components) != 0 {
		t.Fatal("a change that was not taken became current")
	}
}

// TestConfigWatch: only a change to the sidecar's own Configuration
// restarts it.
func TestConfigWatch(t *testing.T) {
	cfg := func(name, rate string) opclient.Resource {
		return opclient.Resource{Kind: opclient.Configurations, Name: name, JSON: []byte(fmt.Sprintf(
			`{"apiVersion":"dapr.io/v1alpha1","kind":"Configuration","metadata":{"name":%q},"spec":{"tracing":{"samplingRate":%q}}}`, name, rate))}
	}
	loaded := specOf(cfg("appconfig", "0").JSON)
	tests := []struct {
		name     string
		config   []string
		ev       opclient.Event
		restarts bool
	}{
		{"own, changed", []string{"appconfig"}, opclient.Event{Type: opclient.Updated, Resource: cfg("appconfig", "1")}, true},
		{"own, unchanged", []string{"appconfig"}, opclient.Event{Type: opclient.Updated, Resource: cfg("appconfig", "0")}, false},
		{"own, deleted", []string{"appconfig"}, opclient.Event{Type: opclient.Deleted, Resource: cfg("appconfig", "0")}, true},
		{"another app's", []string{"appconfig"}, opclient.Event{Type: opclient.Created, Resource: cfg("other", "1")}, false},
		{"no --config", nil, opclient.Event{Type: opclient.Created, Resource: cfg("appconfig", "1")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			restarted := false
			o := &Options{ResourceFlags: ResourceFlags{ConfigPaths: tt.config}}
			configWatch(o, loaded, func() { restarted = true }, slog.New(slog.DiscardHandler)).Event(tt.ev)
			if restarted != tt.restarts {
				t.Fatalf("restarted = %v, want %v", restarted, tt.restarts)
			}
		})
	}
}

// TestMirrorOrder: daprd's order, which the metadata API shows: a resource
// added or changed goes last; an unchanged one keeps its place, also
// across a fresh listing.
func TestMirrorOrder(t *testing.T) {
	names := func(list []opclient.Resource) (out []string) {
		for _, r := range list {
			out = append(out, r.Name+"="+string(specOf(r.JSON)))
		}
		return out
	}
	a, b, c := opSubscription("a", "1"), opSubscription("b", "1"), opSubscription("c", "1")
	list := upsert(upsert(upsert(nil, a), b), c)
	list = upsert(list, opSubscription("a", "1")) // unchanged: stays first
	list = upsert(list, opSubscription("b", "2")) // changed: goes last
	want := `[a={"pubsubname":"ps","routes":{"default":"/a"},"topic":"1"} c={"pubsubname":"ps","routes":{"default":"/a"},"topic":"1"} b={"pubsubname":"ps","routes":{"default":"/a"},"topic":"2"}]`
	if got := fmt.Sprint(names(list)); got != want {
		t.Fatalf("after updates: %s\nwant %s", got, want)
	}
	// A listing in another order, with a changed and a new one.
	list = reconcile(list, []opclient.Resource{opSubscription("d", "1"), opSubscription("b", "2"), opSubscription("a", "9")})
	if got := fmt.Sprint(names(list)); got != `[b={"pubsubname":"ps","routes":{"default":"/a"},"topic":"2"} d={"pubsubname":"ps","routes":{"default":"/a"},"topic":"1"} a={"pubsubname":"ps","routes":{"default":"/a"},"topic":"9"}]` {
		t.Fatalf("after reconcile: %s", got)
	}
}
