package secretstores_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
	"github.com/tandemrun/tandem/components/secretstores/builtin"
)

// TestSecretKeyRefThroughLoadedStore loads a secret store and a component
// that reads its password from it, the component first, and checks that
// the component waits for the store and then receives the secret.
func TestSecretKeyRefThroughLoadedStore(t *testing.T) {
	dir := t.TempDir()
	secretsFile := filepath.Join(dir, "secrets.json")
	if err := os.WriteFile(secretsFile, []byte(`{"db": {"password": "pa55-value"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"a-state.yaml": `apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: statestore}
spec:
  type: state.needs-secret
  metadata:
  - name: password
    secretKeyRef: {name: "db:password"}
auth: {secretStore: local}
`,
		"b-secrets.yaml": `apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: local}
spec:
  type: secretstores.local.file
  metadata:
  - {name: secretsFile, value: "` + secretsFile + `"}
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := components.Load([]string{dir}, "app")
	if err != nil {
		t.Fatal(err)
	}

	secrets := components.NewManager(builtin.Kind(), components.ManagerOptions{Resolve: components.Env{AppID: "app"}.Resolve})
	defer secrets.Close()
	env := components.Env{AppID: "app", Secret: secretstores.Resolver(secrets.Registry())}

	var mu sync.Mutex
	var got []string
	state := components.NewManager(components.Kind[string]{
		Category: "state",
		New:      func(string) (string, bool) { return "instance", true },
		Init: func(_ context.Context, _ string, md components.Metadata) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, md.Properties["password"])
			return nil
		},
	}, components.ManagerOptions{Resolve: env.Resolve, MinBackoff: 10 * time.Millisecond})
	defer state.Close()

	// The state store starts first: its secret store is not loaded yet.
	state.Apply(set.Components)
	time.Sleep(30 * time.Millisecond)
	_, st, _ := state.Registry().Get("statestore")
	if st.State != components.StateRetrying || !errors.Is(st.Err, components.ErrNotFound) || strings.Contains(st.Err.Error(), "pa55") {
		t.Fatalf("before the secret store: %+v", st)
	}
	secrets.Apply(set.Components)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := secrets.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := state.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []string{"pa55-value"}) {
		t.Errorf("Init saw passwords %q", got)
	}
	if l := secrets.Registry().List(); len(l) != 1 || l[0].Capabilities == nil || l[0].Type != "secretstores.local.file" {
		t.Errorf("secret store status %+v", l)
	}
}

func TestResolverMissingKey(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.json")
	if err := os.WriteFile(p, []byte(`{"a": "b"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	m := components.NewManager(builtin.Kind(), components.ManagerOptions{Resolve: components.Env{}.Resolve})
	defer m.Close()
	m.Apply([]components.Component{{Name: "s", Type: "secretstores.local.file", InitTimeout: time.Second,
		Metadata: []components.MetadataItem{{Name: "secretsFile", Value: p, HasValue: true}}}})
	if err := m.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	resolve := secretstores.Resolver(m.Registry())
	if v, err := resolve(context.Background(), "s", "a", "a"); err != nil || v != "b" {
		t.Errorf("resolve(a) = %q, %v", v, err)
	}
	if _, err := resolve(context.Background(), "s", "a", "other"); !errors.Is(err, secretstores.ErrNotFound) {
		t.Errorf("resolve(a/other) = %v, want ErrNotFound", err)
	}
	if _, err := resolve(context.Background(), "s", "zz", "zz"); !errors.Is(err, secretstores.ErrNotFound) {
		t.Errorf("resolve(zz) = %v, want ErrNotFound", err)
	}
}

func TestBuiltinUnknownType(t *testing.T) {
	m := components.NewManager(builtin.Kind(), components.ManagerOptions{Resolve: components.Env{}.Resolve})
	defer m.Close()
	m.Apply([]components.Component{{Name: "v", Type: "secretstores.azure.keyvault", Source: "keyvault.yaml", InitTimeout: time.Second}})
	err := m.Wait(context.Background())
	want := `keyvault.yaml: component "v": spec.type: unknown secretstores type "secretstores.azure.keyvault"; known types: secretstores.hashicorp.vault, secretstores.kubernetes, secretstores.local.env, secretstores.local.file`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Wait = %v\nwant it to contain %s", err, want)
	}
}
