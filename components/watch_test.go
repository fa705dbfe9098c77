package components

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func fakeComp(name, v string) string {
	return `apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: ` + name + `}
spec:
  type: state.fake
  metadata:
  - {name: v, value: "` + v + `"}
`
}

const subYAML = `apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: orders}
spec: {pubsubname: p, topic: orders, routes: {default: /orders}}
`

func TestWatchAppliesChanges(t *testing.T) {
	dir := writeDir(t, map[string]string{"db.yaml": fakeComp("db", "1"), "sub.yaml": subYAML})
	write := func(name, content string) {
		t.Helper()
		// Write to a temp file and rename, as editors and kubectl do.
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	set, err := Load([]string{dir}, "app")
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeKind()
	m := newTestManager(t, f, ManagerOptions{Grace: time.Millisecond})
	m.Apply(set.Components)
	wait := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wait()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := Watch(ctx, []string{dir}, Filter{AppID: "app"}, 10*time.Millisecond, set)
	next := func(want ...string) Change {
		t.Helper()
		select {
		case ch := <-changes:
			var got []string
			for _, e := range ch.Events {
				got = append(got, e.Op.String()+" "+e.Kind+"/"+e.Name)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("events %q, want %q (errors: %v)", got, want, ch.Errors)
			}
			m.Apply(ch.Set.Components)
			return ch
		case <-time.After(5 * time.Second):
			t.Fatalf("no change seen; want %q", want)
		}
		return Change{}
	}
	served := func(name string) string {
		t.Helper()
		v, _, ok := m.Registry().Get(name)
		if !ok || v == nil {
			return ""
		}
		return v.id
	}

	// Added.
	write("cache.yaml", fakeComp("cache", "1"))
	next("added Component/cache")
	wait()
	if served("cache") != "1" {
		t.Fatal("added component not served")
	}

	// Changed: swapped once the new version is ready.
	write("db.yaml", fakeComp("db", "2"))
	next("changed Component/db")
	wait()
	if served("db") != "2" {
		t.Fatalf("served db v%s, want v2", served("db"))
	}

	// Broken YAML: reported, nothing removed, v2 keeps serving.
	write("db.yaml", "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: db\n")
	ch := next()
	if len(ch.Errors) != 1 || !strings.Contains(ch.Errors[0].Error(), "db.yaml: invalid YAML") {
		t.Fatalf("errors = %v", ch.Errors)
	}
	if _, ok := ch.Set.Component("db"); !ok {
		t.Fatal("the last good db was dropped from the set")
	}
	if served("db") != "2" {
		t.Fatal("broken file replaced the serving component")
	}

	// Valid YAML, invalid component: still the old one.
	write("db.yaml", strings.Replace(fakeComp("db", "3"), "type: state.fake", "version: v1", 1))
	ch = next()
	if len(ch.Errors) != 1 || !strings.Contains(ch.Errors[0].Error(), `component "db": spec.type: missing`) {
		t.Fatalf("errors = %v", ch.Errors)
	}
	if served("db") != "2" {
		t.Fatal("invalid component replaced the serving one")
	}

	// Fixed.
	write("db.yaml", fakeComp("db", "3"))
	ch = next("changed Component/db")
	if len(ch.Errors) != 0 {
		t.Fatalf("errors after the fix: %v", ch.Errors)
	}
	wait()
	if served("db") != "3" {
		t.Fatalf("served db v%s, want v3", served("db"))
	}

	// Subscriptions and other documents are reported too.
	write("sub.yaml", strings.Replace(subYAML, "/orders}", "/orders2}", 1)+"---\napiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata: {name: r}\n")
	next("changed Subscription/orders", "added Resiliency/r")

	// Removed.
	if err := os.Remove(filepath.Join(dir, "cache.yaml")); err != nil {
		t.Fatal(err)
	}
	next("removed Component/cache")
	if _, _, ok := m.Registry().Get("cache"); ok {
		t.Fatal("removed component still served")
	}

	// Quiet when nothing changes.
	select {
	case ch := <-changes:
		t.Fatalf("unexpected change %+v", ch)
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	for range changes { // closed when ctx ends
	}
}

func TestKeepLastGoodOnlyCarriesBrokenResources(t *testing.T) {
	prev := &Set{Components: []Component{
		{Name: "a", Source: "/r/a.yaml"}, {Name: "b", Source: "/r/b.yaml"}, {Name: "c", Source: "/r/c.yaml"},
	}}
	next := &Set{
		Components: []Component{{Name: "c", Source: "/r/c.yaml"}},
		Errors: []*ResourceError{
			{File: "/r/a.yaml", Err: os.ErrPermission},                           // whole file: keep a
			{File: "/r/x.yaml", Kind: KindComponent, Name: "zzz", Field: "spec"}, // unknown name: nothing
		},
	}
	got := keepLastGood(prev, next)
	var names []string
	for _, c := range got.Components {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"c", "a"}) {
		t.Errorf("components = %v, want [c a] (b was deleted cleanly)", names)
	}
	if ev := Diff(prev, got); len(ev) != 1 || ev[0].Op != Removed || ev[0].Name != "b" {
		t.Errorf("Diff = %v", ev)
	}
}

// TestWatchHTTPEndpoints is hot reload of HTTPEndpoint files: added,
// changed, broken (the last good version stays), removed.
func TestWatchHTTPEndpoints(t *testing.T) {
	dir := writeDir(t, nil)
	ep := func(url string) string {
		return "apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: ext}\nspec: {baseUrl: '" + url + "'}\n"
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := Watch(ctx, []string{dir}, Filter{AppID: "app"}, 10*time.Millisecond, &Set{})
	next := func(want string) Change {
		t.Helper()
		select {
		case ch := <-changes:
			var got []string
			for _, e := range ch.Events {
				got = append(got, e.Op.String()+" "+e.Kind+"/"+e.Name)
			}
			if strings.Join(got, ",") != want {
				t.Fatalf("events %q, want %q (errors: %v)", got, want, ch.Errors)
			}
			return ch
		case <-time.After(5 * time.Second):
			t.Fatalf("no change seen; want %q", want)
		}
		return Change{}
	}
	// Written whole (temporary file, then rename): a slow truncate-and-write
	// can be seen as an empty file for two polls, which is a removal.
	write := func(content string) {
		t.Helper()
		tmp := filepath.Join(t.TempDir(), "ep.yaml")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "ep.yaml")); err != nil {
			t.Fatal(err)
		}
	}
	write(ep("http://one"))
	if ch := next("added HTTPEndpoint/ext"); ch.Set.HTTPEndpoints[0].BaseURL != "http://one" {
		t.Errorf("added %+v", ch.Set.HTTPEndpoints)
	}
	write(ep("http://two"))
	if ch := next("changed HTTPEndpoint/ext"); ch.Set.HTTPEndpoints[0].BaseURL != "http://two" {
		t.Errorf("changed %+v", ch.Set.HTTPEndpoints)
	}
	write(ep("ftp://three"))
	if ch := next(""); len(ch.Errors) != 1 || len(ch.Set.HTTPEndpoints) != 1 || ch.Set.HTTPEndpoints[0].BaseURL != "http://two" {
		t.Errorf("broken file: errors %v, endpoints %+v; want the last good version kept", ch.Errors, ch.Set.HTTPEndpoints)
	}
	if err := os.Remove(filepath.Join(dir, "ep.yaml")); err != nil {
		t.Fatal(err)
	}
	if ch := next("removed HTTPEndpoint/ext"); len(ch.Set.HTTPEndpoints) != 0 {
		t.Errorf("removed %+v", ch.Set.HTTPEndpoints)
	}
}

// TestInDaprdOrder: unchanged subscriptions keep their places, changed and
// new ones follow in load order, removed ones are gone.
func TestInDaprdOrder(t *testing.T) {
	sub := func(name, topic string) Subscription {
		return Subscription{Name: name, PubsubName: "p", Topic: topic, Source: name + ".yaml"}
	}
	prev := []Subscription{sub("sub2", "b"), sub("sub3", "c"), sub("gone", "x")}
	next := []Subscription{sub("sub2", "d"), sub("sub3", "c"), sub("sub4", "e")}
	next[1].Source = "moved.yaml" // where it was read from does not count
	var got []string
	for _, s := range InDaprdOrder(prev, next) {
		got = append(got, s.Name+"/"+s.Topic)
	}
	if want := []string{"sub3/c", "sub2/d", "sub4/e"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}
