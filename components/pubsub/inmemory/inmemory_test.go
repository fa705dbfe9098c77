package inmemory_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/inmemory"
	"github.com/tandemrun/tandem/components/pubsub/pubsubtest"
)

func TestContract(t *testing.T) {
	pubsubtest.Run(t, func(t *testing.T) pubsub.PubSub {
		ps := inmemory.New(nil)
		if err := ps.Init(context.Background(), components.Metadata{Name: "mem", Type: inmemory.Type,
			Properties: map[string]string{"redeliverInterval": "20ms"}}); err != nil {
			t.Fatal(err)
		}
		return ps
	})
}

// TestDefaults: by default a subscription gets one message at a time (as
// from Dapr's in-memory broker), and a message whose handler failed comes
// back only after DefaultRedeliverInterval, not in a hot loop.
func TestDefaults(t *testing.T) {
	ps := inmemory.New(nil)
	if err := ps.Init(context.Background(), components.Metadata{Name: "mem", Type: inmemory.Type}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.Close() })
	var running, most, calls atomic.Int32
	release := make(chan struct{})
	if err := ps.Subscribe(t.Context(), pubsub.SubscribeRequest{Topic: "t"}, func(_ context.Context, m *pubsub.Message) error {
		n := running.Add(1)
		defer running.Add(-1)
		if n > most.Load() {
			most.Store(n)
		}
		calls.Add(1)
		if string(m.Data) == "fail" {
			return context.DeadlineExceeded
		}
		<-release
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a", "b", "c"} {
		if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: "t", Data: []byte(d)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if got := most.Load(); got != 1 {
		t.Errorf("%d messages handled at once, want 1", got)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: "t", Data: []byte("fail")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if got := calls.Load(); got != 4 {
		t.Errorf("handler called %d times within a second, want 4 (no redelivery before %v)", got, inmemory.DefaultRedeliverInterval)
	}
}
