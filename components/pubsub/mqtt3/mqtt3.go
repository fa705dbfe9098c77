// Package mqtt3 is the MQTT 3.1.1 pub/sub broker (Dapr type "pubsub.mqtt3").
// The client ID is consumerID (default: the app ID); with QoS 1 (the
// default) and cleanSession=false (the default) the broker keeps the
// session, so a restarted subscriber gets what was published while it was
// away and what it had not acknowledged.
//
// Acks are manual: a PUBACK is sent only after the handler returned nil.
// MQTT does not redeliver within a session, so a failed handler is retried
// in place with backoff until it succeeds or the subscriber stops; a message
// not acknowledged when it stops is resent by the broker on the next
// connection with the same client ID.
//
// MQTT 3 has no message headers: request metadata is not delivered (a
// message has only "retained"), and there are no consumer groups (one client
// ID, one subscriber). Publishing uses a second connection with client ID
// consumerID+"-pub". As in Dapr, stopping a subscription keeps the
// broker-side subscription (so nothing is lost across restarts) unless the
// session is clean or the subscription metadata has unsubscribeOnClose=true;
// messages that arrive for a topic with no handler wait unacked until it is
// subscribed again.
package mqtt3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/internal/pahotoken"
)

// Type is the Dapr component type.
const Type = "pubsub.mqtt3"

const (
	connectTimeout    = 10 * time.Second
	disconnectQuiesce = 250 // ms
)

var _ pubsub.PubSub = (*PubSub)(nil)

// PubSub is the MQTT 3.1.1 broker.
type PubSub struct {
	log    *slog.Logger
	cfg    config
	client mqtt.Client // subscriptions: client ID consumerID, session as configured
	pub    mqtt.Client // publishing: client ID consumerID+"-pub", clean session

	life    pubsub.Lifecycle
	mu      sync.Mutex
	subs    map[string]*subscription  // topic -> live subscription
	pending map[string][]mqtt.Message // topic -> arrived with no subscription, unacked
}

type config struct {
	URL          string // url
	ClientID     string // consumerID (default: app ID)
	QoS          byte   // qos
	Retain       bool   // retain
	CleanSession bool   // cleanSession
	Concurrency  int    // concurrency
}

func parseConfig(md components.Metadata) (config, error) {
	c := config{
		URL:      md.String("url", "tcp://127.0.0.1:1883"),
		ClientID: md.String(pubsub.MetadataConsumerID, md.AppID),
	}
	qos, err := md.Int("qos", 1)
	if err != nil {
		return c, err
	}
	if qos < 0 || qos > 2 {
		return c, fmt.Errorf("component %q: metadata \"qos\": %d is not 0, 1 or 2", md.Name, qos)
	}
	c.QoS = byte(qos)
	if c.Retain, err = md.Bool("retain", false); err != nil {
		return c, err
	}
	if c.CleanSession, err = md.Bool("cleanSession", false); err != nil {
		return c, err
	}
	if c.Concurrency, err = md.Int("concurrency", pubsub.DefaultConcurrency); err != nil {
		return c, err
	}
	if c.ClientID == "" {
		return c, fmt.Errorf("component %q: consumerID is empty and there is no app ID; set consumerID", md.Name)
	}
	return c, nil
}

// New returns an uninitialised broker; log may be nil.
func New(log *slog.Logger) *PubSub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PubSub{
		log:     log,
		subs:    make(map[string]*subscription),
		pending: make(map[string][]mqtt.Message),
	}
}

