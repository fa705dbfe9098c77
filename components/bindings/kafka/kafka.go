// Package kafka is the Apache Kafka binding (Dapr type "bindings.kafka"),
// on the franz-go client, with Dapr's metadata (internal/kafkaconn) plus
// "topics" (the input side: comma-separated topics read as the consumer
// group) and "publishTopic" (the output side).
//
// Output: operation "create" produces req.Data to publishTopic and returns
// once the in-sync replicas stored it; the "partitionKey" (or "key")
// metadata entry is the record key, every other entry a record header.
//
// Input: records reach the app one at a time per partition, in offset
// order, with their headers and Dapr's __key, __partition, __offset,
// __topic and __timestamp entries as metadata. A record's offset is
// committed only once the app accepted it and every record before it in
// its partition; an app error makes the binding call the app again
// (consumeRetryInterval, doubling up to 5s) until it accepts the record or
// the partition goes to another member, which then reads it again. No
// record is skipped, unless consumeRetryEnabled is "false": then, as in
// Dapr, the app is called once per record, and a failure is logged and the
// partition moves past it. Dapr's binding defaults consumeRetryEnabled to
// false; Tandem's defaults it to true (a record is dropped only when the
// component asks for it).
//
// The tests run against franz-go's kfake in its own process
// (test/apps/kafkabroker), not Apache Kafka.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/internal/kafkaconn"
)

// Type is the Dapr component type.
const Type = "bindings.kafka"

// maxRetryWait caps the wait between calls of an app that keeps failing.
const maxRetryWait = 5 * time.Second

var (
	_ bindings.InputBinding  = (*Binding)(nil)
	_ bindings.OutputBinding = (*Binding)(nil)
)

// Binding is the Kafka binding.
type Binding struct {
	log          *slog.Logger
	cfg          kafkaconn.Config
	opts         []kgo.Opt
	topics       []string
	publishTopic string
	cl           *kgo.Client

	mu     sync.Mutex
	closed bool
	stop   context.CancelFunc // ends the running Reads
	wg     sync.WaitGroup     // Reads and Invokes running
	ctx    context.Context
}

// New returns an uninitialised binding; log may be nil.
func New(log *slog.Logger) *Binding {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Binding{log: log, ctx: ctx, stop: cancel}
}

// config is what Init reads beyond the connection.
type config struct {
	kafkaconn.Config
	Topics       []string // topics
	PublishTopic string   // publishTopic
}

func parseConfig(md components.Metadata) (config, error) {
	var c config
	var err error
	if c.Config, err = kafkaconn.Parse(md.Name, md.AppID, md); err != nil {
		return c, err
	}
	for _, t := range strings.Split(md.String("topics", ""), ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.Topics = append(c.Topics, t)
		}
	}
	c.PublishTopic = strings.TrimSpace(md.String("publishTopic", ""))
	if len(c.Topics) == 0 && c.PublishTopic == "" {
		return c, fmt.Errorf("component %q: metadata \"topics\" (input) or \"publishTopic\" (output) is required", md.Name)
	}
	if len(c.Topics) > 0 && c.ConsumerGroup == "" {
		return c, fmt.Errorf("component %q: metadata \"consumerGroup\" is required to read topics", md.Name)
	}
	return c, nil
}

// Init reads the metadata and connects to a broker.
func (b *Binding) Init(ctx context.Context, md components.Metadata) error {
	cfg, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err)
	}
	opts, err := cfg.Options()
	if err != nil {
		return components.Permanent(fmt.Errorf("component %q: %w", md.Name, err))
	}
	if md.Name != "" {
		b.log = b.log.With("component", md.Name)
	}
	cl, err := kgo.NewClient(append(opts, kgo.WithLogger(kafkaconn.Logger(b.log)))...)
	if err != nil {
		return components.Permanent(fmt.Errorf("kafka binding: %w", err))
	}
	if err := kafkaconn.Ping(ctx, cl); err != nil {
		cl.Close()
		return fmt.Errorf("kafka binding: reach brokers %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cfg, b.opts, b.topics, b.publishTopic, b.cl = cfg.Config, opts, cfg.Topics, cfg.PublishTopic, cl
	return nil
}

// enter holds the binding open for one call; false once closed.
func (b *Binding) enter() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.cl == nil {
		return false
	}
	b.wg.Add(1)
	return true
}

