package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/internal/kafkaconn"
)

// Subscribe joins the consumer group (consumerGroup, or the request's
// consumerID) for req.Topic and delivers its records to h until ctx ends or
// the broker is closed. It returns once the group gave this member its
// share of the partitions (or after a bounded wait: brokers that are down
// do not fail it, the member keeps joining).
func (p *PubSub) Subscribe(ctx context.Context, req pubsub.SubscribeRequest, h pubsub.Handler) error {
	if p.isClosed() {
		return errors.New("kafka subscribe: component is closed or not initialised")
	}
	group := p.cfg.ConsumerGroup
	if v := req.Metadata[pubsub.MetadataConsumerID]; v != "" {
		group = v
	}
	conc := pubsub.Concurrency(req, 0)
	key := req.OrderingKey
	if key == "" {
		key = MetadataKey
	}
	log := p.log.With("topic", req.Topic, "consumer_group", group)
	if !p.cfg.ConsumeRetryEnabled {
		h = onceOnly(h, log)
	}
	sem := make(chan struct{}, conc) // handlers running, across partitions
	m, err := kafkaconn.NewMember(kafkaconn.MemberConfig{
		Topics: []string{req.Topic}, Group: group, Config: p.cfg, Options: p.opts, Log: log,
		QueueHigh: 2*conc + 500,
		NewSink: func(ctx context.Context, topic string, part int32) kafkaconn.Sink {
			// The handler waits for a slot of the subscription's
			// concurrency; it gives up when the partition goes away (the
			// record is not acked and its next owner reads it).
			limited := func(hctx context.Context, msg *pubsub.Message) error {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return ctx.Err()
				}
				defer func() { <-sem }()
				return h(hctx, msg)
			}
			return sink{pubsub.NewDispatcher(ctx, limited, pubsub.DispatcherConfig{
				Concurrency: conc,
				OrderingKey: key,
				Retries:     -1, // never skip a record: retry until it succeeds or the partition goes away
				Backoff:     p.cfg.ConsumeRetryInterval,
				Log:         log.With("partition", part),
			}), p.cfg.EscapeHeaders}
		},
	})
	if err != nil {
		return fmt.Errorf("kafka subscribe to %q: %w", req.Topic, err)
	}
	s := &subscription{topic: req.Topic, m: m}
	p.mu.Lock()
	p.subs[s] = struct{}{}
	p.mu.Unlock()
	ok := p.life.Go(ctx, func(ctx context.Context) {
		m.Run(ctx)
		p.mu.Lock()
		delete(p.subs, s)
		p.mu.Unlock()
	})
	if !ok {
		p.mu.Lock()
		delete(p.subs, s)
		p.mu.Unlock()
		m.Close()
		return errors.New("kafka subscribe: component is closed")
	}
	m.WaitJoined(ctx)
	return nil
}

// onceOnly is consumeRetryEnabled=false: the app is called once per
// record; a failure is logged and the record counts as handled, so the
// partition moves on and its offset is committed with the records after it
// (Dapr marks the records after it, which commits past it). An error from
// waiting for a handler slot is not the app's: it is not wrapped, so such a
// record stays unsettled.
func onceOnly(h pubsub.Handler, log *slog.Logger) pubsub.Handler {
	return func(ctx context.Context, msg *pubsub.Message) error {
		if err := h(ctx, msg); err != nil {
			log.Error("the app failed a message; consumeRetryEnabled is false, so it is not delivered again",
				"partition", msg.Metadata[MetadataPartition], "offset", msg.Metadata[MetadataOffset], "error", err)
		}
		return nil
	}
}

// subscription is one group member consuming one topic.
type subscription struct {
	topic string
	m     *kafkaconn.Member
}

// sink hands a partition's records to a Dispatcher: records with the same
// key (or ordering key) one at a time in offset order, others
// concurrently.
type sink struct {
	d      *pubsub.Dispatcher
	escape bool
}

func (s sink) Dispatch(r *kgo.Record, ack func()) error {
	return s.d.Dispatch(delivery(r, s.escape, ack))
}

func (s sink) Wait() { s.d.Wait() }

// delivery wraps a record as a message with Dapr's metadata entries.
func delivery(r *kgo.Record, escape bool, ack func()) pubsub.Delivery {
	md := kafkaconn.EventMetadata(r, escape)
	msg := &pubsub.Message{
		Topic: r.Topic, Data: r.Value, ContentType: md[contentTypeHeader], Metadata: md,
		ID: strconv.FormatInt(int64(r.Partition), 10) + "-" + strconv.FormatInt(r.Offset, 10),
	}
	return pubsub.Delivery{
		Msg: msg,
		Ack: func(context.Context) error { ack(); return nil },
		// A record not acked stays uncommitted: the partition's next owner
		// (or this member after a restart) reads it again.
	}
}
