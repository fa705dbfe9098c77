package proxy

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/inmemory"
	"github.com/tandemrun/tandem/proxy/api"
)

// gatedStore is a state store whose Init waits for release.
type gatedStore struct {
	*inmemory.Store
	release chan struct{}
}

func (s gatedStore) Init(ctx context.Context, md components.Metadata) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.Init(ctx, md)
}

// TestOutboundHealthWaitsForComponents: /v1.0/healthz/outbound answers 204
// only once the state store's first Init has run, as daprd's outbound
// health waits for its components (a call made as soon as it answers finds
// the component ready).
func TestOutboundHealthWaitsForComponents(t *testing.T) {
	release := make(chan struct{})
	newFn, types := components.FactoryFromMap(map[string]func() state.Store{
		"state.gated": func() state.Store { return gatedStore{inmemory.New(), release} },
	})
	m := components.NewManager(components.Kind[state.Store]{Category: "state", Types: types, New: newFn,
		Init:  func(ctx context.Context, s state.Store, md components.Metadata) error { return s.Init(ctx, md) },
		Close: func(s state.Store) error { return s.Close() },
	}, components.ManagerOptions{Resolve: components.Env{AppID: "lone"}.Resolve, Grace: time.Millisecond})
	t.Cleanup(func() { _ = m.Close() })
	m.Apply([]components.Component{{Name: "store", Type: "state.gated", InitTimeout: components.DefaultInitTimeout}})

	s, _ := loneWith(t, ListenConfig{Addresses: []string{"127.0.0.1"}, InternalAddress: "127.0.0.1", MetricsPort: -1},
		Self{AppID: "lone"}, APIs{State: api.NewState(api.StateConfig{Registry: m.Registry(), AppID: "lone"})})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	status := func() int {
		resp, err := http.Get("http://" + s.HTTPAddr() + "/v1.0/healthz/outbound")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(5 * time.Second)
	for status() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the HTTP API never answered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := status(); got != http.StatusInternalServerError {
		t.Fatalf("outbound health while the store initialises = %d, want 500", got)
	}
	close(release)
	for status() != http.StatusNoContent {
		if time.Now().After(deadline) {
			t.Fatal("outbound health never became ready after the store's Init")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
