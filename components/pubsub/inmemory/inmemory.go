// Package inmemory is the embedded pub/sub broker (Dapr type
// "pubsub.in-memory"): topics live in the sidecar's memory and every
// subscription of a topic gets every message.
//
// As Dapr's in-memory broker, it hands each subscription one message at a
// time (metadata "concurrency" raises that). Unlike Dapr's, which loses a
// message whose handler fails, it redelivers it after "redeliverInterval"
// (default 5s; the subscription's Resiliency policy is what retries
// quickly).
//
// A subscription's topic ending in "*" is a wildcard, as in Dapr's
// broker: "orders.*" gets the messages of every topic that starts with
// "orders." and is longer than it (feature SUBSCRIBE_WILDCARDS).
//
// Nothing survives the process: it is for development and tests, not for
// messages that must not be lost.
package inmemory

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
)

// Type is the Dapr component type.
const Type = "pubsub.in-memory"

var _ pubsub.PubSub = (*PubSub)(nil)

// PubSub is the in-memory broker.
type PubSub struct {
	log *slog.Logger

	life pubsub.Lifecycle
	mu   sync.Mutex
	subs map[string]map[*subscription]struct{} // topic or pattern -> subscriptions
	seq  atomic.Uint64

	concurrency   int
	redeliverWait time.Duration
}

// New returns an in-memory broker; log may be nil.
func New(log *slog.Logger) *PubSub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PubSub{
		log:  log,
		subs: make(map[string]map[*subscription]struct{}),
	}
}

// Defaults of the metadata Init reads.
const (
	// DefaultConcurrency: one message at a time per subscription, as
	// Dapr's in-memory broker delivers.
	DefaultConcurrency = 1
	// DefaultRedeliverInterval is the wait before a message whose handler
	// failed is delivered again.
	DefaultRedeliverInterval = 5 * time.Second
)

// Init reads the optional "concurrency" (messages of one subscription
// handled at once, default DefaultConcurrency) and "redeliverInterval"
// (wait before a failed message is delivered again, default
// DefaultRedeliverInterval) metadata.
func (p *PubSub) Init(_ context.Context, md components.Metadata) error {
	var err error
	if p.concurrency, err = md.Int("concurrency", DefaultConcurrency); err != nil {
		return components.Permanent(err)
	}
	if p.redeliverWait, err = md.Duration("redeliverInterval", DefaultRedeliverInterval); err != nil {
		return components.Permanent(err)
	}
	if md.Name != "" {
		p.log = p.log.With("component", md.Name)
	}
	return nil
}

// Features reports wildcard subscriptions and that metadata travels with
// messages.
func (p *PubSub) Features() []pubsub.Feature {
	return []pubsub.Feature{pubsub.FeatureSubscribeWildcards, pubsub.FeatureMessageMetadata}
}

// Matches reports whether a subscription to pattern gets the messages of
// topic: the same topic, or for a pattern ending in "*", a longer topic
// that starts with what precedes the "*" (Dapr's in-memory rule).
func Matches(pattern, topic string) bool {
	if pattern == topic {
		return true
	}
	prefix, ok := strings.CutSuffix(pattern, "*")
	return ok && len(topic) > len(prefix) && strings.HasPrefix(topic, prefix)
}

// Publish queues the message for every current subscription of the topic.
func (p *PubSub) Publish(_ context.Context, req *pubsub.PublishRequest) error {
	if req.Topic == "" {
		return errors.New("in-memory publish: topic is empty")
	}
	if p.life.Closed() {
		return errors.New("in-memory publish: component is closed")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	id := strconv.FormatUint(p.seq.Add(1), 10)
	for pattern, subs := range p.subs {
		if !Matches(pattern, req.Topic) {
			continue
		}
		for s := range subs {
			s.push(&pubsub.Message{
				Topic:       req.Topic,
				Data:        append([]byte(nil), req.Data...),
				ContentType: req.ContentType,
				Metadata:    pubsub.MergeMetadata(nil, req.Metadata),
				ID:          id,
			})
		}
	}
	return nil
}

// Subscribe registers h for req.Topic.
func (p *PubSub) Subscribe(ctx context.Context, req pubsub.SubscribeRequest, h pubsub.Handler) error {
	if req.Topic == "" {
		return errors.New("in-memory subscribe: topic is empty")
	}
	s := &subscription{wake: make(chan struct{}, 1)}
	p.mu.Lock()
	if p.subs[req.Topic] == nil {
		p.subs[req.Topic] = make(map[*subscription]struct{})
	}
	p.subs[req.Topic][s] = struct{}{}
	p.mu.Unlock()
	ok := p.life.Go(ctx, func(ctx context.Context) {
		d := pubsub.NewDispatcher(ctx, h, pubsub.DispatcherConfig{
			Concurrency: pubsub.Concurrency(req, p.concurrency),
			OrderingKey: req.OrderingKey,
			Log:         p.log,
		})
		p.deliver(ctx, s, d)
		p.unsubscribe(req.Topic, s)
		d.Wait()
	})
	if !ok {
		p.unsubscribe(req.Topic, s)
		return errors.New("in-memory subscribe: component is closed")
	}
	return nil
}

// unsubscribe removes s from topic's subscriptions.
func (p *PubSub) unsubscribe(topic string, s *subscription) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.subs[topic], s)
	if len(p.subs[topic]) == 0 {
		delete(p.subs, topic)
	}
}

// deliver feeds the subscription's queue to the dispatcher until ctx ends.
func (p *PubSub) deliver(ctx context.Context, s *subscription, d *pubsub.Dispatcher) {
	for {
		msg := s.pop()
		if msg == nil {
			select {
			case <-s.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		err := d.Dispatch(pubsub.Delivery{
			Msg: msg,
			Nack: func(context.Context, error) error {
				// Redeliver after a short pause, unless we are stopping: the
				// embedded broker keeps nothing once it stops.
				time.AfterFunc(p.redeliverWait, func() {
					if ctx.Err() == nil {
						msg.Redelivered = true
						s.push(msg)
					}
				})
				return nil
			},
		})
		if err != nil {
			return
		}
	}
}

// Close stops every subscription and waits for running handlers.
func (p *PubSub) Close() error {
	p.life.Close()
	return nil
}

// subscription is an unbounded FIFO of messages for one subscriber.
type subscription struct {
	mu   sync.Mutex
	q    []*pubsub.Message
	wake chan struct{}
}

func (s *subscription) push(m *pubsub.Message) {
	s.mu.Lock()
	s.q = append(s.q, m)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscription) pop() *pubsub.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.q) == 0 {
		return nil
	}
	m := s.q[0]
	s.q[0] = nil
	s.q = s.q[1:]
	return m
}
