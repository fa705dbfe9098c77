package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/proxy/cloudevents"
)

// binaryCEPrefix marks CloudEvent attributes carried as message metadata
// (binary content mode, e.g. from Kafka producers).
const binaryCEPrefix = "ce_"

// Processor turns broker messages of one subscription into deliveries and
// the app's verdict into the Handler result the broker acts on.
type Processor struct {
	Sub       *Subscription
	Deliverer Deliverer
	// DeadLetter publishes msg unchanged to topic on the subscription's
	// pub/sub; nil means no dead-lettering.
	DeadLetter func(ctx context.Context, msg *pubsub.Message, topic string) error
	Log        *slog.Logger
	// Now is the clock for expirations; nil means time.Now.
	Now func() time.Time
	// Observe, if set, records each delivery's outcome with daprd's
	// dapr_component_pubsub_ingress labels (IngressStatus).
	Observe func(topic, processStatus, status string, d time.Duration)
}

// Delivery outcomes as daprd's ingress metrics name them.
const (
	IngressSuccess = "success"
	IngressRetry   = "retry"
	IngressDrop    = "drop"
)

// IngressStatus is daprd's process_status and status labels for a
// delivery the app answered with st: an event the app dropped on purpose
// was processed successfully (status "success"), one it had no handler for
// was not.
func IngressStatus(st Status) (processStatus, status string) {
	switch st {
	case Success:
		return IngressSuccess, IngressSuccess
	case Drop:
		return IngressDrop, IngressSuccess
	case Discard:
		return IngressDrop, IngressDrop
	default:
		return IngressRetry, IngressRetry
	}
}

// Handle processes one message; it is a pubsub.Handler. It returns nil
// (acknowledge) when the app accepted the event, dropped it (after
// dead-lettering it, if configured), has no handler for it (404), or the
// event expired or matches no route, or the app failed or asked to retry
// and the event went to the subscription's dead-letter topic; it returns
// an error (redeliver) when the app failed or asked to retry and there is
// no dead-letter topic (or dead-lettering failed, or the subscription is
// stopping).
func (p *Processor) Handle(ctx context.Context, msg *pubsub.Message) error {
	m, settled, err := p.prepare(ctx, msg)
	if settled {
		return err
	}
	start := time.Now()
	st, derr := p.Deliverer.Deliver(ctx, m)
	if p.Observe != nil {
		ps, s := IngressStatus(st)
		p.Observe(msg.Topic, ps, s, time.Since(start))
	}
	return p.settle(ctx, msg, m, st, derr)
}

// prepare decodes and routes msg. settled is true when msg needs no
// delivery (expired, unrouted, undecodable): err is then Handle's result.
func (p *Processor) prepare(ctx context.Context, msg *pubsub.Message) (m *Message, settled bool, err error) {
	sub := p.Sub
	md := make(map[string]string, len(msg.Metadata)+1)
	for k, v := range msg.Metadata {
		md[k] = v
	}
	md[MetadataKeyPubSub] = sub.PubsubName
	ct := msg.ContentType
	if ct == "" {
		ct = md["content-type"]
	}

	var ev cloudevents.Event
	data := msg.Data
	switch {
	case sub.RawPayload():
		ev = cloudevents.FromRawPayload(msg.Data, msg.Topic, sub.PubsubName)
		traceFromMetadata(ev, md, true)
		b, err := cloudevents.Marshal(ev)
		if err != nil {
			return nil, true, p.deadLetterOr(ctx, msg, err)
		}
		data = b
	case cloudevents.IsBinary(ct):
		ev = cloudevents.Event{}
		for k, v := range md {
			if lk := strings.ToLower(k); strings.HasPrefix(lk, binaryCEPrefix) {
				ev[lk[len(binaryCEPrefix):]] = v
			}
		}
		ev[cloudevents.FieldData] = msg.Data
		ev[cloudevents.FieldDataContentType] = ct
	default:
		var err error
		if ev, err = cloudevents.Parse(msg.Data); err != nil {
			p.log().Error("message is not a cloud event; publish with rawPayload and subscribe with metadata rawPayload=true for raw messages",
				"pubsub", sub.PubsubName, "topic", msg.Topic, "message_id", msg.ID, "error", err)
			return nil, true, p.deadLetterOr(ctx, msg, fmt.Errorf("pubsub %s topic %s: %w", sub.PubsubName, msg.Topic, err))
		}
		traceFromMetadata(ev, md, false)
	}
	id := cloudevents.String(ev, cloudevents.FieldID)

	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	if cloudevents.Expired(ev, now()) {
		p.log().Warn("dropping expired event", "pubsub", sub.PubsubName, "topic", msg.Topic, "event_id", id,
			"expiration", ev[cloudevents.FieldExpiration])
		p.deadLetterQuietly(ctx, msg)
		return nil, true, nil
	}
	path, ok, err := sub.Route(ev)
	if err != nil {
		p.log().Error("cannot route event; fix the subscription's match rules", "pubsub", sub.PubsubName, "topic", msg.Topic, "event_id", id, "error", err)
		return nil, true, p.deadLetterOr(ctx, msg, err)
	}
	if !ok {
		p.log().Debug("no route matches the event; skipping it", "pubsub", sub.PubsubName, "topic", msg.Topic, "event_id", id)
		p.deadLetterQuietly(ctx, msg)
		return nil, true, nil
	}

	return &Message{
		Event: ev, Data: data, Topic: msg.Topic, PubsubName: sub.PubsubName, Path: path, Metadata: md,
	}, false, nil
}

