// Package jetstream is the NATS JetStream pub/sub broker (Dapr type
// "pubsub.jetstream"). A topic is a subject of the stream streamName (created
// when missing, and extended with the subjects it is asked to carry); each
// subscription is a durable pull consumer named after durableName (default:
// the app ID) and the topic, with explicit acks.
//
// A message is acked only after the handler returned nil; a handler error
// Naks it (redelivered after a short delay); when the subscriber stops, a
// message waiting for a handler slot is Naked and one pulled but not yet
// handed out is redelivered after ackWait. Request
// metadata travels as message headers.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
)

// Type is the Dapr component type.
const Type = "pubsub.jetstream"

// nakDelay is how long a message whose handler failed waits before the
// server redelivers it, so a failing app is not hammered.
const nakDelay = 100 * time.Millisecond

var _ pubsub.PubSub = (*PubSub)(nil)

// PubSub is the JetStream broker.
type PubSub struct {
	log *slog.Logger
	cfg config
	nc  *nats.Conn
	js  js.JetStream

	streamMu sync.Mutex
	subjects map[string]string // topic -> stream known to carry it

	life pubsub.Lifecycle
}

type config struct {
	URL           string        // natsURL
	Name          string        // name: connection name
	StreamName    string        // streamName
	DurableName   string        // durableName (default: app ID)
	AckWait       time.Duration // ackWait
	MaxDeliver    int           // maxDeliver (default -1: unlimited)
	MaxAckPending int           // maxAckPending (0: server default)
	MemoryStorage bool          // memoryStorage: for streams we create
	Replicas      int           // replicas: for streams we create
	Concurrency   int           // concurrency: default handlers per subscription
	Token         string        // token
}

// New returns an uninitialised broker; log may be nil.
func New(log *slog.Logger) *PubSub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PubSub{log: log, subjects: make(map[string]string)}
}

func parseConfig(md components.Metadata) (config, error) {
	c := config{
		URL:         md.String("natsURL", nats.DefaultURL),
		Name:        md.String("name", "tandem - pubsub.jetstream"),
		StreamName:  md.String("streamName", ""),
		DurableName: md.String("durableName", md.AppID),
		Token:       md.String("token", ""),
	}
	var err error
	if c.AckWait, err = md.Duration("ackWait", 30*time.Second); err != nil {
		return c, err
	}
	if c.MaxDeliver, err = md.Int("maxDeliver", -1); err != nil {
		return c, err
	}
	if c.MaxAckPending, err = md.Int("maxAckPending", 0); err != nil {
		return c, err
	}
	if c.MemoryStorage, err = md.Bool("memoryStorage", false); err != nil {
		return c, err
	}
	if c.Replicas, err = md.Int("replicas", 1); err != nil {
		return c, err
	}
	// Dapr's "concurrency" here is "single"/"parallel"; a number sets the
	// handler limit.
	switch v := md.String("concurrency", ""); v {
	case "", "parallel":
		c.Concurrency = pubsub.DefaultConcurrency
	case "single":
		c.Concurrency = 1
	default:
		if c.Concurrency, err = strconv.Atoi(v); err != nil || c.Concurrency < 1 {
			return c, fmt.Errorf("component %q: metadata \"concurrency\": %q is not single, parallel or a positive number", md.Name, v)
		}
	}
	if c.DurableName == "" {
		return c, fmt.Errorf("component %q: durableName is empty and there is no app ID; set durableName", md.Name)
	}
	if c.StreamName == "" {
		c.StreamName = sanitize(md.Name)
		if c.StreamName == "" {
			c.StreamName = "tandem"
		}
	}
	return c, nil
}

// sanitize makes s usable as a stream or consumer name (no whitespace, '.',
// '*', '>', path separators).
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r <= ' ', r == '.', r == '*', r == '>', r == '/', r == '\\':
			return '_'
		}
		return r
	}, s)
}

// Init connects to NATS.
func (p *PubSub) Init(ctx context.Context, md components.Metadata) error {
	cfg, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err) // fix the metadata; retrying cannot help
	}
	p.cfg = cfg
	if md.Name != "" {
		p.log = p.log.With("component", md.Name)
	}
	opts := []nats.Option{nats.Name(cfg.Name), nats.MaxReconnects(-1)}
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	if dl, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(dl)))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return fmt.Errorf("jetstream pubsub: connect to %s: %w (check natsURL)", cfg.URL, err)
	}
	j, err := js.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("jetstream pubsub: %w", err)
	}
	p.nc, p.js = nc, j
	return nil
}

