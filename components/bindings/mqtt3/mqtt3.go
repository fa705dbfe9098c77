// Package mqtt3 is the bindings.mqtt3 input and output binding (MQTT
// 3.1.1, QoS 1). Output: create publishes the data to the topic metadata
// (or the request's topic metadata), retained if retain is set. Input:
// messages of the topic (wildcards allowed) are delivered one at a time in
// arrival order and acknowledged only once the app took them; a failed
// delivery is retried with backoff (backOffMaxRetries times; -1, the
// default, until it succeeds or the binding stops, when the unacknowledged
// message is left to the broker's session).
package mqtt3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/internal/pahotoken"
)

// Type is the component's spec.type.
const Type = "bindings.mqtt3"

const (
	qos            = 1
	connectTimeout = 10 * time.Second
	backoffMin     = 100 * time.Millisecond
	backoffMax     = 5 * time.Second
)

// config is the component's metadata, with Dapr's names and defaults.
type config struct {
	URL               string // url: tcp://host:1883, mqtt://, ssl://, mqtts://
	Topic             string // topic
	ClientID          string // consumerID
	Retain            bool   // retain
	CleanSession      bool   // cleanSession
	BackOffMaxRetries int    // backOffMaxRetries; -1: until delivered
	CACert            string // caCert (PEM)
	ClientCert        string // clientCert (PEM)
	ClientKey         string // clientKey (PEM)
}

func parseConfig(md components.Metadata) (config, error) {
	c := config{URL: md.String("url", ""), Topic: md.String("topic", ""), ClientID: md.String("consumerID", "")}
	for _, req := range []struct{ name, v string }{{"url", c.URL}, {"topic", c.Topic}, {"consumerID", c.ClientID}} {
		if req.v == "" {
			return c, fmt.Errorf("component %q: metadata %q is required", md.Name, req.name)
		}
	}
	if _, _, err := brokerURL(c.URL); err != nil {
		return c, fmt.Errorf("component %q: metadata %q: %w", md.Name, "url", err)
	}
	var err error
	if c.Retain, err = md.Bool("retain", false); err != nil {
		return c, err
	}
	if c.CleanSession, err = md.Bool("cleanSession", false); err != nil {
		return c, err
	}
	if c.BackOffMaxRetries, err = md.Int("backOffMaxRetries", -1); err != nil {
		return c, err
	}
	if c.BackOffMaxRetries < -1 {
		return c, fmt.Errorf("component %q: metadata %q must be -1 (until delivered) or more", md.Name, "backOffMaxRetries")
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"caCert", &c.CACert}, {"clientCert", &c.ClientCert}, {"clientKey", &c.ClientKey}} {
		v := md.String(p.name, "")
		if v == "" {
			continue
		}
		if b, _ := pem.Decode([]byte(v)); b == nil {
			return c, fmt.Errorf("component %q: metadata %q is not PEM", md.Name, p.name)
		}
		*p.dst = v
	}
	return c, nil
}

// brokerURL maps Dapr's accepted URL schemes to paho's.
func brokerURL(raw string) (*url.URL, string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, "", fmt.Errorf("%q is not like tcp://host:1883", raw)
	}
	scheme := u.Scheme
	switch scheme {
	case "mqtt", "tcp":
		scheme = "tcp"
	case "mqtts", "tcps", "tls", "ssl":
		scheme = "ssl"
	default:
		return nil, "", fmt.Errorf("%q: scheme must be tcp, mqtt, ssl or mqtts", raw)
	}
	return u, scheme + "://" + u.Host, nil
}

// Binding is an MQTT binding.
type Binding struct {
	log  *slog.Logger
	name string
	cfg  config

	mu  sync.Mutex
	pub mqtt.Client
}

// New returns an uninitialised MQTT binding; log may be nil.
func New(log *slog.Logger) *Binding {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Binding{log: log}
}

// options builds the client options for clientID.
func (b *Binding) options(clientID string, clean bool) (*mqtt.ClientOptions, error) {
	u, broker, _ := brokerURL(b.cfg.URL)
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(clientID).SetCleanSession(clean).
		SetAutoReconnect(true).SetConnectTimeout(connectTimeout)
	if u.User != nil {
		o.SetUsername(u.User.Username())
		if pw, ok := u.User.Password(); ok {
			o.SetPassword(pw)
		}
	}
	if b.cfg.CACert != "" || b.cfg.ClientCert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if b.cfg.CACert != "" {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(b.cfg.CACert)) {
				return nil, errors.New("caCert holds no certificate")
			}
			tc.RootCAs = pool
		}
		if b.cfg.ClientCert != "" && b.cfg.ClientKey != "" {
			cert, err := tls.X509KeyPair([]byte(b.cfg.ClientCert), []byte(b.cfg.ClientKey))
			if err != nil {
				return nil, fmt.Errorf("client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		o.SetTLSConfig(tc)
	}
	return o, nil
}

// Init parses the metadata and connects the publishing client.
func (b *Binding) Init(ctx context.Context, md components.Metadata) error {
	c, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err)
	}
	b.cfg, b.name = c, md.Name
	o, err := b.options(c.ClientID+"-producer", true)
	if err != nil {
		return components.Permanent(fmt.Errorf("component %q: %w", md.Name, err))
	}
	pub := mqtt.NewClient(o)
	if err := pahotoken.Connect(ctx, pub, connectTimeout); err != nil {
		return fmt.Errorf("component %q: mqtt3: connect to %s: %w (is the broker up and url right?)", md.Name, c.URL, err)
	}
	// With a persistent session, subscribe once now: messages published
	// before Read connects wait in the broker for this client ID.
	if dir, _, err := bindings.DirectionOf(md); err == nil && dir.Input && !c.CleanSession {
		if err := b.primeSession(ctx); err != nil {
			pub.Disconnect(0)
			return fmt.Errorf("component %q: mqtt3: subscribe to %q as %q: %w", md.Name, c.Topic, c.ClientID, err)
		}
	}
	b.mu.Lock()
	b.pub = pub
	b.mu.Unlock()
	return nil
}

