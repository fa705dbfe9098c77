// Package kafka is the Apache Kafka pub/sub broker (Dapr type
// "pubsub.kafka"), on the franz-go client. Its metadata is Dapr's
// (internal/kafkaconn): brokers, consumerGroup (else consumerID, else the
// app ID), clientID, authType none/password/mtls/certificate,
// initialOffset, maxMessageBytes, consumeRetryInterval...
//
// Publishing waits for the in-sync replicas' acknowledgement. The
// "partitionKey" metadata entry is the record key (so equal keys share a
// partition); every metadata entry travels as a record header.
//
// Each subscription is a member of the consumer group, consuming its
// topic. A record's offset is committed only after the app acknowledged it
// and every record before it in its partition: a record is never skipped,
// whatever the app answers (unless consumeRetryEnabled is "false"). A failed handler is called again in place
// (first after consumeRetryInterval, doubling up to 5s) until it succeeds or
// the partition goes to another member, which then reads it again from the
// last committed offset (or use the subscription's deadLetterTopic to move
// on). With consumeRetryEnabled "false" the app is called once per record,
// as in Dapr: a failure is logged and the partition moves past the record.
// Records of one partition with the same key (or the same value of the
// subscription's ordering key) are handed to the app one at a time, in
// partition order; others run concurrently, up to the subscription's
// concurrency. When partitions are revoked in a rebalance, or the
// subscription stops, no new record is started, the handlers running finish,
// and their offsets are committed before the partitions are released.
//
// Delivered messages carry the record's headers as metadata, plus Dapr's
// __key, __partition, __offset, __topic and __timestamp entries.
//
// The tests run against franz-go's kfake, an in-memory cluster speaking the
// Kafka protocol in its own process (test/apps/kafkabroker), not Apache
// Kafka itself.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/internal/kafkaconn"
)

// Type is the Dapr component type.
const Type = "pubsub.kafka"

// Metadata keys with a meaning here.
const (
	// MetadataPartitionKey is the record key of a published message.
	MetadataPartitionKey = "partitionKey"
	// Delivered-only entries, as Dapr names them.
	MetadataKey       = "__key"
	MetadataPartition = "__partition"
	MetadataOffset    = "__offset"
	MetadataTopic     = "__topic"
	MetadataTimestamp = "__timestamp"
	// contentTypeHeader carries PublishRequest.ContentType.
	contentTypeHeader = "content-type"
)

var (
	_ pubsub.PubSub        = (*PubSub)(nil)
	_ pubsub.BulkPublisher = (*PubSub)(nil)
	_ pubsub.Backlogger    = (*PubSub)(nil)
)

// PubSub is the Kafka broker.
type PubSub struct {
	log  *slog.Logger
	cfg  kafkaconn.Config
	opts []kgo.Opt
	// cl produces and answers the admin requests of Backlog.
	cl  *kgo.Client
	adm *kadm.Client

	mu   sync.Mutex
	subs map[*subscription]struct{}

	life pubsub.Lifecycle
}

// New returns an uninitialised broker; log may be nil.
func New(log *slog.Logger) *PubSub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PubSub{log: log, subs: make(map[*subscription]struct{})}
}