// settle turns the app's verdict on m (prepared from msg) into Handle's
// result: nil acknowledges, an error redelivers.
func (p *Processor) settle(ctx context.Context, msg *pubsub.Message, m *Message, st Status, derr error) error {
	sub := p.Sub
	id := cloudevents.String(m.Event, cloudevents.FieldID)
	path := m.Path
	switch st {
	case Success:
		return nil
	case Discard:
		p.log().Error("event dropped: the app has no handler for it", "pubsub", sub.PubsubName, "topic", msg.Topic, "event_id", id, "path", path, "error", derr)
		return nil
	case Drop:
		p.log().Warn("app dropped the event", "pubsub", sub.PubsubName, "topic", msg.Topic, "event_id", id, "dead_letter_topic", sub.DeadLetterTopic, "reason", derr)
		if sub.DeadLetterTopic != "" && p.DeadLetter != nil {
			if err := p.DeadLetter(ctx, msg, sub.DeadLetterTopic); err != nil {
				// Not acknowledged: the message comes back rather than being lost.
				return fmt.Errorf("send dropped event %s to dead letter topic %q: %w", id, sub.DeadLetterTopic, err)
			}
		}
		return nil
	default:
		if derr == nil {
			derr = fmt.Errorf("app asked to retry event %s", id)
		}
		// As in Dapr, a failed delivery (after the subscription's
		// resiliency policy gave up) goes to the dead-letter topic when
		// there is one; without one, or when dead-lettering fails, the
		// broker redelivers it. Not while the subscription stops: the
		// message is then left to the broker, never dead-lettered.
		if sub.DeadLetterTopic != "" && p.DeadLetter != nil && ctx.Err() == nil && !errors.Is(derr, ErrBatcherClosed) {
			if err := p.DeadLetter(ctx, msg, sub.DeadLetterTopic); err == nil {
				p.log().Warn("event failed; sent to the dead letter topic", "pubsub", sub.PubsubName, "topic", msg.Topic, "event_id", id,
					"dead_letter_topic", sub.DeadLetterTopic, "error", derr)
				return nil
			} else {
				p.log().Error("dead-lettering the failed event failed; it will be redelivered", "pubsub", sub.PubsubName, "topic", msg.Topic,
					"event_id", id, "dead_letter_topic", sub.DeadLetterTopic, "error", err)
			}
		}
		p.log().Debug("event will be redelivered", "pubsub", sub.PubsubName, "topic", msg.Topic, "event_id", id, "error", derr)
		return derr
	}
}

func (p *Processor) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

// deadLetterOr dead-letters msg when the subscription has a dead-letter
// topic (nil: acknowledge), else returns cause (redeliver).
func (p *Processor) deadLetterOr(ctx context.Context, msg *pubsub.Message, cause error) error {
	topic := p.Sub.DeadLetterTopic
	if topic == "" || p.DeadLetter == nil {
		return cause
	}
	if err := p.DeadLetter(ctx, msg, topic); err != nil {
		p.log().Error("dead-lettering failed; the message will be redelivered", "dead_letter_topic", topic, "error", err)
		return cause
	}
	return nil
}

// deadLetterQuietly dead-letters msg if configured and acknowledges it
// either way (Dapr's rule for expired and unrouted events).
func (p *Processor) deadLetterQuietly(ctx context.Context, msg *pubsub.Message) {
	if topic := p.Sub.DeadLetterTopic; topic != "" && p.DeadLetter != nil {
		if err := p.DeadLetter(ctx, msg, topic); err != nil {
			p.log().Error("dead-lettering failed", "dead_letter_topic", topic, "error", err)
		}
	}
}

// traceFromMetadata fills the trace fields from message metadata, where
// the envelope has none (always, for raw payloads).
func traceFromMetadata(ev cloudevents.Event, md map[string]string, force bool) {
	if v, ok := md[cloudevents.FieldTraceID]; ok && (force || ev[cloudevents.FieldTraceID] == nil) {
		ev[cloudevents.FieldTraceID] = v
	}
	if v, ok := md[cloudevents.FieldTraceParent]; ok && (force || ev[cloudevents.FieldTraceParent] == nil) {
		ev[cloudevents.FieldTraceParent] = v
		ev[cloudevents.FieldTraceID] = v
	}
	if v, ok := md[cloudevents.FieldTraceState]; ok && (force || ev[cloudevents.FieldTraceState] == nil) {
		ev[cloudevents.FieldTraceState] = v
	}
}
