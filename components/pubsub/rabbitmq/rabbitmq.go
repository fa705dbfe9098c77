// Package rabbitmq is the RabbitMQ pub/sub broker (Dapr type
// "pubsub.rabbitmq"), with Dapr's topology: an exchange per topic (fanout by
// default) and, per subscriber, a queue "{consumerID}-{topic}" (or the
// subscription's "queueName" metadata) bound to it, so replicas with the
// same consumer ID share a queue.
//
// Publish waits for the broker's publisher confirm. Deliveries are acked
// manually, only after the handler returned nil; a handler error nacks with
// requeue. On stop the consumer is cancelled first, running handlers finish,
// and closing the channel returns everything not acked to the queue. A lost
// connection is redialled and the subscriptions re-established.
package rabbitmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
)

// Type is the Dapr component type.
const Type = "pubsub.rabbitmq"

var _ pubsub.PubSub = (*PubSub)(nil)

// PubSub is the RabbitMQ broker.
type PubSub struct {
	log *slog.Logger
	cfg config

	connMu sync.Mutex
	conn   *amqp.Connection

	pubMu     sync.Mutex
	pubCh     *amqp.Channel
	exchanges map[string]bool // declared on pubCh

	life pubsub.Lifecycle
}

// New returns an uninitialised broker; log may be nil.
func New(log *slog.Logger) *PubSub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PubSub{log: log}
}

// Init parses the metadata and connects.
func (p *PubSub) Init(_ context.Context, md components.Metadata) error {
	cfg, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err) // fix the metadata; retrying cannot help
	}
	p.cfg = cfg
	if md.Name != "" {
		p.log = p.log.With("component", md.Name)
	}
	if _, err := p.connection(); err != nil {
		return err
	}
	return nil
}

// Features: headers carry metadata, per-message expiration, durable shared
// queues.
func (p *PubSub) Features() []pubsub.Feature {
	return []pubsub.Feature{pubsub.FeatureMessageTTL, pubsub.FeatureMessageMetadata, pubsub.FeatureDurable, pubsub.FeatureConsumerGroups}
}

// connection returns the open connection, dialling a new one when there is
// none or it was lost.
func (p *PubSub) connection() (*amqp.Connection, error) {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	if p.conn != nil && !p.conn.IsClosed() {
		return p.conn, nil
	}
	cfg := amqp.Config{Heartbeat: 10 * time.Second, Locale: "en_US"}
	if p.cfg.ClientName != "" {
		cfg.Properties = amqp.Table{"connection_name": p.cfg.ClientName}
	}
	conn, err := amqp.DialConfig(p.cfg.URL, cfg)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: connect to %s: %w (check connectionString)", redact(p.cfg.URL), err)
	}
	p.conn = conn
	return conn, nil
}

// redact hides the password of an AMQP URL for messages.
func redact(raw string) string {
	if i := strings.Index(raw, "@"); i >= 0 {
		if j := strings.Index(raw, "://"); j >= 0 && j < i {
			return raw[:j+3] + "***@" + raw[i+1:]
		}
	}
	return raw
}

func (p *PubSub) declareExchange(ch *amqp.Channel, topic string) error {
	err := ch.ExchangeDeclare(topic, p.cfg.ExchangeKind, p.cfg.Durable, p.cfg.DeletedWhenUnused, false, false, nil)
	if err != nil {
		return fmt.Errorf("rabbitmq: declare exchange %q: %w (an exchange with other durable/auto-delete settings may exist; align durable and deletedWhenUnused)", topic, err)
	}
	return nil
}

