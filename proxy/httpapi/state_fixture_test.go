package httpapi

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
	secretsbuiltin "github.com/tandemrun/tandem/components/secretstores/builtin"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/inmemory"
	"github.com/tandemrun/tandem/proxy/api"
)

const testAppID = "myapp"

// plainStore hides everything but state.Store of an in-memory store: no
// transactions, bulk or query.
type plainStore struct{ state.Store }

// brokenStore never initialises.
type brokenStore struct{ plainStore }

func (brokenStore) Init(context.Context, components.Metadata) error {
	return errors.New("dial tcp 127.0.0.1:1: connection refused")
}

func testStateKind() components.Kind[state.Store] {
	newFn, types := components.FactoryFromMap(map[string]func() state.Store{
		inmemory.Type:  inmemory.NewQueryable, // the query API tests need a querying store
		"state.plain":  func() state.Store { return plainStore{inmemory.New()} },
		"state.broken": func() state.Store { return brokenStore{} },
	})
	return components.Kind[state.Store]{
		Category: "state", Types: types, New: newFn,
		Init:  func(ctx context.Context, s state.Store, md components.Metadata) error { return s.Init(ctx, md) },
		Close: func(s state.Store) error { return s.Close() },
	}
}

// fixture is a state and secrets API over real components: stores
// "statestore" (in-memory), "prefixed" (keyPrefix name), "plain" (no
// transactions/query), "broken" (never ready); secret store "secretstore"
// (local.file) where secret "denied" is refused by scope.
type fixture struct {
	states  *components.Manager[state.Store]
	secrets *components.Manager[secretstores.SecretStore]
	state   *api.State
	secret  *api.Secrets
	comps   []components.Component
}

func prop(name, value string) components.MetadataItem {
	return components.MetadataItem{Name: name, Value: value, HasValue: true}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	secretsFile := filepath.Join(dir, "secrets.json")
	if err := os.WriteFile(secretsFile, []byte(`{"db-password":"s3cr3t-value","denied":"never-shown","nested":{"user":"u1"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &fixture{comps: []components.Component{
		{Name: "statestore", Type: inmemory.Type, Version: "v1"},
		{Name: "prefixed", Type: inmemory.Type, Version: "v1", Metadata: []components.MetadataItem{prop("keyPrefix", "name")}},
		{Name: "plain", Type: "state.plain", Version: "v1"},
		{Name: "broken", Type: "state.broken", Version: "v1"},
		{Name: "secretstore", Type: "secretstores.local.file", Version: "v1", Metadata: []components.MetadataItem{prop("secretsFile", secretsFile)}},
	}}
	for i := range f.comps {
		f.comps[i].InitTimeout = components.DefaultInitTimeout
	}
	env := components.Env{AppID: testAppID}
	opts := components.ManagerOptions{Resolve: env.Resolve, MinBackoff: time.Hour, MaxBackoff: time.Hour}
	f.states = components.NewManager(testStateKind(), opts)
	f.secrets = components.NewManager(secretsbuiltin.Kind(), opts)
	t.Cleanup(func() { _ = f.states.Close(); _ = f.secrets.Close() })
	f.states.Apply(f.comps)
	f.secrets.Apply(f.comps)
	waitReady(t, f.states.Registry(), "statestore", "prefixed", "plain")
	waitReady(t, f.secrets.Registry(), "secretstore")
	waitState(t, f.states.Registry(), "broken", components.StateRetrying)
	f.state = api.NewState(api.StateConfig{
		Registry: f.states.Registry(), AppID: testAppID,
		Metadata: func(name string) (components.Metadata, bool) {
			for _, c := range f.comps {
				if c.Name == name {
					md, err := env.Resolve(context.Background(), c)
					return md, err == nil
				}
			}
			return components.Metadata{}, false
		},
	})
	f.secret = api.NewSecrets(api.SecretsConfig{
		Registry: f.secrets.Registry(),
		Allowed:  func(store, key string) bool { return key != "denied" },
	})
	return f
}

func waitReady[T any](t *testing.T, reg *components.Registry[T], names ...string) {
	t.Helper()
	for _, n := range names {
		waitState(t, reg, n, components.StateReady)
	}
}

func waitState[T any](t *testing.T, reg *components.Registry[T], name string, want components.State) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, st, ok := reg.Get(name)
		if ok && st.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("component %s: state %v, want %v (err %v)", name, st.State, want, st.Err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// raw reads a stored (prefixed) key straight from a store instance.
func (f *fixture) raw(t *testing.T, store, storedKey string) []byte {
	t.Helper()
	s, err := f.states.Registry().Ready(store)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Get(context.Background(), &state.GetRequest{Key: storedKey})
	if err != nil {
		t.Fatal(err)
	}
	if resp == nil {
		return nil
	}
	return resp.Data
}