// primeSession subscribes the consumer's client ID to the topic and
// disconnects, leaving the broker to keep its messages for Read.
func (b *Binding) primeSession(ctx context.Context) error {
	o, err := b.options(b.cfg.ClientID, false)
	if err != nil {
		return err
	}
	// What arrives meanwhile is not acknowledged: the broker sends it
	// again to Read.
	o.SetAutoAckDisabled(true)
	sub := mqtt.NewClient(o)
	if err := pahotoken.Connect(ctx, sub, connectTimeout); err != nil {
		return err
	}
	defer sub.Disconnect(0)
	return pahotoken.Wait(ctx, sub.Subscribe(b.cfg.Topic, qos, nil), connectTimeout)
}

// Operations lists create.
func (b *Binding) Operations() []string { return []string{bindings.OperationCreate} }

// Invoke publishes req's data.
func (b *Binding) Invoke(ctx context.Context, req *bindings.InvokeRequest) (*bindings.InvokeResponse, error) {
	if req.Operation != bindings.OperationCreate {
		return nil, fmt.Errorf("invalid operation type: %s (mqtt3 supports create)", req.Operation)
	}
	b.mu.Lock()
	pub := b.pub
	b.mu.Unlock()
	if pub == nil {
		return nil, errors.New("mqtt3 binding is closed")
	}
	topic := req.Metadata["topic"]
	if topic == "" {
		topic = b.cfg.Topic
	}
	retain := b.cfg.Retain
	if v := req.Metadata["retain"]; v != "" {
		retain = v == "true"
	}
	if err := pahotoken.Wait(ctx, pub.Publish(topic, qos, retain, req.Data), connectTimeout); err != nil {
		return nil, fmt.Errorf("failed to publish: %w", err)
	}
	return nil, nil
}

// Read subscribes to the topic until ctx ends.
func (b *Binding) Read(ctx context.Context, h bindings.Handler) error {
	o, err := b.options(b.cfg.ClientID, b.cfg.CleanSession)
	if err != nil {
		return err
	}
	// Read returns only once the handlers it started have returned. stop
	// turns new ones away and waits for those running; Read calls it before
	// it closes the connection, because paho's Subscribe (in the connect
	// handler) waits for its write timeout on a connection closed under it.
	var running sync.WaitGroup
	var mu sync.Mutex
	stopped := false
	enter := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			running.Add(1)
		}
		return !stopped
	}
	stop := func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		running.Wait()
	}
	handle := func(_ mqtt.Client, m mqtt.Message) {
		if !enter() {
			return // unacknowledged: the broker's session keeps it
		}
		defer running.Done()
		b.handle(ctx, h, m)
	}
	o.SetAutoAckDisabled(true).SetOrderMatters(true).SetResumeSubs(true).SetDefaultPublishHandler(handle).
		SetWriteTimeout(connectTimeout).
		SetOnConnectHandler(func(c mqtt.Client) {
			if !enter() {
				return
			}
			defer running.Done()
			if err := pahotoken.Wait(ctx, c.Subscribe(b.cfg.Topic, qos, handle), connectTimeout); err != nil && ctx.Err() == nil {
				b.log.Error("mqtt3 input binding could not subscribe; it tries again on reconnect", "binding", b.name, "topic", b.cfg.Topic, "error", err)
			}
		})
	client := mqtt.NewClient(o)
	defer client.Disconnect(250) // after stop, below
	defer stop()
	for ctx.Err() == nil {
		t := client.Connect()
		err := pahotoken.Wait(ctx, t, connectTimeout)
		if err == nil {
			<-ctx.Done()
			return nil
		}
		// A connection still being made is let finish (at most
		// connectTimeout); when ctx ended, it is closed after stop.
		t.WaitTimeout(connectTimeout)
		if ctx.Err() != nil {
			return nil
		}
		client.Disconnect(0)
		b.log.Warn("mqtt3 input binding cannot connect; retrying", "binding", b.name, "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

// handle delivers one message, retrying with backoff, and acknowledges it
// once delivered.
func (b *Binding) handle(ctx context.Context, h bindings.Handler, m mqtt.Message) {
	wait := backoffMin
	for attempt := 0; ; attempt++ {
		_, err := h(ctx, &bindings.Event{Data: m.Payload(), Metadata: map[string]string{"topic": m.Topic()}})
		if err == nil {
			m.Ack()
			return
		}
		if b.cfg.BackOffMaxRetries >= 0 && attempt >= b.cfg.BackOffMaxRetries {
			b.log.Error("mqtt3 message not delivered; giving up as backOffMaxRetries says", "binding", b.name, "topic", m.Topic(), "error", err)
			m.Ack()
			return
		}
		select {
		case <-ctx.Done():
			return // unacknowledged: the broker's session keeps it
		case <-time.After(wait):
		}
		wait = min(wait*2, backoffMax)
	}
}

// Close disconnects the publishing client.
func (b *Binding) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pub != nil {
		b.pub.Disconnect(250)
		b.pub = nil
	}
	return nil
}
