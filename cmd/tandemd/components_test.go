package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state/postgresql"
	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/invoke/resolve"
)

// TestStatePostgresqlByVersion: state.postgresql is built by spec.version,
// since Dapr's v1 and v2 keep different tables.
func TestStatePostgresqlByVersion(t *testing.T) {
	k := stateKind(nil)
	vs, ok := k.Versioned[postgresql.Type]
	if !ok {
		t.Fatalf("%s is not built by version", postgresql.Type)
	}
	for version, v2 := range map[string]bool{"": false, "v1": false, "v2": true} {
		s, err := vs.Build(postgresql.Type, version)
		if err != nil {
			t.Fatalf("version %q: %v", version, err)
		}
		if _, isV2 := s.(*postgresql.StoreV2); isV2 != v2 {
			t.Errorf("version %q built %T", version, s)
		}
	}
	if _, err := vs.Build(postgresql.Type, "v3"); err == nil || !strings.Contains(err.Error(), "v1, v2") {
		t.Errorf("version v3: %v", err)
	}
}

// TestLoadComponentsBrokenFile: a broken resource file at start-up is
// reported and the others still load (it used to drop them all).
func TestLoadComponentsBrokenFile(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a-broken.yaml": "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: 'a/b'}\nspec: {type: state.in-memory}\n",
		"b-good.yaml":   "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: 'good #1'}\nspec: {type: state.in-memory}\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := loadComponents(&Options{AppFlags: AppFlags{AppID: "app"}, ResourceFlags: ResourceFlags{ResourcesPaths: []string{dir}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got := rc.states.Registry().Names(); !slices.Equal(got, []string{"good #1"}) {
		t.Fatalf("state stores = %v, want [good #1]", got)
	}
}

// TestWatchResourcesHotReloadFeature: a component file added after start-up
// is loaded unless the Configuration turns HotReload off (daprd's
// hotreload/selfhosted/disabled).
func TestWatchResourcesHotReloadFeature(t *testing.T) {
	const comp = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: %s\nspec:\n  type: state.in-memory\n  version: v1\n"
	for _, tc := range []struct {
		name     string
		features []config.Feature
		want     int
	}{
		{"default on", nil, 2},
		{"disabled", []config.Feature{{Name: "HotReload", Enabled: false}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "a.yaml"), fmt.Appendf(nil, comp, "a"), 0o600); err != nil {
				t.Fatal(err)
			}
			o := &Options{AppFlags: AppFlags{AppID: "app"}, ResourceFlags: ResourceFlags{ResourcesPaths: []string{dir}}}
			log := slog.New(slog.DiscardHandler)
			rc, err := loadComponents(o, log)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			cfg := config.Default()
			cfg.Spec.Features = tc.features
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if w, ok := resourcesWatch(cfg, rc, o, log); ok {
				done := make(chan struct{})
				defer func() { cancel(); <-done }()
				go func() { defer close(done); _ = w.Run(ctx) }()
			}
			time.Sleep(200 * time.Millisecond) // the watcher has its first look
			if err := os.WriteFile(filepath.Join(dir, "b.yaml"), fmt.Appendf(nil, comp, "b"), 0o600); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(4 * reloadInterval)
			for len(rc.Registered()) != tc.want && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(2 * reloadInterval) // and it stays so
			if got := len(rc.Registered()); got != tc.want {
				t.Fatalf("%d components registered, want %d", got, tc.want)
			}
		})
	}
}

