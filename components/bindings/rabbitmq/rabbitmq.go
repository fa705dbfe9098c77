// Package rabbitmq is the bindings.rabbitmq input and output binding: one
// queue (queueName, declared at Init with durable, exclusive,
// deleteWhenUnused, maxPriority and the ttl message TTL). Output: create
// publishes the data to the queue, with the request's metadata as headers
// and per-message ttl and priority. Input: messages are delivered one at a
// time and acknowledged only once the app took them; a failed delivery is
// requeued (never dropped).
package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
)

// Type is the component's spec.type.
const Type = "bindings.rabbitmq"

// Binding is a RabbitMQ binding.
type Binding struct {
	log  *slog.Logger
	name string
	cfg  config

	mu     sync.Mutex
	conn   *amqp.Connection
	pubCh  *amqp.Channel
	closed bool
}

// New returns an uninitialised RabbitMQ binding; log may be nil.
func New(log *slog.Logger) *Binding {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Binding{log: log}
}

// Init parses the metadata, connects and declares the queue.
func (b *Binding) Init(_ context.Context, md components.Metadata) error {
	c, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err)
	}
	if _, err := c.tlsConfig(); err != nil {
		return components.Permanent(fmt.Errorf("component %q: %w", md.Name, err))
	}
	b.cfg, b.name = c, md.Name
	ch, err := b.channel()
	if err != nil {
		return fmt.Errorf("component %q: %w", md.Name, err)
	}
	defer ch.Close()
	return b.declare(ch)
}

// connection returns the open connection, dialling one if there is none.
func (b *Binding) connection() (*amqp.Connection, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("rabbitmq binding is closed")
	}
	if b.conn != nil && !b.conn.IsClosed() {
		return b.conn, nil
	}
	cfg := amqp.Config{Heartbeat: 10 * time.Second, Locale: "en_US"}
	tc, _ := b.cfg.tlsConfig()
	if tc != nil {
		cfg.TLSClientConfig = tc
		if b.cfg.ExternalSASL {
			cfg.SASL = []amqp.Authentication{&amqp.ExternalAuth{}}
		}
	}
	conn, err := amqp.DialConfig(b.cfg.Host, cfg)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: connect to %s: %w (is the server up and host right?)", redact(b.cfg.Host), err)
	}
	b.conn = conn
	return conn, nil
}

func (b *Binding) channel() (*amqp.Channel, error) {
	conn, err := b.connection()
	if err != nil {
		return nil, err
	}
	return conn.Channel()
}

// redact hides the password of an AMQP URL for messages.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = url.User(u.User.Username())
		return u.String()
	}
	return "the configured host"
}

func (b *Binding) declare(ch *amqp.Channel) error {
	args := amqp.Table{}
	if b.cfg.QueueTTL > 0 {
		args["x-message-ttl"] = int(b.cfg.QueueTTL / time.Millisecond)
	}
	if b.cfg.MaxPriority >= 0 {
		args["x-max-priority"] = uint8(b.cfg.MaxPriority)
	}
	_, err := ch.QueueDeclare(b.cfg.QueueName, b.cfg.Durable, b.cfg.DeleteWhenUnused, b.cfg.Exclusive, false, args)
	if err != nil {
		return fmt.Errorf("rabbitmq: declare queue %q: %w (a queue with other durable/exclusive/deleteWhenUnused settings may exist)", b.cfg.QueueName, err)
	}
	return nil
}

// Operations lists create.
func (b *Binding) Operations() []string { return []string{bindings.OperationCreate} }

