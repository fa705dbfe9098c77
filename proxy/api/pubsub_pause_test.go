package api

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/inmemory"
	"github.com/tandemrun/tandem/proxy/subscriptions"
)

// pausing is the in-memory broker with Pause counted (it does not stop
// deliveries: the test checks the sidecar asks, once per broker).
type pausing struct {
	*inmemory.PubSub
	pauses *atomic.Int32
}

func (p pausing) Pause(context.Context) error { p.pauses.Add(1); return nil }

// TestShutdownPausesBrokersOnce: stopping for good pauses each broker that
// can pause once, however many subscriptions it has, before the
// subscriptions stop; a re-subscription does not pause.
func TestShutdownPausesBrokersOnce(t *testing.T) {
	var pauses atomic.Int32
	newFn, types := components.FactoryFromMap(map[string]func() pubsub.PubSub{
		"pubsub.pausing": func() pubsub.PubSub { return pausing{inmemory.New(nil), &pauses} },
	})
	m := components.NewManager(pubsub.Kind(newFn, types), components.ManagerOptions{Resolve: components.Env{AppID: "app"}.Resolve})
	t.Cleanup(func() { _ = m.Close() })
	m.Apply([]components.Component{{Name: "ps", Type: "pubsub.pausing", InitTimeout: components.DefaultInitTimeout}})
	waitUntil(t, "ps ready", func() bool { _, err := m.Registry().Ready("ps"); return err == nil })

	a := startSubApp(t, &subApp{subs: `[{"pubsubname":"ps","topic":"a","route":"/a"},{"pubsubname":"ps","topic":"b","route":"/b"}]`})
	p := NewPubSub(PubSubConfig{Registry: m.Registry(), AppID: "app"})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, a) }()
	waitUntil(t, "two subscriptions", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.active) == 2
	})
	p.Reload()
	time.Sleep(50 * time.Millisecond)
	if n := pauses.Load(); n != 0 {
		t.Fatalf("paused %d times before shutdown", n)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if n := pauses.Load(); n != 1 {
		t.Errorf("paused %d times, want once for the one broker", n)
	}
}

// TestPubSubMetrics: a publish and a delivery are recorded with daprd's
// labels.
func TestPubSubMetrics(t *testing.T) {
	_, reg := pubsubRegistry(t)
	var mu sync.Mutex
	var got []string
	rec := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, s)
	}
	p := NewPubSub(PubSubConfig{Registry: reg, AppID: "app", Metrics: PubSubMetrics{
		Egress: func(component, topic string, success bool, _ time.Duration) {
			rec("egress " + component + " " + topic + " " + map[bool]string{true: "true", false: "false"}[success])
		},
		Ingress: func(component, topic, processStatus, status string, _ time.Duration) {
			rec("ingress " + component + " " + topic + " " + processStatus + " " + status)
		},
	}})
	a := startSubApp(t, &subApp{subs: `[{"pubsubname":"ps","topic":"a","route":"/a"}]`})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, a) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "subscription", func() bool { return p.Started() })
	if err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: "a", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "ingress recorded", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	// The delivery may be recorded before the publish returns.
	slices.Sort(got)
	if got[0] != "egress ps a true" || got[1] != "ingress ps a success success" {
		t.Errorf("recorded %q", got)
	}
}

// waitingSubscriber is a streaming subscriber that never answers: its
// deliveries wait until gone is closed.
type waitingSubscriber struct {
	entered chan struct{}
	gone    chan struct{}
}

func (w *waitingSubscriber) Deliver(context.Context, *subscriptions.Message) (subscriptions.Status, error) {
	w.entered <- struct{}{}
	<-w.gone
	return subscriptions.Retry, errors.New("stream closed before the subscriber answered")
}

// TestStreamOnStop: stopping a streaming subscription calls OnStop once,
// after it stopped taking messages, so the deliveries waiting for the
// subscriber give up and stop returns without waiting for the drain limit.
func TestStreamOnStop(t *testing.T) {
	_, reg := pubsubRegistry(t)
	p := NewPubSub(PubSubConfig{Registry: reg, AppID: "app"})
	w := &waitingSubscriber{entered: make(chan struct{}, 1), gone: make(chan struct{})}
	var calls atomic.Int32
	stop, err := p.Subscribe(t.Context(), StreamRequest{PubsubName: "ps", Topic: "s", OnStop: func() {
		calls.Add(1)
		close(w.gone)
	}}, w)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(t.Context(), PublishRequest{PubsubName: "ps", Topic: "s", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	<-w.entered
	stopped := make(chan struct{})
	go func() { stop(); stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("stop waited for a delivery OnStop should have ended")
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("OnStop called %d times", n)
	}
}

// slowInit is the in-memory broker whose Init waits for release.
type slowInit struct {
	*inmemory.PubSub
	release chan struct{}
}

func (s slowInit) Init(ctx context.Context, md components.Metadata) error {
	<-s.release
	return s.PubSub.Init(ctx, md)
}

// TestWaitFirstInit: Run's first subscriptions wait for a component's
// first Init attempt (bounded), so Started includes it.
func TestWaitFirstInit(t *testing.T) {
	release := make(chan struct{})
	newFn, types := components.FactoryFromMap(map[string]func() pubsub.PubSub{
		"pubsub.slow": func() pubsub.PubSub { return slowInit{inmemory.New(nil), release} },
	})
	m := components.NewManager(pubsub.Kind(newFn, types), components.ManagerOptions{Resolve: components.Env{AppID: "app"}.Resolve})
	t.Cleanup(func() { _ = m.Close() })
	m.Apply([]components.Component{{Name: "ps", Type: "pubsub.slow", InitTimeout: components.DefaultInitTimeout}})
	p := NewPubSub(PubSubConfig{Registry: m.Registry(), AppID: "app"})

	start := time.Now()
	p.waitFirstInit(t.Context(), 100*time.Millisecond)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("returned after %s while the component was initialising", d)
	}
	close(release)
	done := make(chan struct{})
	go func() { p.waitFirstInit(t.Context(), 5*time.Second); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("still waiting after the component's Init finished")
	}
	if _, err := m.Registry().Ready("ps"); err != nil {
		t.Errorf("after the wait: %v", err)
	}
}