// Init connects with the configured client ID and session mode.
func (p *PubSub) Init(ctx context.Context, md components.Metadata) error {
	cfg, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err) // fix the metadata; retrying cannot help
	}
	p.cfg = cfg
	if md.Name != "" {
		p.log = p.log.With("component", md.Name)
	}
	u, broker, err := brokerURL(cfg.URL)
	if err != nil {
		return components.Permanent(err)
	}
	opts := mqtt.NewClientOptions().
		AddBroker(broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(cfg.CleanSession).
		SetAutoAckDisabled(true).
		// Handlers are called one at a time in arrival order; ours only
		// hands the message to the Dispatcher, which blocks when the
		// subscription is full (back-pressure).
		SetOrderMatters(true).
		SetAutoReconnect(true).
		SetResumeSubs(true).
		SetConnectTimeout(connectTimeout).
		SetDefaultPublishHandler(p.unrouted).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			p.log.Warn("connection lost; reconnecting", "error", err)
		})
	setAuth(opts, u)
	p.client = mqtt.NewClient(opts)
	if err := pahotoken.Connect(ctx, p.client, connectTimeout); err != nil {
		return fmt.Errorf("mqtt3: connect to %s as %q: %w (check url and that the client ID is not used by another client)", cfg.URL, cfg.ClientID, err)
	}
	// Publishing on the subscribing connection would make each publish
	// wait for the handling of messages the broker sends back on it, so
	// publishes get their own connection.
	pubOpts := mqtt.NewClientOptions().
		AddBroker(broker).
		SetClientID(cfg.ClientID + "-pub").
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectTimeout(connectTimeout)
	setAuth(pubOpts, u)
	p.pub = mqtt.NewClient(pubOpts)
	if err := pahotoken.Connect(ctx, p.pub, connectTimeout); err != nil {
		p.client.Disconnect(0)
		return fmt.Errorf("mqtt3: connect publisher to %s as %q: %w", cfg.URL, cfg.ClientID+"-pub", err)
	}
	return nil
}

// brokerURL maps Dapr's accepted URL schemes to paho's.
func brokerURL(raw string) (*url.URL, string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, "", fmt.Errorf("mqtt3: url %q is not like tcp://host:1883", raw)
	}
	scheme := u.Scheme
	switch scheme {
	case "mqtt":
		scheme = "tcp"
	case "mqtts", "tcps", "tls":
		scheme = "ssl"
	}
	return u, scheme + "://" + u.Host, nil
}

func setAuth(o *mqtt.ClientOptions, u *url.URL) {
	if u.User == nil {
		return
	}
	o.SetUsername(u.User.Username())
	if pw, ok := u.User.Password(); ok {
		o.SetPassword(pw)
	}
}

// Features: with QoS >= 1 and a persistent session, messages wait for the
// client ID.
func (p *PubSub) Features() []pubsub.Feature {
	if p.cfg.QoS >= 1 && !p.cfg.CleanSession {
		return []pubsub.Feature{pubsub.FeatureDurable}
	}
	return nil
}

func (p *PubSub) isClosed() bool {
	return p.life.Closed() || p.client == nil
}

// Publish sends the message and, for QoS >= 1, waits for the broker's ack.
// The request metadata "retain" overrides the component's.
func (p *PubSub) Publish(ctx context.Context, req *pubsub.PublishRequest) error {
	if p.isClosed() {
		return errors.New("mqtt3 publish: component is closed or not initialised")
	}
	retain := p.cfg.Retain
	if v := req.Metadata["retain"]; v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("mqtt3 publish to %q: metadata \"retain\": %q is not true or false", req.Topic, v)
		}
		retain = b
	}
	if err := pahotoken.Wait(ctx, p.pub.Publish(req.Topic, p.cfg.QoS, retain, req.Data), connectTimeout); err != nil {
		return fmt.Errorf("mqtt3 publish to %q: %w", req.Topic, err)
	}
	return nil
}

