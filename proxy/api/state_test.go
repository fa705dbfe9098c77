package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/inmemory"
	"github.com/tandemrun/tandem/components/state/statetest"
	"github.com/tandemrun/tandem/proxy/apierr"
)

// limitedStore is an in-memory store limited to 2 operations per
// transaction.
type limitedStore struct{ *inmemory.Store }

func (limitedStore) MultiMaxSize() int { return 2 }

func manager(t *testing.T) (*components.Manager[state.Store], components.Env) {
	t.Helper()
	return managerWithSecrets(t, nil)
}

// managerWithSecrets is manager whose components read secretKeyRef
// entries through secret.
func managerWithSecrets(t *testing.T, secret components.SecretFunc) (*components.Manager[state.Store], components.Env) {
	t.Helper()
	newFn, types := components.FactoryFromMap(map[string]func() state.Store{
		inmemory.Type:   inmemory.NewStore,
		"state.limited": func() state.Store { return limitedStore{inmemory.New()} },
	})
	env := components.Env{AppID: "app1", Namespace: "ns", Secret: secret}
	m := components.NewManager(components.Kind[state.Store]{Category: "state", Types: types, New: newFn,
		Init:  func(ctx context.Context, s state.Store, md components.Metadata) error { return s.Init(ctx, md) },
		Close: func(s state.Store) error { return s.Close() },
	}, components.ManagerOptions{Resolve: env.Resolve, Grace: time.Millisecond})
	t.Cleanup(func() { _ = m.Close() })
	return m, env
}