// Publish sends the message to the topic's exchange and waits for the
// broker's confirm.
func (p *PubSub) Publish(ctx context.Context, req *pubsub.PublishRequest) error {
	if p.life.Closed() {
		return errors.New("rabbitmq publish: component is closed")
	}
	msg := amqp.Publishing{
		ContentType:  req.ContentType,
		Body:         req.Data,
		DeliveryMode: p.cfg.DeliveryMode,
	}
	if v := req.Metadata[pubsub.MetadataTTLInSeconds]; v != "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs < 0 {
			return fmt.Errorf("rabbitmq publish to %q: metadata %q: %q is not a number of seconds", req.Topic, pubsub.MetadataTTLInSeconds, v)
		}
		msg.Expiration = strconv.FormatInt(secs*1000, 10)
	}
	if len(req.Metadata) > 0 {
		msg.Headers = make(amqp.Table, len(req.Metadata))
		for k, v := range req.Metadata {
			msg.Headers[k] = v
		}
	}
	routingKey := req.Metadata["routingKey"]
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var conf *amqp.DeferredConfirmation
		conf, err = p.publishOnce(ctx, req.Topic, routingKey, msg)
		if err == nil {
			var ok bool
			ok, err = conf.WaitContext(ctx)
			if err == nil && !ok {
				err = errors.New("the broker did not confirm the message (nack or channel closed)")
			}
			if err == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("rabbitmq publish to %q: %w", req.Topic, err)
}

func (p *PubSub) publishOnce(ctx context.Context, topic, key string, msg amqp.Publishing) (*amqp.DeferredConfirmation, error) {
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	if p.pubCh == nil || p.pubCh.IsClosed() {
		conn, err := p.connection()
		if err != nil {
			return nil, err
		}
		ch, err := conn.Channel()
		if err != nil {
			return nil, fmt.Errorf("open channel: %w", err)
		}
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			return nil, fmt.Errorf("enable publisher confirms: %w", err)
		}
		p.pubCh, p.exchanges = ch, map[string]bool{}
	}
	if !p.exchanges[topic] {
		if err := p.declareExchange(p.pubCh, topic); err != nil {
			return nil, err
		}
		p.exchanges[topic] = true
	}
	return p.pubCh.PublishWithDeferredConfirmWithContext(ctx, topic, key, false, false, msg)
}

// Subscribe declares the topic's exchange and the subscriber's queue, binds
// them and starts consuming.
func (p *PubSub) Subscribe(ctx context.Context, req pubsub.SubscribeRequest, h pubsub.Handler) error {
	if p.life.Closed() {
		return errors.New("rabbitmq subscribe: component is closed")
	}
	queue := req.Metadata["queueName"]
	if queue == "" {
		queue = p.cfg.ConsumerID + "-" + req.Topic
	}
	concurrency := pubsub.Concurrency(req, p.cfg.Concurrency)
	s := &subscription{
		p:        p,
		req:      req,
		queue:    queue,
		prefetch: p.cfg.PrefetchCount,
		tag:      "tandem-" + randomHex(),
		log:      p.log.With("topic", req.Topic, "queue", queue),
	}
	if s.prefetch == 0 {
		// Dapr's 0 means unlimited; we take what we can handle so that a
		// stopping subscriber holds little and replicas share the queue.
		s.prefetch = concurrency
	}
	ch, deliveries, err := s.setup()
	if err != nil {
		return err
	}
	ok := p.life.Go(ctx, func(ctx context.Context) {
		d := pubsub.NewDispatcher(ctx, h, pubsub.DispatcherConfig{
			Concurrency: concurrency,
			OrderingKey: req.OrderingKey,
			Log:         s.log,
		})
		s.run(ctx, d, ch, deliveries)
	})
	if !ok {
		_ = ch.Close()
		return errors.New("rabbitmq subscribe: component is closed")
	}
	return nil
}

type subscription struct {
	p        *PubSub
	req      pubsub.SubscribeRequest
	queue    string
	prefetch int
	tag      string
	log      *slog.Logger
}

