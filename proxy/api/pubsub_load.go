package api

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/internal/loadreport"
)

// backlogTimeout bounds asking the brokers for the topics' backlogs, so a
// slow broker cannot hold up the metadata API or a metrics scrape.
const backlogTimeout = 2 * time.Second

// Load reports each running subscription's load (the app's, the
// declarative ones and the open streams): deliveries in flight and
// finished, their rate, and, from brokers that implement
// pubsub.Backlogger, the consumer group's backlog and its oldest message.
// Sorted by pub/sub and topic.
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
			b, err := bl.Backlog(bctx, a.sub.Topic)
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
