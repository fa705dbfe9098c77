package api

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/internal/loadreport"
)

const (
	// backlogTimeout bounds asking the brokers for the topics' backlogs, so
	// a slow broker cannot hold up the metadata API or a metrics scrape.
	backlogTimeout = 2 * time.Second
	// backlogFresh is how long a broker's answer is reused: callers of the
	// metadata API and metrics scrapes, however frequent, ask each broker
	// about a topic at most once in this time.
	backlogFresh = time.Second
	// backlogErrorFresh is how long a failed answer is reused, so a broker
	// that is down costs a report backlogTimeout at most this often.
	backlogErrorFresh = 10 * time.Second
)

// backlogCache holds a subscription's last backlog answer; one caller at a
// time refreshes it.
type backlogCache struct {
	refresh sync.Mutex
	mu      sync.Mutex
	at      time.Time
	value   pubsub.Backlog
	err     error
}

// get returns the cached answer when fresh, else asks ask (one caller at a
// time; the others wait and take its answer).
func (c *backlogCache) get(ctx context.Context, now time.Time, ask func(context.Context) (pubsub.Backlog, error)) (pubsub.Backlog, error) {
	if v, err, ok := c.fresh(now); ok {
		return v, err
	}
	c.refresh.Lock()
	defer c.refresh.Unlock()
	if v, err, ok := c.fresh(now); ok { // refreshed while this caller waited
		return v, err
	}
	v, err := ask(ctx)
	if err != nil && ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
		return v, err // the caller went away: nothing learnt about the broker
	}
	c.mu.Lock()
	c.at, c.value, c.err = time.Now(), v, err
	c.mu.Unlock()
	return v, err
}

func (c *backlogCache) fresh(now time.Time) (pubsub.Backlog, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ttl := backlogFresh
	if c.err != nil {
		ttl = backlogErrorFresh
	}
	if c.at.IsZero() || now.Sub(c.at) >= ttl {
		return pubsub.Backlog{}, nil, false
	}
	return c.value, c.err, true
}

// Load reports each running subscription's load (the app's, the
// declarative ones and the open streams): deliveries in flight and
// finished, their rate, and, from brokers that implement
// pubsub.Backlogger, the consumer group's backlog and its oldest message.
// Sorted by pub/sub and topic. A broker's answer is reused for
// backlogFresh (backlogErrorFresh when it failed).
func (p *PubSub) Load(ctx context.Context) []loadreport.Subscription {
	p.mu.Lock()
	subs := make([]*activeSub, 0, len(p.active)+len(p.streams))
	for _, a := range p.active {
		subs = append(subs, a)
	}
	for a := range p.streams {
		subs = append(subs, a)
	}
	p.mu.Unlock()
	now := time.Now()
	out := make([]loadreport.Subscription, len(subs))
	// The brokers are asked at once, under one deadline, so a broker that is
	// down costs the report backlogTimeout however many topics it has.
	bctx, cancel := context.WithTimeout(ctx, backlogTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, a := range subs {
		out[i] = loadreport.Subscription{
			PubsubName:   a.sub.PubsubName,
			Topic:        a.sub.Topic,
			InFlight:     int64(a.flight.count()),
			Delivered:    a.delivered.Load(),
			DeliveryRate: a.rate.PerSecond(now),
		}
		bl, ok := a.inst.(pubsub.Backlogger)
		if !ok {
			continue
		}
		wg.Go(func() {
			s := &out[i]
			b, err := a.backlog.get(bctx, now, func(ctx context.Context) (pubsub.Backlog, error) {
				return bl.Backlog(ctx, a.sub.Topic)
			})
			if err != nil {
				s.BacklogError = err.Error()
				return
			}
			s.Backlog, s.Unacked = &b.Undelivered, &b.Unacked
			if !b.Oldest.IsZero() {
				s.OldestPendingAgeSeconds = max(now.Sub(b.Oldest).Seconds(), 0)
			}
		})
	}
	wg.Wait()
	slices.SortFunc(out, func(x, y loadreport.Subscription) int {
		if c := strings.Compare(x.PubsubName, y.PubsubName); c != 0 {
			return c
		}
		return strings.Compare(x.Topic, y.Topic)
	})
	return out
}