// Features: headers carry metadata, the stream keeps messages, and a durable
// consumer is shared by its subscribers.
func (p *PubSub) Features() []pubsub.Feature {
	return []pubsub.Feature{pubsub.FeatureMessageMetadata, pubsub.FeatureDurable, pubsub.FeatureConsumerGroups}
}

func (p *PubSub) isClosed() bool {
	return p.life.Closed() || p.js == nil
}

// ensureSubject makes sure a stream carries topic and returns its name: the
// configured stream is created when missing and extended when it lacks the
// subject.
func (p *PubSub) ensureSubject(ctx context.Context, topic string) (string, error) {
	p.streamMu.Lock()
	defer p.streamMu.Unlock()
	if s, ok := p.subjects[topic]; ok {
		return s, nil
	}
	name := p.cfg.StreamName
	st, err := p.js.Stream(ctx, name)
	switch {
	case errors.Is(err, js.ErrStreamNotFound):
		storage := js.FileStorage
		if p.cfg.MemoryStorage {
			storage = js.MemoryStorage
		}
		_, err = p.js.CreateStream(ctx, js.StreamConfig{
			Name:     name,
			Subjects: []string{topic},
			Storage:  storage,
			Replicas: p.cfg.Replicas,
		})
		if err != nil && !errors.Is(err, js.ErrStreamNameAlreadyInUse) {
			return "", fmt.Errorf("jetstream: create stream %q for topic %q: %w", name, topic, err)
		}
		if err != nil {
			// Created concurrently by someone else: add our subject below.
			return p.addSubjectLocked(ctx, name, topic)
		}
	case err != nil:
		return "", fmt.Errorf("jetstream: look up stream %q: %w", name, err)
	default:
		if !slices.Contains(st.CachedInfo().Config.Subjects, topic) {
			return p.addSubjectLocked(ctx, name, topic)
		}
	}
	p.subjects[topic] = name
	return name, nil
}

func (p *PubSub) addSubjectLocked(ctx context.Context, name, topic string) (string, error) {
	st, err := p.js.Stream(ctx, name)
	if err != nil {
		return "", fmt.Errorf("jetstream: look up stream %q: %w", name, err)
	}
	cfg := st.CachedInfo().Config
	if !slices.Contains(cfg.Subjects, topic) {
		cfg.Subjects = append(cfg.Subjects, topic)
		if _, err := p.js.UpdateStream(ctx, cfg); err != nil {
			return "", fmt.Errorf("jetstream: add subject %q to stream %q: %w (if another stream already has the subject, set streamName to it)", topic, name, err)
		}
	}
	p.subjects[topic] = name
	return name, nil
}

// Publish stores the message in the stream and returns once JetStream
// acknowledged it.
func (p *PubSub) Publish(ctx context.Context, req *pubsub.PublishRequest) error {
	if p.isClosed() {
		return errors.New("jetstream publish: component is closed or not initialised")
	}
	if _, err := p.ensureSubject(ctx, req.Topic); err != nil {
		return err
	}
	msg := nats.NewMsg(req.Topic)
	msg.Data = req.Data
	for k, v := range req.Metadata {
		msg.Header.Set(k, v)
	}
	if req.ContentType != "" {
		msg.Header.Set(contentTypeHeader, req.ContentType)
	}
	if _, err := p.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("jetstream publish to %q: %w", req.Topic, err)
	}
	return nil
}

const contentTypeHeader = "Content-Type"