// TestComponentsFatal: what stops daprd stops tandemd: two components with
// one name (at start-up: loadComponents fails; on a reload: the fatal
// task), and a component without spec.ignoreErrors that cannot work as
// written, on a reload too; with ignoreErrors it is only taken out.
func TestComponentsFatal(t *testing.T) {
	const comp = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: %s\nspec:\n  type: %s\n  version: v1\n  ignoreErrors: %t\n"
	write := func(t *testing.T, dir, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	options := func(dir string) *Options {
		return &Options{AppFlags: AppFlags{AppID: "app"}, ResourceFlags: ResourceFlags{ResourcesPaths: []string{dir}}}
	}

	t.Run("duplicate at start-up", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, fmt.Sprintf(comp, "foo", "state.in-memory", false)+"---\n"+fmt.Sprintf(comp, "foo", "pubsub.in-memory", false))
		_, err := loadComponents(options(dir), log)
		want := "failed to load components: duplicate definition of Component name foo (pubsub.in-memory/v1) with existing foo (state.in-memory/v1)"
		if err == nil || err.Error() != want {
			t.Fatalf("loadComponents = %v, want %q", err, want)
		}
	})

	// A category daprd has no processor for ends the sidecar at start-up,
	// unless the component ignores errors (Dapr's resources/workflow).
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprintf("incorrect type, ignoreErrors %t", ignore), func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, fmt.Sprintf(comp, "myworkflow", "workflow.dapr", ignore))
			rc, err := loadComponents(options(dir), log)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			fctx, fcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer fcancel()
			err = rc.fatalTask().Run(fctx)
			want := "process component myworkflow error: incorrect type workflow.dapr"
			if ignore && err != nil || !ignore && (err == nil || err.Error() != want) {
				t.Fatalf("fatal: %v, want %q (ignoreErrors %t)", err, want, ignore)
			}
			// Failure keeps it for the exit code, even when a signal ends
			// the fatal task's context before it takes the error.
			if got := rc.Failure(); ignore && got != nil || !ignore && (got == nil || got.Error() != want) {
				t.Fatalf("Failure() = %v, want %q (ignoreErrors %t)", got, want, ignore)
			}
		})
	}

	for _, tc := range []struct {
		name, reload string
		want         string // the fatal error's text contains it; "" for none
	}{
		{"duplicate on reload", fmt.Sprintf(comp, "a", "state.in-memory", false) + "---\n" + fmt.Sprintf(comp, "a", "pubsub.in-memory", false),
			"failed to load resources from disk: duplicate definition of Component name a (pubsub.in-memory/v1) with existing a (state.in-memory/v1)"},
		{"broken on reload", fmt.Sprintf(comp, "a", "state.sqlite", false), "a (state.sqlite/v1)"},
		{"broken on reload, ignoreErrors", fmt.Sprintf(comp, "a", "state.sqlite", true), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, fmt.Sprintf(comp, "a", "state.in-memory", false))
			o := options(dir)
			rc, err := loadComponents(o, log)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			ctx, cancel := context.WithCancel(context.Background())
			w, _ := resourcesWatch(config.Default(), rc, o, log)
			done := make(chan struct{})
			defer func() { cancel(); <-done }()
			go func() { defer close(done); _ = w.Run(ctx) }()
			deadline := time.Now().Add(5 * time.Second)
			for len(rc.Registered()) != 1 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			write(t, dir, tc.reload)

			fctx, fcancel := context.WithTimeout(ctx, 5*reloadInterval)
			defer fcancel()
			err = rc.fatalTask().Run(fctx)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("fatal: %v, want none", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("fatal: %v, want one containing %q", err, tc.want)
			case tc.want == "" && len(rc.Registered()) != 0:
				t.Fatalf("registered %v, want none: the broken version takes the old one out", rc.Registered())
			}
		})
	}
}