func comp(typ, keyPrefix string) components.Component {
	c := components.Component{Name: "store", Type: typ, InitTimeout: components.DefaultInitTimeout}
	if keyPrefix != "" {
		c.Metadata = []components.MetadataItem{{Name: "keyPrefix", Value: keyPrefix, HasValue: true}}
	}
	return c
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestKeyPrefixFollowsReload: the cached prefix belongs to an instance; a
// reloaded component with another keyPrefix gets its own.
func TestKeyPrefixFollowsReload(t *testing.T) {
	m, env := manager(t)
	cur := comp(inmemory.Type, "")
	s := NewState(StateConfig{Registry: m.Registry(), AppID: "app1", Namespace: "ns",
		Metadata: func(name string) (components.Metadata, bool) {
			md, err := env.Resolve(context.Background(), cur)
			return md, err == nil
		}})
	ctx := context.Background()
	stored := func(key string) bool {
		inst, err := m.Registry().Ready("store")
		if err != nil {
			return false
		}
		r, _ := inst.Get(ctx, &state.GetRequest{Key: key})
		return r != nil
	}
	m.Apply([]components.Component{cur})
	waitFor(t, func() bool { _, err := m.Registry().Ready("store"); return err == nil })
	if err := s.Save(ctx, "store", []state.SetRequest{{Key: "k", Value: []byte("1")}}); err != nil {
		t.Fatal(err)
	}
	if !stored("app1||k") {
		t.Fatal("default prefix is not <appId>||")
	}
	first, _ := m.Registry().Ready("store")
	cur = comp(inmemory.Type, "namespace")
	m.Apply([]components.Component{cur})
	waitFor(t, func() bool { inst, err := m.Registry().Ready("store"); return err == nil && inst != first })
	if err := s.Save(ctx, "store", []state.SetRequest{{Key: "k", Value: []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	if !stored("ns.app1||k") {
		t.Fatal("reloaded keyPrefix namespace not applied")
	}
	got, err := s.BulkGet(ctx, "store", []string{"k"}, nil, 0)
	if err != nil || len(got) != 1 || got[0].Key != "k" || string(got[0].Data) != "2" {
		t.Fatalf("bulk get = %+v, %v", got, err)
	}
}

func TestNotReadyAndTooManyOps(t *testing.T) {
	m, _ := manager(t)
	s := NewState(StateConfig{Registry: m.Registry(), AppID: "app1"})
	ctx := context.Background()
	m.Apply([]components.Component{{Name: "store", Type: "state.unknown", InitTimeout: time.Second}})
	waitFor(t, func() bool { _, st, _ := m.Registry().Get("store"); return st.State == components.StateFailed })
	err := s.Save(ctx, "store", []state.SetRequest{{Key: "k", Value: []byte("1")}})
	if !apierr.IsCode(err, apierr.CodeStateStoreNotReady) {
		t.Fatalf("err = %v, want not ready", err)
	}
	if e := apierr.From(err); e.HTTPStatus != 503 || !containsAll(e.Message, "store", "state.unknown") {
		t.Fatalf("error = %+v", e)
	}

	m.Apply([]components.Component{comp("state.limited", "")})
	waitFor(t, func() bool { _, err := m.Registry().Ready("store"); return err == nil })
	op := func(k string) state.Operation {
		return state.Operation{Upsert: &state.SetRequest{Key: k, Value: []byte("1")}}
	}
	err = s.Transact(ctx, "store", state.TransactionRequest{Operations: []state.Operation{op("a"), op("b"), op("c")}})
	if e := apierr.From(err); e.Code != apierr.CodeStateStoreTooManyOps || e.HTTPStatus != 400 {
		t.Fatalf("err = %v", err)
	}
	if err := s.Transact(ctx, "store", state.TransactionRequest{Operations: []state.Operation{op("a"), op("b")}}); err != nil {
		t.Fatal(err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}

// TestEncryptedStore: with primaryEncryptionKey (from a secret), values are
// stored in daprd's encrypted layout and read back in the clear; a JSON
// string from the HTTP API is encrypted as its text, as daprd does.
func TestEncryptedStore(t *testing.T) {
	m, env := managerWithSecrets(t, func(_ context.Context, store, name, key string) (string, error) {
		return "00112233445566778899aabbccddeeff", nil
	})
	c := comp(inmemory.Type, "")
	c.SecretStore = "secrets"
	c.Metadata = []components.MetadataItem{{Name: state.MetadataPrimaryEncryptionKey, SecretKeyRef: &components.SecretKeyRef{Name: "mykey"}}}
	s := NewState(StateConfig{Registry: m.Registry(), AppID: "app1",
		Metadata: func(string) (components.Metadata, bool) {
			md, err := env.Resolve(context.Background(), c)
			return md, err == nil
		}})
	m.Apply([]components.Component{c})
	waitFor(t, func() bool { _, err := m.Registry().Ready("store"); return err == nil })
	ctx := context.Background()
	if err := s.Save(ctx, "store", []state.SetRequest{{Key: "k", Value: []byte(`"value1"`)}, {Key: "b", Value: []byte{0, 1}, IsBinary: true}}); err != nil {
		t.Fatal(err)
	}
	inst, _ := m.Registry().Ready("store")
	raw, err := inst.Get(ctx, &state.GetRequest{Key: "app1||k"})
	if err != nil || raw == nil || !strings.HasSuffix(string(raw.Data), "||mykey") || strings.Contains(string(raw.Data), "value1") {
		t.Fatalf("stored = %+v, %v", raw, err)
	}
	got, err := s.Get(ctx, "store", state.GetRequest{Key: "k"})
	if err != nil || string(got.Data) != "value1" {
		t.Fatalf("get = %+v, %v", got, err)
	}
	bulk, err := s.BulkGet(ctx, "store", []string{"k", "b"}, nil, 0)
	if err != nil || len(bulk) != 2 {
		t.Fatalf("bulk = %+v, %v", bulk, err)
	}
	for _, it := range bulk {
		want := map[string]string{"k": "value1", "b": "\x00\x01"}[it.Key]
		if it.Error != "" || string(it.Data) != want {
			t.Errorf("bulk %s = %q (%s), want %q", it.Key, it.Data, it.Error, want)
		}
	}
	// A value another key wrote is a read error, not garbage.
	if err := inst.Set(ctx, &state.SetRequest{Key: "app1||x", Value: []byte("plain"), IsBinary: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "store", state.GetRequest{Key: "x"}); !apierr.IsCode(err, apierr.CodeStateGet) {
		t.Fatalf("get of an unencrypted value: %v", err)
	}
}

// TestStateSettled: the state API is settled (and the sidecar healthy)
// once every store has had its first Init attempt.
func TestStateSettled(t *testing.T) {
	release := make(chan struct{})
	m := statetest.GatedManager(t, "app1", func() state.Store { return inmemory.New() }, release)
	s := NewState(StateConfig{Registry: m.Registry(), AppID: "app1"})
	if !s.Settled() {
		t.Fatal("settled = false with no store")
	}
	m.Apply([]components.Component{statetest.GatedComponent()})
	if s.Settled() {
		t.Fatal("settled = true while the store's first Init runs")
	}
	close(release)
	waitFor(t, s.Settled)
}
