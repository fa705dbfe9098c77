package api

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/internal/loadreport"
)

// backlogTimeout bounds asking one broker for one topic's backlog, so a
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
	out := make([]loadreport.Subscription, 0, len(subs))
	for _, a := range subs {
		s := loadreport.Subscription{
			PubsubName:   a.sub.PubsubName,
			Topic:        a.sub.Topic,
			InFlight:     int64(a.flight.count()),
			Delivered:    a.delivered.Load(),
			DeliveryRate: a.rate.PerSecond(now),
		}
		if bl, ok := a.inst.(pubsub.Backlogger); ok {
			bctx, cancel := context.WithTimeout(ctx, backlogTimeout)
			b, err := bl.Backlog(bctx, a.sub.Topic)
			cancel()
			if err != nil {
				s.BacklogError = err.Error()
			} else {
				s.Backlog, s.Unacked = &b.Undelivered, &b.Unacked
				if !b.Oldest.IsZero() {
					s.OldestPendingAgeSeconds = max(now.Sub(b.Oldest).Seconds(), 0)
				}
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y loadreport.Subscription) int {
		if c := strings.Compare(x.PubsubName, y.PubsubName); c != 0 {
			return c
		}
		return strings.Compare(x.Topic, y.Topic)
	})
	return out
}