// Subscribe creates or updates the durable consumer for the topic and starts
// pulling from it.
func (p *PubSub) Subscribe(ctx context.Context, req pubsub.SubscribeRequest, h pubsub.Handler) error {
	if p.isClosed() {
		return errors.New("jetstream subscribe: component is closed or not initialised")
	}
	stream, err := p.ensureSubject(ctx, req.Topic)
	if err != nil {
		return err
	}
	concurrency := pubsub.Concurrency(req, p.cfg.Concurrency)
	durable := sanitize(p.cfg.DurableName + "-" + req.Topic)
	cons, err := p.js.CreateOrUpdateConsumer(ctx, stream, js.ConsumerConfig{
		Durable:       durable,
		FilterSubject: req.Topic,
		AckPolicy:     js.AckExplicitPolicy,
		AckWait:       p.cfg.AckWait,
		MaxDeliver:    p.cfg.MaxDeliver,
		MaxAckPending: p.cfg.MaxAckPending,
		DeliverPolicy: js.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("jetstream subscribe to %q: consumer %q on stream %q: %w", req.Topic, durable, stream, err)
	}
	log := p.log.With("topic", req.Topic)
	ok := p.life.Go(ctx, func(ctx context.Context) {
		d := pubsub.NewDispatcher(ctx, h, pubsub.DispatcherConfig{
			Concurrency: concurrency,
			OrderingKey: req.OrderingKey,
			Log:         log,
		})
		s := fetcher{cons: cons, d: d, topic: req.Topic, batch: concurrency, log: log}
		s.run(ctx)
		d.Wait()
	})
	if !ok {
		return errors.New("jetstream subscribe: component is closed")
	}
	return nil
}

// fetchWait is how long one pull request stays open collecting messages.
const fetchWait = 5 * time.Second

// fetcher pulls batches with explicit pull requests (Fetch) rather than the
// Messages iterator: a pull is only issued when the previous batch was
// dispatched, so a busy subscription stops pulling, and there is no
// client-side pull bookkeeping to stall.
type fetcher struct {
	cons  js.Consumer
	d     *pubsub.Dispatcher
	topic string
	batch int
	log   *slog.Logger
}

func (f *fetcher) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		ok, err := f.fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			f.log.Warn("pull request failed; retrying", "error", err, "retry_in", backoff.String())
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if !ok {
			return
		}
	}
}

// fetch issues one pull request and dispatches its batch; false means the
// subscription stopped. The request is bound to ctx (FetchContext rather
// than FetchMaxWait) so that the client library's goroutine collecting the
// batch ends when the subscription stops, not fetchWait later, after Close.
func (f *fetcher) fetch(ctx context.Context) (bool, error) {
	fctx, cancel := context.WithTimeout(ctx, fetchWait)
	defer cancel()
	b, err := f.cons.Fetch(f.batch, js.FetchContext(fctx))
	if err != nil {
		return true, err
	}
	if !f.drain(ctx, b) {
		return false, nil
	}
	// A batch that ends at fetchWait without filling up is not an error.
	if err := b.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		f.log.Warn("pull request ended with an error", "error", err)
	}
	return true, nil
}

// drain dispatches one batch; false means the subscription stopped. Messages
// of the batch not handed out are left to return after ackWait.
func (f *fetcher) drain(ctx context.Context, b js.MessageBatch) bool {
	msgs := b.Messages()
	for {
		select {
		case <-ctx.Done():
			return false
		case m, ok := <-msgs:
			if !ok {
				return true
			}
			if f.d.Dispatch(delivery(ctx, f.topic, m)) != nil {
				_ = m.Nak() // stopping: hand it back right away
				return false
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func delivery(subCtx context.Context, topic string, m js.Msg) pubsub.Delivery {
	msg := &pubsub.Message{Topic: topic, Data: m.Data()}
	if md, err := m.Metadata(); err == nil {
		msg.ID = strconv.FormatUint(md.Sequence.Stream, 10)
		msg.Redelivered = md.NumDelivered > 1
	}
	for k, vs := range m.Headers() {
		if len(vs) == 0 || strings.HasPrefix(k, "Nats-") {
			continue
		}
		if k == contentTypeHeader {
			msg.ContentType = vs[0]
			continue
		}
		if msg.Metadata == nil {
			msg.Metadata = make(map[string]string)
		}
		msg.Metadata[k] = vs[0]
	}
	return pubsub.Delivery{
		Msg: msg,
		Ack: func(context.Context) error { return m.Ack() },
		Nack: func(context.Context, error) error {
			if subCtx.Err() != nil {
				return m.Nak() // stopping: let another subscriber have it now
			}
			return m.NakWithDelay(nakDelay)
		},
	}
}

// Close stops pulling, waits for running handlers and closes the connection.
func (p *PubSub) Close() error {
	if !p.life.Close() {
		return nil
	}
	if p.nc != nil {
		if err := p.nc.Flush(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			p.log.Warn("flushing acks before close failed; those messages will be redelivered", "error", err)
		}
		p.nc.Close()
	}
	return nil
}