// Invoke publishes req's data to the queue.
func (b *Binding) Invoke(ctx context.Context, req *bindings.InvokeRequest) (*bindings.InvokeResponse, error) {
	if req.Operation != bindings.OperationCreate {
		return nil, fmt.Errorf("invalid operation type: %s (rabbitmq supports create)", req.Operation)
	}
	pub := amqp.Publishing{DeliveryMode: amqp.Persistent, ContentType: "text/plain", Body: req.Data, Headers: amqp.Table{}}
	for k, v := range req.Metadata {
		pub.Headers[k] = v
	}
	if v := req.Metadata["ttl"]; v != "" || req.Metadata["ttlInSeconds"] != "" {
		if v == "" {
			v = req.Metadata["ttlInSeconds"]
		}
		d, err := ttl(v)
		if err != nil {
			return nil, fmt.Errorf("failed to get TTL: %w", err)
		}
		pub.Expiration = strconv.FormatInt(d.Milliseconds(), 10)
	}
	if v := req.Metadata["priority"]; v != "" {
		n, err := strconv.ParseUint(v, 10, 8)
		if err != nil {
			return nil, fmt.Errorf("priority value must be a number from 0 to 255: actual is '%s'", v)
		}
		pub.Priority = uint8(n)
	}
	if v := req.Metadata["contentType"]; v != "" {
		pub.ContentType = v
	}
	if v := req.Metadata["messageID"]; v != "" {
		pub.MessageId = v
	}
	if v := req.Metadata["correlationID"]; v != "" {
		pub.CorrelationId = v
	}
	if err := b.publish(ctx, pub); err != nil {
		return nil, fmt.Errorf("failed to publish message: %w", err)
	}
	return nil, nil
}

// publish sends pub on the shared publishing channel, reopening it once
// if it was lost.
func (b *Binding) publish(ctx context.Context, pub amqp.Publishing) error {
	var err error
	for range 2 {
		b.mu.Lock()
		ch := b.pubCh
		b.mu.Unlock()
		if ch == nil || ch.IsClosed() {
			if ch, err = b.channel(); err != nil {
				return err
			}
			b.mu.Lock()
			b.pubCh = ch
			b.mu.Unlock()
		}
		if err = ch.PublishWithContext(ctx, "", b.cfg.QueueName, false, false, pub); err == nil {
			return nil
		}
	}
	return err
}

// ttl reads a per-message ttl: a Go duration or a number of seconds.
func ttl(v string) (time.Duration, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return max(d, 0), nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("ttl value must be a positive integer or a duration: actual is '%s'", v)
	}
	return time.Duration(min(n, 1<<33)) * time.Second, nil
}

// Read consumes the queue until ctx ends, re-establishing the channel
// after reconnectWaitInSeconds when it is lost.
func (b *Binding) Read(ctx context.Context, h bindings.Handler) error {
	for {
		err := b.consume(ctx, h)
		if ctx.Err() != nil {
			return nil
		}
		b.log.Warn("rabbitmq input binding lost its channel; reconnecting", "binding", b.name, "queue", b.cfg.QueueName, "in", b.cfg.ReconnectWait, "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(b.cfg.ReconnectWait):
		}
	}
}

func (b *Binding) consume(ctx context.Context, h bindings.Handler) error {
	ch, err := b.channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Qos(b.cfg.PrefetchCount, 0, false); err != nil {
		return err
	}
	if err := b.declare(ch); err != nil {
		return err
	}
	deliveries, err := ch.Consume(b.cfg.QueueName, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume queue %q: %w", b.cfg.QueueName, err)
	}
	for {
		select {
		case <-ctx.Done():
			// Deliveries not handled yet go back to the queue when the
			// channel closes; the library needs them read meanwhile.
			drained := make(chan struct{})
			go func() {
				defer close(drained)
				for range deliveries {
				}
			}()
			_ = ch.Close()
			<-drained
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("delivery channel closed")
			}
			md := make(map[string]string, len(d.Headers))
			for k, v := range d.Headers {
				if s, ok := v.(string); ok {
					md[url.QueryEscape(k)] = s
				}
			}
			if _, err := h(ctx, &bindings.Event{Data: d.Body, Metadata: md}); err != nil {
				_ = d.Nack(false, true)
			} else {
				_ = d.Ack(false)
			}
		}
	}
}

// Close closes the connection; Read returns with its context.
func (b *Binding) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.conn != nil {
		err := b.conn.Close()
		b.conn = nil
		if err != nil && !errors.Is(err, amqp.ErrClosed) && !strings.Contains(err.Error(), "closed") {
			return err
		}
	}
	return nil
}