// TestRegisteredWaitsForSettledPubSub: the metadata API lists a ready
// pub/sub component only once the subscriptions have settled on it; other
// components do not wait.
func TestRegisteredWaitsForSettledPubSub(t *testing.T) {
	dir := t.TempDir()
	body := "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: ps}\nspec: {type: pubsub.in-memory, version: v1}\n---\n" +
		"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: st}\nspec: {type: state.in-memory, version: v1}\n"
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	rc, err := loadComponents(&Options{AppFlags: AppFlags{AppID: "app"}, ResourceFlags: ResourceFlags{ResourcesPaths: []string{dir}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	names := func() []string {
		var out []string
		for _, c := range rc.Registered() {
			out = append(out, c.GetName())
		}
		slices.Sort(out)
		return out
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(names()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := names(); !slices.Equal(got, []string{"ps", "st"}) {
		t.Fatalf("registered = %v, want [ps st]", got)
	}
	settled := false
	rc.setOnChange(func() {}, func(name string) bool { return settled || name != "ps" })
	if got := names(); !slices.Equal(got, []string{"st"}) {
		t.Fatalf("registered before ps settled = %v, want [st]", got)
	}
	settled = true
	if got := names(); !slices.Equal(got, []string{"ps", "st"}) {
		t.Fatalf("registered once ps settled = %v, want [ps st]", got)
	}
}

// TestBuiltinKubernetesSecretStore: in Kubernetes mode the secret store
// "kubernetes" is there without being declared, survives every change from
// the operator, gives way to a declared component of that name, and is
// absent with --disable-builtin-k8s-secret-store or in standalone mode.
func TestBuiltinKubernetesSecretStore(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	kube := func(disable bool) *Options {
		o := &Options{AppFlags: AppFlags{AppID: "app"}}
		o.Mode, o.Namespace, o.DisableBuiltinK8sSecretStore = ModeKubernetes, "shop", disable
		return o
	}
	store := func(rc *runtimeComponents) (components.Component, bool) {
		rc.mu.RLock()
		defer rc.mu.RUnlock()
		return rc.set.Component("kubernetes")
	}
	declared := components.Component{Name: "kubernetes", Type: "secretstores.local.env", Version: "v1"}
	other := components.Component{Name: "other", Type: "state.in-memory", Version: "v1"}

	rc, err := startComponents(kube(false), &components.Set{Components: []components.Component{other}}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	c, ok := store(rc)
	if !ok || c.Type != "secretstores.kubernetes" || !c.IgnoreErrors || c.Metadata[0].Value != "shop" {
		t.Fatalf("built-in store %+v, %v", c, ok)
	}
	if rc.env.DefaultSecretStore != "kubernetes" || rc.env.Prefilled != "kubernetes" {
		t.Fatalf("env %+v: secretKeyRef should default to the operator-filled store kubernetes", rc.env)
	}
	rc.apply(&components.Set{Components: []components.Component{declared}})
	if c, _ := store(rc); c.Type != declared.Type {
		t.Fatalf("declared kubernetes component replaced by %+v", c)
	}
	rc.apply(&components.Set{})
	if c, ok := store(rc); !ok || c.Type != "secretstores.kubernetes" {
		t.Fatalf("built-in store gone after a change: %+v", c)
	}

	for name, o := range map[string]*Options{"disabled": kube(true), "standalone": {AppFlags: AppFlags{AppID: "app"}}} {
		rc, err := startComponents(o, &components.Set{}, log)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := store(rc); ok {
			t.Errorf("%s: built-in store present", name)
		}
		rc.Close()
	}
}

// TestNameResolutionDefaultByMode: with no spec.nameResolution the mode
// picks daprd's default (mdns, kubernetes); the Configuration's component
// wins over it.
func TestNameResolutionDefaultByMode(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	self := resolve.Instance{AppID: "app", Namespace: "shop", Address: "127.0.0.1", InternalPort: 50002}
	for _, tc := range []struct {
		mode string
		nr   config.NameResolution
		want string
	}{
		{ModeKubernetes, config.NameResolution{Configuration: map[string]any{"watchEndpointSlices": false}}, "kubernetes"},
		{ModeKubernetes, config.NameResolution{Component: "static", Configuration: map[string]any{"apps": map[string]any{"x": "h:1"}}}, "static"},
		{ModeStandalone, config.NameResolution{Component: "kubernetes", Configuration: map[string]any{"watchEndpointSlices": false}}, "kubernetes"},
	} {
		r, _, component, err := nameResolution(tc.nr, defaultResolver[tc.mode], self, nil, nil, log, log)
		if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		if component != tc.want {
			t.Errorf("%s with %+v: component %s, want %s", tc.mode, tc.nr, component, tc.want)
		}
		_ = r.Close()
	}
	if defaultResolver[ModeStandalone] != "mdns" {
		t.Errorf("standalone default %q, want mdns", defaultResolver[ModeStandalone])
	}
}

// TestActorStorePending: the actor host waits for the store marked
// actorStateStore while it initialises or retries its server, and not for
// other stores.
func TestActorStorePending(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	actorStore := func(name, typ string, md ...components.MetadataItem) components.Component {
		md = append(md, components.MetadataItem{Name: "actorStateStore", Value: "true", HasValue: true})
		return components.Component{Name: name, Type: typ, Version: "v1", Metadata: md, InitTimeout: components.DefaultInitTimeout}
	}
	ready, err := startComponents(&Options{AppFlags: AppFlags{AppID: "app"}}, &components.Set{Components: []components.Component{
		actorStore("mem", "state.in-memory"),
		{Name: "other", Type: "state.postgresql", Version: "v1", IgnoreErrors: true, InitTimeout: components.DefaultInitTimeout, Metadata: []components.MetadataItem{
			{Name: "connectionString", Value: "host=127.0.0.1 port=1 user=x dbname=x connect_timeout=1", HasValue: true}}},
	}}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ready.Close()
	s := &actorStores{rc: ready, log: log}
	deadline := time.Now().Add(10 * time.Second)
	for s.pending() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.pending() {
		t.Fatal("in-memory actor store still pending; an unreachable store without actorStateStore must not be waited for")
	}

	down, err := startComponents(&Options{AppFlags: AppFlags{AppID: "app"}}, &components.Set{Components: []components.Component{
		actorStore("pg", "state.postgresql", components.MetadataItem{Name: "connectionString",
			Value: "host=127.0.0.1 port=1 user=x dbname=x connect_timeout=1", HasValue: true}),
	}}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	s = &actorStores{rc: down, log: log}
	time.Sleep(200 * time.Millisecond)
	if !s.pending() {
		t.Fatal("an actor store whose server is unreachable is not pending")
	}
	if _, ok := s.get(); ok {
		t.Fatal("get returned a store that is not ready")
	}
}
