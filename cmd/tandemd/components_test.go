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

	"github.com/tandemrun/tandem/components/state/postgresql"
	"github.com/tandemrun/tandem/config"
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
	rc := loadComponents(&Options{AppFlags: AppFlags{AppID: "app"}, ResourceFlags: ResourceFlags{ResourcesPaths: []string{dir}}}, slog.New(slog.DiscardHandler))
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
			rc := loadComponents(o, log)
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
