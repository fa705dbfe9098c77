// Package redis is the Redis Streams pub/sub broker (Dapr type
// "pubsub.redis"), wire-compatible with Dapr's: a topic is a stream, each
// message an entry with fields "data" (the payload) and "metadata" (the
// request metadata as JSON), and subscribers read through the consumer group
// named by consumerID (default: the app ID).
//
// An entry is XACKed only after the handler returned nil. Entries that were
// read but not acknowledged (handler error, crash, shutdown) stay in the
// group's pending list; every redeliverInterval the subscriber claims those
// idle longer than processingTimeout with XAUTOCLAIM and handles them again,
// so a killed subscriber's messages reach the next one.
//
// It connects to one node, a Redis Cluster (redisType "cluster") or the
// master Sentinel names (failover "true", sentinelMasterName). Every
// command is on one topic's stream, so a cluster spreads topics over its
// masters and needs no hash tags.
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
)

// Type is the Dapr component type.
const Type = "pubsub.redis"

// readBlock bounds one XREADGROUP wait, and so how long stopping takes.
const readBlock = 500 * time.Millisecond

var _ pubsub.PubSub = (*PubSub)(nil)

// PubSub is the Redis Streams broker.
type PubSub struct {
	log    *slog.Logger
	cfg    config
	client goredis.UniversalClient

	life pubsub.Lifecycle
}

// New returns an uninitialised broker; log may be nil.
func New(log *slog.Logger) *PubSub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PubSub{log: log}
}

// Init parses the metadata and checks that Redis answers.
func (p *PubSub) Init(ctx context.Context, md components.Metadata) error {
	cfg, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err) // fix the metadata; retrying cannot help
	}
	p.cfg = cfg
	if md.Name != "" {
		p.log = p.log.With("component", md.Name)
	}
	client, err := cfg.Connect(ctx, md.Name)
	if err != nil {
		return fmt.Errorf("redis pubsub: %w", err)
	}
	p.client = client
	return nil
}

// Features: metadata travels in the entry, the stream keeps messages for
// the group, and the group shares them.
func (p *PubSub) Features() []pubsub.Feature {
	return []pubsub.Feature{pubsub.FeatureMessageMetadata, pubsub.FeatureDurable, pubsub.FeatureConsumerGroups}
}

// Publish appends the message to the topic's stream.
func (p *PubSub) Publish(ctx context.Context, req *pubsub.PublishRequest) error {
	if p.client == nil || p.life.Closed() {
		return errors.New("redis publish: component is closed or not initialised")
	}
	values := map[string]any{"data": req.Data}
	if req.Metadata != nil {
		b, err := json.Marshal(req.Metadata)
		if err != nil {
			return fmt.Errorf("redis publish to %q: encode metadata: %w", req.Topic, err)
		}
		values["metadata"] = b
	}
	args := &goredis.XAddArgs{Stream: req.Topic, Values: values}
	if p.cfg.MaxLenApprox > 0 {
		args.MaxLen, args.Approx = p.cfg.MaxLenApprox, true
	}
	if err := p.client.XAdd(ctx, args).Err(); err != nil {
		return fmt.Errorf("redis publish to %q: %w", req.Topic, err)
	}
	return nil
}

// Subscribe creates the consumer group if needed and starts reading new
// entries and reclaiming stale pending ones.
func (p *PubSub) Subscribe(ctx context.Context, req pubsub.SubscribeRequest, h pubsub.Handler) error {
	if p.client == nil || p.life.Closed() {
		return errors.New("redis subscribe: component is closed or not initialised")
	}
	if err := p.createGroup(ctx, req.Topic); err != nil {
		return err
	}
	s := &subscription{
		p:        p,
		topic:    req.Topic,
		inFlight: make(map[string]struct{}),
		log:      p.log.With("topic", req.Topic),
	}
	ok := p.life.Go(ctx, func(ctx context.Context) {
		s.d = pubsub.NewDispatcher(ctx, h, pubsub.DispatcherConfig{
			Concurrency: pubsub.Concurrency(req, p.cfg.Concurrency),
			OrderingKey: req.OrderingKey,
			Log:         s.log,
		})
		var loops sync.WaitGroup
		loops.Go(func() { s.readLoop(ctx) })
		if p.cfg.ProcessingTimeout > 0 && p.cfg.RedeliverInterval > 0 {
			loops.Go(func() { s.reclaimLoop(ctx) })
		}
		loops.Wait()
		s.d.Wait()
	})
	if !ok {
		return errors.New("redis subscribe: component is closed")
	}
	return nil
}