// setup opens a channel, declares and binds the queue and starts consuming.
func (s *subscription) setup() (*amqp.Channel, <-chan amqp.Delivery, error) {
	conn, err := s.p.connection()
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, fmt.Errorf("rabbitmq subscribe to %q: open channel: %w", s.req.Topic, err)
	}
	fail := func(what string, err error) (*amqp.Channel, <-chan amqp.Delivery, error) {
		_ = ch.Close()
		return nil, nil, fmt.Errorf("rabbitmq subscribe to %q: %s: %w", s.req.Topic, what, err)
	}
	if err := s.p.declareExchange(ch, s.req.Topic); err != nil {
		return fail("exchange", err)
	}
	args := amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeClassic}
	if v := s.req.Metadata["queueType"]; v != "" {
		args[amqp.QueueTypeArg] = v
	}
	if _, err := ch.QueueDeclare(s.queue, s.p.cfg.Durable, s.p.cfg.DeletedWhenUnused, false, false, args); err != nil {
		return fail("declare queue "+s.queue+" (a queue with other settings may exist; align durable and deletedWhenUnused)", err)
	}
	keys := []string{""}
	if v := s.req.Metadata["routingKey"]; v != "" {
		keys = strings.Split(v, ",")
	}
	for _, k := range keys {
		if err := ch.QueueBind(s.queue, strings.TrimSpace(k), s.req.Topic, false, nil); err != nil {
			return fail("bind queue "+s.queue, err)
		}
	}
	if err := ch.Qos(s.prefetch, 0, false); err != nil {
		return fail("set prefetch", err)
	}
	deliveries, err := ch.Consume(s.queue, s.tag, false, false, false, false, nil)
	if err != nil {
		return fail("consume "+s.queue, err)
	}
	return ch, deliveries, nil
}

// run dispatches deliveries until ctx ends, re-establishing the
// subscription when the connection drops.
func (s *subscription) run(ctx context.Context, d *pubsub.Dispatcher, ch *amqp.Channel, deliveries <-chan amqp.Delivery) {
	defer func() {
		if ch != nil {
			// Stop the flow first, let running handlers settle on this
			// channel, then close it: the broker requeues all unacked.
			_ = ch.Cancel(s.tag, false)
			d.Wait()
			_ = ch.Close()
		} else {
			d.Wait()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case dl, ok := <-deliveries:
			if !ok {
				ch, deliveries = s.reestablish(ctx, ch)
				if ch == nil {
					return
				}
				continue
			}
			if d.Dispatch(s.delivery(dl)) != nil {
				_ = dl.Nack(false, true)
				return
			}
		}
	}
}

// reestablish waits for in-flight handlers of the lost channel and sets the
// subscription up again, retrying until it works or ctx ends.
func (s *subscription) reestablish(ctx context.Context, old *amqp.Channel) (*amqp.Channel, <-chan amqp.Delivery) {
	_ = old.Close()
	for {
		wait := s.p.cfg.ReconnectWait
		s.log.Warn("subscription lost; reconnecting", "retry_in", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
		ch, deliveries, err := s.setup()
		if err == nil {
			s.log.Info("subscription re-established")
			return ch, deliveries
		}
		s.log.Warn("reconnecting failed", "error", err)
	}
}

func (s *subscription) delivery(dl amqp.Delivery) pubsub.Delivery {
	msg := &pubsub.Message{
		Topic:       s.req.Topic,
		Data:        dl.Body,
		ContentType: dl.ContentType,
		ID:          dl.MessageId,
		Redelivered: dl.Redelivered,
	}
	if len(dl.Headers) > 0 {
		msg.Metadata = make(map[string]string, len(dl.Headers))
		for k, v := range dl.Headers {
			switch v := v.(type) {
			case string:
				msg.Metadata[k] = v
			case []byte:
				msg.Metadata[k] = string(v)
			default:
				msg.Metadata[k] = fmt.Sprint(v)
			}
		}
	}
	return pubsub.Delivery{
		Msg:  msg,
		Ack:  func(context.Context) error { return dl.Ack(false) },
		Nack: func(context.Context, error) error { return dl.Nack(false, true) },
	}
}

// Close stops every subscription, waits for running handlers and closes
// the connection.
func (p *PubSub) Close() error {
	if !p.life.Close() {
		return nil
	}
	p.pubMu.Lock()
	if p.pubCh != nil {
		_ = p.pubCh.Close()
	}
	p.pubMu.Unlock()
	p.connMu.Lock()
	defer p.connMu.Unlock()
	if p.conn != nil && !p.conn.IsClosed() {
		if err := p.conn.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
			return fmt.Errorf("rabbitmq close: %w", err)
		}
	}
	return nil
}

func randomHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
