package proxy

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/inmemory"
	"github.com/tandemrun/tandem/components/state/statetest"
	"github.com/tandemrun/tandem/proxy/api"
)

// TestOutboundHealthWaitsForComponents: /v1.0/healthz/outbound answers 204
// only once the state store's first Init has run, as daprd's outbound
// health waits for its components (a call made as soon as it answers finds
// the component ready).
func TestOutboundHealthWaitsForComponents(t *testing.T) {
	release := make(chan struct{})
	m := statetest.GatedManager(t, "lone", func() state.Store { return inmemory.New() }, release)
	m.Apply([]components.Component{statetest.GatedComponent()})

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
