package api

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components/pubsub"
)

func TestBacklogCacheAsksOncePerFreshPeriod(t *testing.T) {
	var c backlogCache
	var asked atomic.Int32
	ask := func(context.Context) (pubsub.Backlog, error) {
		asked.Add(1)
		time.Sleep(20 * time.Millisecond)
		return pubsub.Backlog{Undelivered: int64(asked.Load())}, nil
	}
	now := time.Now()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			b, err := c.get(context.Background(), now, ask)
			if err != nil || b.Undelivered != 1 {
				t.Errorf("got %+v, %v; want the one answer", b, err)
			}
		})
	}
	wg.Wait()
	if n := asked.Load(); n != 1 {
		t.Fatalf("20 concurrent reports asked the broker %d times, want 1", n)
	}
	if b, _ := c.get(context.Background(), time.Now().Add(backlogFresh), ask); b.Undelivered != 2 || asked.Load() != 2 {
		t.Fatalf("after backlogFresh: %+v, asked %d times; want a new answer", b, asked.Load())
	}
}

func TestBacklogCacheKeepsFailuresLonger(t *testing.T) {
	var c backlogCache
	var asked atomic.Int32
	down := errors.New("broker down")
	ask := func(context.Context) (pubsub.Backlog, error) { asked.Add(1); return pubsub.Backlog{}, down }
	if _, err := c.get(context.Background(), time.Now(), ask); !errors.Is(err, down) {
		t.Fatalf("err %v, want the broker's", err)
	}
	if _, err := c.get(context.Background(), time.Now().Add(2*backlogFresh), ask); !errors.Is(err, down) || asked.Load() != 1 {
		t.Fatalf("a failure was asked again after %s (asked %d, err %v); want it kept %s", 2*backlogFresh, asked.Load(), err, backlogErrorFresh)
	}
	if _, _ = c.get(context.Background(), time.Now().Add(backlogErrorFresh), ask); asked.Load() != 2 {
		t.Fatalf("asked %d times after backlogErrorFresh, want 2", asked.Load())
	}
}

func TestBacklogCacheIgnoresCallerGone(t *testing.T) {
	var c backlogCache
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ask := func(ctx context.Context) (pubsub.Backlog, error) { return pubsub.Backlog{}, ctx.Err() }
	if _, err := c.get(ctx, time.Now(), ask); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if _, _, ok := c.fresh(time.Now()); ok {
		t.Fatal("a call its caller cancelled was kept as the broker's answer")
	}
}