// Init reads the metadata and connects to a broker.
func (p *PubSub) Init(ctx context.Context, md components.Metadata) error {
	cfg, err := kafkaconn.Parse(md.Name, md.AppID, md)
	if err != nil {
		return components.Permanent(err)
	}
	if cfg.ConsumerGroup == "" {
		return components.Permanent(fmt.Errorf("component %q: no consumerGroup, consumerID or app ID to name the consumer group", md.Name))
	}
	opts, err := cfg.Options()
	if err != nil {
		return components.Permanent(fmt.Errorf("component %q: %w", md.Name, err))
	}
	if md.Name != "" {
		p.log = p.log.With("component", md.Name)
	}
	cl, err := kgo.NewClient(append(opts, kgo.WithLogger(kafkaconn.Logger(p.log)))...)
	if err != nil {
		return components.Permanent(fmt.Errorf("kafka pubsub: %w", err))
	}
	if err := kafkaconn.Ping(ctx, cl); err != nil {
		cl.Close()
		return fmt.Errorf("kafka pubsub: reach brokers %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	p.cfg, p.opts, p.cl, p.adm = cfg, opts, cl, kadm.NewClient(cl)
	return nil
}

// Features: headers carry metadata, the log keeps records for the group's
// committed offsets, and a group shares a topic's partitions.
func (p *PubSub) Features() []pubsub.Feature {
	return []pubsub.Feature{pubsub.FeatureMessageMetadata, pubsub.FeatureDurable, pubsub.FeatureConsumerGroups}
}

func (p *PubSub) isClosed() bool { return p.cl == nil || p.life.Closed() }

// record builds the record of one message.
func record(topic string, data []byte, contentType string, md map[string]string) *kgo.Record {
	r := &kgo.Record{Topic: topic, Value: data}
	if k := md[MetadataPartitionKey]; k != "" {
		r.Key = []byte(k)
	} else if k := md[MetadataKey]; k != "" {
		// A delivered message published again (a dead letter) keeps its key.
		r.Key = []byte(k)
	}
	for k, v := range md {
		if strings.HasPrefix(k, "__") {
			continue // what we add on delivery is not carried again
		}
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	if contentType != "" && md[contentTypeHeader] == "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: contentTypeHeader, Value: []byte(contentType)})
	}
	return r
}

// Publish returns once the brokers stored the record.
func (p *PubSub) Publish(ctx context.Context, req *pubsub.PublishRequest) error {
	if !p.life.Enter() || p.cl == nil {
		return errors.New("kafka publish: component is closed or not initialised")
	}
	defer p.life.Exit()
	if err := kafkaconn.Produce(ctx, p.cl, record(req.Topic, req.Data, req.ContentType, req.Metadata)); err != nil {
		return fmt.Errorf("kafka publish to %q: %w", req.Topic, err)
	}
	return nil
}

// BulkPublish produces every entry at once and waits for all; the entries
// the brokers refused are listed.
func (p *PubSub) BulkPublish(ctx context.Context, req *pubsub.BulkPublishRequest) (pubsub.BulkPublishResponse, error) {
	var resp pubsub.BulkPublishResponse
	if !p.life.Enter() || p.cl == nil {
		return resp, errors.New("kafka bulk publish: component is closed or not initialised")
	}
	defer p.life.Exit()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		answered = make(map[string]bool, len(req.Entries))
	)
	for _, e := range req.Entries {
		r := record(req.Topic, e.Event, e.ContentType, pubsub.MergeMetadata(req.Metadata, e.Metadata))
		wg.Add(1)
		p.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				resp.FailedEntries = append(resp.FailedEntries, pubsub.BulkPublishFailure{EntryID: e.EntryID, Error: err})
			} else {
				answered[e.EntryID] = true
			}
		})
	}
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	t := time.NewTimer(kafkaconn.PublishTimeout)
	defer t.Stop()
	var stop error
	select {
	case <-waited:
	case <-ctx.Done():
		stop = ctx.Err()
	case <-t.C:
		stop = fmt.Errorf("no answer from the brokers in %s", kafkaconn.PublishTimeout)
	}
	if stop != nil {
		// Entries still unanswered count as failed; their callbacks only
		// record into answered from now on.
		mu.Lock()
		failed := make(map[string]bool, len(resp.FailedEntries))
		for _, f := range resp.FailedEntries {
			failed[f.EntryID] = true
		}
		for _, e := range req.Entries {
			if !failed[e.EntryID] && !answered[e.EntryID] {
				resp.FailedEntries = append(resp.FailedEntries, pubsub.BulkPublishFailure{EntryID: e.EntryID, Error: stop})
			}
		}
		out := resp
		out.FailedEntries = slices.Clone(resp.FailedEntries)
		mu.Unlock()
		return out, fmt.Errorf("kafka bulk publish to %q: %d of %d: %w", req.Topic, len(out.FailedEntries), len(req.Entries), pubsub.ErrBulkPartial)
	}
	if n := len(resp.FailedEntries); n > 0 {
		return resp, fmt.Errorf("kafka bulk publish to %q: %d of %d: %w", req.Topic, n, len(req.Entries), pubsub.ErrBulkPartial)
	}
	return resp, nil
}

// Close stops every subscription (their handlers finish and their offsets
// are committed) and closes the producer.
func (p *PubSub) Close() error {
	if !p.life.Close() {
		return nil
	}
	if p.cl != nil {
		p.cl.Close()
	}
	return nil
}