// Operations: create (produce to publishTopic).
func (b *Binding) Operations() []string { return []string{bindings.OperationCreate} }

// Invoke produces req.Data to publishTopic.
func (b *Binding) Invoke(ctx context.Context, req *bindings.InvokeRequest) (*bindings.InvokeResponse, error) {
	if req.Operation != bindings.OperationCreate {
		return nil, fmt.Errorf("kafka binding: operation %q is not supported (create)", req.Operation)
	}
	if !b.enter() {
		return nil, errors.New("kafka binding: closed or not initialised")
	}
	defer b.wg.Done()
	if b.publishTopic == "" {
		return nil, errors.New("kafka binding: no publishTopic: this component has no output side")
	}
	r := &kgo.Record{Topic: b.publishTopic, Value: req.Data}
	for k, v := range req.Metadata {
		switch {
		case k == "partitionKey" || k == "key":
			r.Key = []byte(v)
		case strings.HasPrefix(k, "__"):
		default:
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
	}
	if err := kafkaconn.Produce(ctx, b.cl, r); err != nil {
		return nil, fmt.Errorf("kafka binding: produce to %q: %w", b.publishTopic, err)
	}
	return &bindings.InvokeResponse{}, nil
}

// Read joins the consumer group for topics and hands their records to h
// until ctx ends or the binding is closed.
func (b *Binding) Read(ctx context.Context, h bindings.Handler) error {
	if !b.enter() {
		return errors.New("kafka binding: closed or not initialised")
	}
	defer b.wg.Done()
	if len(b.topics) == 0 {
		return errors.New("kafka binding: no topics: this component has no input side")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(b.ctx, cancel)()
	m, err := kafkaconn.NewMember(kafkaconn.MemberConfig{
		Topics: b.topics, Group: b.cfg.ConsumerGroup, Config: b.cfg, Options: b.opts,
		Log: b.log.With("consumer_group", b.cfg.ConsumerGroup),
		NewSink: func(pctx context.Context, _ string, _ int32) kafkaconn.Sink {
			return &sink{ctx: pctx, h: h, retry: b.cfg.ConsumeRetryInterval, once: !b.cfg.ConsumeRetryEnabled,
				escape: b.cfg.EscapeHeaders, log: b.log}
		},
	})
	if err != nil {
		return err
	}
	m.Run(ctx)
	return nil
}

// Close ends the running Reads (their handlers finish, acknowledged
// offsets are committed) and closes the producer.
func (b *Binding) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.stop()
	b.wg.Wait()
	if b.cl != nil {
		b.cl.Close()
	}
	return nil
}

// sink calls the app for one partition's records, one at a time, until
// it accepts each or the partition stops.
type sink struct {
	ctx    context.Context
	h      bindings.Handler
	retry  time.Duration
	once   bool // consumeRetryEnabled=false: a failed record is not called again
	escape bool
	log    *slog.Logger
}

func (s *sink) Dispatch(r *kgo.Record, ack func()) error {
	ev := event(r, s.escape)
	// A call under way finishes even when the partition stops; its answer
	// still counts.
	hctx := context.WithoutCancel(s.ctx)
	wait := s.retry
	for attempt := 1; ; attempt++ {
		if s.ctx.Err() != nil {
			return s.ctx.Err()
		}
		_, err := s.h(hctx, ev)
		if err == nil {
			ack()
			return nil
		}
		if s.once {
			s.log.Error("the app failed a record; consumeRetryEnabled is false, so it is not delivered again",
				"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "error", err)
			ack()
			return nil
		}
		s.log.Debug("the app did not accept a record; calling it again", "topic", r.Topic, "partition", r.Partition,
			"offset", r.Offset, "attempt", attempt, "retry_in", wait.String(), "error", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return s.ctx.Err()
		}
		wait = min(2*wait, maxRetryWait)
	}
}

// Wait: Dispatch is synchronous, nothing is left running.
func (*sink) Wait() {}

func event(r *kgo.Record, escape bool) *bindings.Event {
	return &bindings.Event{Data: r.Value, Metadata: kafkaconn.EventMetadata(r, escape)}
}