func (p *PubSub) createGroup(ctx context.Context, topic string) error {
	err := p.client.XGroupCreateMkStream(ctx, topic, p.cfg.ConsumerID, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("redis subscribe to %q: create consumer group %q: %w", topic, p.cfg.ConsumerID, err)
	}
	return nil
}

// Close stops reading, waits for running handlers, and closes the client.
// Unacknowledged entries stay pending for the next subscriber.
func (p *PubSub) Close() error {
	if !p.life.Close() {
		return nil
	}
	if p.client != nil {
		return p.client.Close()
	}
	return nil
}

// subscription is one topic's reader.
type subscription struct {
	p     *PubSub
	topic string
	d     *pubsub.Dispatcher
	log   *slog.Logger

	mu       sync.Mutex
	inFlight map[string]struct{} // entry IDs handed to the dispatcher
}

func (s *subscription) readLoop(ctx context.Context) {
	cfg := s.p.cfg
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		streams, err := s.p.client.XReadGroup(ctx, &goredis.XReadGroupArgs{
			Group:    cfg.ConsumerID,
			Consumer: cfg.ConsumerID,
			Streams:  []string{s.topic, ">"},
			Count:    int64(cfg.QueueDepth),
			Block:    readBlock,
		}).Result()
		if err != nil {
			if errors.Is(err, goredis.Nil) || ctx.Err() != nil {
				continue
			}
			if strings.Contains(err.Error(), "NOGROUP") {
				s.log.Warn("consumer group missing (stream deleted or Redis lost data); recreating it", "group", cfg.ConsumerID)
				_ = s.p.createGroup(ctx, s.topic)
			} else {
				s.log.Warn("reading stream failed; retrying", "error", err, "retry_in", backoff.String())
			}
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		for _, st := range streams {
			if !s.dispatch(st.Messages, false) {
				return
			}
		}
	}
}

func (s *subscription) reclaimLoop(ctx context.Context) {
	cfg := s.p.cfg
	t := time.NewTicker(cfg.RedeliverInterval)
	defer t.Stop()
	for {
		s.reclaim(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reclaim claims entries pending longer than processingTimeout and hands
// those not already being handled here to the dispatcher.
func (s *subscription) reclaim(ctx context.Context) {
	cfg := s.p.cfg
	start := "0-0"
	for ctx.Err() == nil {
		msgs, next, err := s.p.client.XAutoClaim(ctx, &goredis.XAutoClaimArgs{
			Stream:   s.topic,
			Group:    cfg.ConsumerID,
			Consumer: cfg.ConsumerID,
			MinIdle:  cfg.ProcessingTimeout,
			Start:    start,
			Count:    int64(cfg.QueueDepth),
		}).Result()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, goredis.Nil) {
				s.log.Warn("reclaiming pending messages failed; will retry", "error", err)
			}
			return
		}
		if !s.dispatch(msgs, true) {
			return
		}
		if next == "0-0" || next == "" {
			return
		}
		start = next
	}
}

// dispatch hands entries to the dispatcher; false means the subscription
// is stopping (the rest stay pending for redelivery).
func (s *subscription) dispatch(msgs []goredis.XMessage, redelivered bool) bool {
	for _, xm := range msgs {
		s.mu.Lock()
		if _, busy := s.inFlight[xm.ID]; busy {
			s.mu.Unlock()
			continue
		}
		s.inFlight[xm.ID] = struct{}{}
		s.mu.Unlock()
		id := xm.ID
		err := s.d.Dispatch(pubsub.Delivery{
			Msg: s.toMessage(xm, redelivered),
			Ack: func(ctx context.Context) error {
				return s.p.client.XAck(ctx, s.topic, s.p.cfg.ConsumerID, id).Err()
			},
			// No Nack: the entry stays pending and is reclaimed after
			// processingTimeout.
			Done: func() {
				s.mu.Lock()
				delete(s.inFlight, id)
				s.mu.Unlock()
			},
		})
		if err != nil {
			s.mu.Lock()
			delete(s.inFlight, id)
			s.mu.Unlock()
			return false
		}
	}
	return true
}

func (s *subscription) toMessage(xm goredis.XMessage, redelivered bool) *pubsub.Message {
	m := &pubsub.Message{Topic: s.topic, ID: xm.ID, Redelivered: redelivered}
	switch v := xm.Values["data"].(type) {
	case string:
		m.Data = []byte(v)
	case []byte:
		m.Data = v
	}
	if v, ok := xm.Values["metadata"].(string); ok && v != "" {
		if err := json.Unmarshal([]byte(v), &m.Metadata); err != nil {
			s.log.Warn("entry metadata is not a JSON object; delivering without it", "message_id", xm.ID, "error", err)
		}
	}
	return m
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