// Subscribe subscribes the client to the topic and hands it messages that
// arrived for it before (from the resumed session).
func (p *PubSub) Subscribe(ctx context.Context, req pubsub.SubscribeRequest, h pubsub.Handler) error {
	if p.isClosed() {
		return errors.New("mqtt3 subscribe: component is closed or not initialised")
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &subscription{
		ctx:   sctx,
		topic: req.Topic,
		d: pubsub.NewDispatcher(sctx, h, pubsub.DispatcherConfig{
			Concurrency: pubsub.Concurrency(req, p.cfg.Concurrency),
			OrderingKey: req.OrderingKey,
			Retries:     -1,
			Log:         p.log.With("topic", req.Topic),
		}),
	}
	if !p.life.Enter() {
		cancel()
		return errors.New("mqtt3 subscribe: component is closed")
	}
	p.mu.Lock()
	if _, dup := p.subs[req.Topic]; dup {
		p.mu.Unlock()
		cancel()
		p.life.Exit()
		return fmt.Errorf("mqtt3 subscribe: topic %q already has a subscription in this component", req.Topic)
	}
	p.subs[req.Topic] = s
	backlog := p.pending[req.Topic]
	delete(p.pending, req.Topic)
	p.mu.Unlock()

	if err := pahotoken.Wait(ctx, p.client.Subscribe(req.Topic, p.cfg.QoS, func(_ mqtt.Client, m mqtt.Message) { s.deliver(m) }), connectTimeout); err != nil {
		p.mu.Lock()
		delete(p.subs, req.Topic)
		p.pending[req.Topic] = append(backlog, p.pending[req.Topic]...)
		p.mu.Unlock()
		cancel()
		p.life.Exit()
		return fmt.Errorf("mqtt3 subscribe to %q: %w", req.Topic, err)
	}
	go func() {
		defer p.life.Exit()
		for _, m := range backlog {
			s.deliver(m)
		}
		unsubscribe := false
		select {
		case <-p.life.Stopping():
		case <-sctx.Done():
			// The subscription was removed (not the component closed): like
			// Dapr, tell the broker only for clean sessions or when asked,
			// since unsubscribing drops what the session would keep.
			unsubscribe = p.cfg.CleanSession || isTrue(req.Metadata["unsubscribeOnClose"])
		}
		cancel()
		if unsubscribe {
			if err := pahotoken.Wait(context.Background(), p.client.Unsubscribe(req.Topic), connectTimeout); err != nil {
				p.log.Warn("unsubscribing failed", "topic", req.Topic, "error", err)
			}
		}
		p.mu.Lock()
		if p.subs[req.Topic] == s {
			delete(p.subs, req.Topic)
		}
		p.mu.Unlock()
		s.d.Wait()
	}()
	return nil
}

// unrouted receives messages for topics without a live subscription (a
// resumed session delivers before Subscribe is called): they wait unacked.
func (p *PubSub) unrouted(_ mqtt.Client, m mqtt.Message) {
	p.mu.Lock()
	s := p.subs[m.Topic()]
	if s == nil {
		p.pending[m.Topic()] = append(p.pending[m.Topic()], m)
	}
	p.mu.Unlock()
	if s != nil {
		s.deliver(m)
	}
}

type subscription struct {
	ctx   context.Context
	topic string
	d     *pubsub.Dispatcher
}

// deliver hands m to the dispatcher; when the subscription is stopping m
// stays unacked and the broker resends it on the next session.
func (s *subscription) deliver(m mqtt.Message) {
	if s.ctx.Err() != nil {
		return
	}
	_ = s.d.Dispatch(pubsub.Delivery{
		Msg: &pubsub.Message{
			Topic:       m.Topic(),
			Data:        m.Payload(),
			ID:          strconv.Itoa(int(m.MessageID())),
			Redelivered: m.Duplicate(),
			Metadata:    map[string]string{"retained": strconv.FormatBool(m.Retained())},
		},
		Ack: func(context.Context) error { m.Ack(); return nil },
	})
}

// Close stops delivering, waits for running handlers and disconnects without
// unsubscribing, so the session keeps collecting messages.
func (p *PubSub) Close() error {
	if !p.life.Close() {
		return nil
	}
	if p.client != nil {
		p.client.Disconnect(disconnectQuiesce)
	}
	if p.pub != nil {
		p.pub.Disconnect(disconnectQuiesce)
	}
	return nil
}

func isTrue(v string) bool {
	b, _ := strconv.ParseBool(v)
	return b
}
