package api

import (
	"context"
	"sync"
	"testing"
)

// TestLoad: a subscription's report counts the deliveries in flight and
// those finished; the in-memory broker reports no backlog of its own.
func TestLoad(t *testing.T) {
	_, reg := pubsubRegistry(t)
	release := make(chan struct{})
	var once sync.Once
	let := func() { once.Do(func() { close(release) }) }
	defer let() // before waiting for Run, which waits for the deliveries
	app := &subApp{subs: `[{"pubsubname":"ps","topic":"load","route":"/load"}]`}
	app.answer = func(string, map[string]any) (int, string) {
		<-release
		return 200, ""
	}
	a := startSubApp(t, app)
	p := NewPubSub(PubSubConfig{Registry: reg, AppID: "app"})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx, a) }()
	defer func() {
		let()
		cancel()
		<-runDone
	}()
	waitUntil(t, "subscription", func() bool { return len(p.Load(ctx)) == 1 })
	if err := p.Publish(ctx, PublishRequest{PubsubName: "ps", Topic: "load", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a delivery in flight", func() bool { return p.Load(ctx)[0].InFlight == 1 })
	s := p.Load(ctx)[0]
	if s.PubsubName != "ps" || s.Topic != "load" || s.Delivered != 0 || s.BrokerKnows() || s.Pending() != 1 {
		t.Errorf("while held: %+v", s)
	}
	let()
	waitUntil(t, "the delivery done", func() bool { return p.Load(ctx)[0].Delivered == 1 })
	s = p.Load(ctx)[0]
	if s.InFlight != 0 || s.DeliveryRate <= 0 {
		t.Errorf("after: %+v, want none in flight and a delivery rate", s)
	}
}
