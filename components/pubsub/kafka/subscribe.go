package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemrun/tandem/components/pubsub"
)

const (
	// pollRecords bounds the records one poll hands over.
	pollRecords = 500
	// settleTimeout bounds the commit of acknowledged offsets and the
	// leaving of the group when a subscription stops or partitions are
	// revoked, so brokers that are down cannot hold the sidecar.
	settleTimeout = 10 * time.Second
	// joinWait bounds how long Subscribe waits for the group to assign
	// partitions.
	joinWait = 15 * time.Second
)

// Subscribe joins the consumer group (consumerGroup, or the request's
// consumerID) for req.Topic and delivers its records to h until ctx ends or
// the broker is closed.
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
	s := &subscription{
		topic:       req.Topic,
		h:           h,
		conc:        conc,
		orderingKey: key,
		retry:       p.cfg.ConsumeRetryInterval,
		sem:         make(chan struct{}, conc),
		log:         p.log.With("topic", req.Topic, "consumer_group", group),
		parts:       make(map[int32]*partition),
		joined:      make(chan struct{}),
	}
	opts := slices.Concat(p.opts, p.cfg.GroupOptions(group), []kgo.Opt{
		kgo.ConsumeTopics(req.Topic),
		kgo.BlockRebalanceOnPoll(),
		// Sarama's default, so Tandem and daprd members can share a group;
		// eager, so a member joining gets its share in one rebalance.
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
		kgo.WithLogger(logger{s.log}),
	})
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka subscribe to %q: %w", req.Topic, err)
	}
	s.cl = cl
	p.mu.Lock()
	p.subs[s] = struct{}{}
	p.mu.Unlock()
	ok := p.life.Go(ctx, func(ctx context.Context) {
		s.run(ctx)
		p.mu.Lock()
		delete(p.subs, s)
		p.mu.Unlock()
	})
	if !ok {
		p.mu.Lock()
		delete(p.subs, s)
		p.mu.Unlock()
		cl.Close()
		return errors.New("kafka subscribe: component is closed")
	}
	// Wait until the group gave this member its share, so that records
	// published from now on are split with the members already there.
	// Brokers that are slow or down do not fail the subscription: the
	// client keeps joining in the background.
	t := time.NewTimer(joinWait)
	defer t.Stop()
	select {
	case <-s.joined:
	case <-t.C:
		s.log.Warn("the consumer group has not assigned partitions yet; joining in the background", "waited", joinWait.String())
	case <-ctx.Done():
	}
	return nil
}

// subscription is one group member consuming one topic.
type subscription struct {
	topic       string
	h           pubsub.Handler
	conc        int
	orderingKey string
	retry       time.Duration
	sem         chan struct{} // handlers running, across partitions
	log         *slog.Logger
	cl          *kgo.Client

	joined     chan struct{} // closed at the first assignment
	joinedOnce sync.Once

	mu      sync.Mutex
	parts   map[int32]*partition // the partitions assigned to us now
	stopped bool
}

// run polls until ctx ends, then stops every partition, commits what the
// app acknowledged and leaves the group.
func (s *subscription) run(ctx context.Context) {
	idle := 100 * time.Millisecond
	for {
		fs := s.cl.PollRecords(ctx, pollRecords)
		if ctx.Err() != nil || fs.IsClientClosed() {
			s.cl.AllowRebalance()
			break
		}
		var errs int
		fs.EachError(func(topic string, part int32, err error) {
			errs++
			s.log.Warn("fetch failed; the client retries", "partition", part, "error", err)
		})
		s.mu.Lock()
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if pt := s.parts[fp.Partition]; pt != nil && fp.Topic == s.topic && len(fp.Records) > 0 {
				pt.push(s, fp.Records)
			}
			// Records of a partition no longer ours were fetched before it
			// was revoked: its new owner reads them from the committed
			// offset.
		})
		s.mu.Unlock()
		// Rebalance callbacks run only between here and the next poll, so
		// records are never queued for a partition while it changes hands.
		s.cl.AllowRebalance()
		if errs > 0 && fs.NumRecords() == 0 {
			sleep(ctx, idle)
			idle = min(2*idle, 5*time.Second)
		} else {
			idle = 100 * time.Millisecond
		}
	}

	s.mu.Lock()
	s.stopped = true
	parts := s.parts
	s.parts = make(map[int32]*partition)
	s.mu.Unlock()
	s.stop(parts)

	cctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	if err := s.cl.CommitMarkedOffsets(cctx); err != nil {
		s.log.Warn("committing acknowledged offsets failed; those records will be delivered again", "error", err)
	}
	if err := s.cl.LeaveGroupContext(cctx); err != nil {
		s.log.Debug("leaving the consumer group", "error", err)
	}
	s.cl.Close()
}

// assigned starts a partition worker for each partition given to us.
func (s *subscription) assigned(_ context.Context, cl *kgo.Client, tps map[string][]int32) {
	defer s.joinedOnce.Do(func() { close(s.joined) })
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	for _, id := range tps[s.topic] {
		if s.parts[id] == nil {
			s.parts[id] = s.startPartition(cl, id)
		}
	}
}

// revoked stops the workers of partitions given away (their running
// handlers finish) and commits what the app acknowledged, so the next
// owner starts right after it.
func (s *subscription) revoked(ctx context.Context, cl *kgo.Client, tps map[string][]int32) {
	s.release(tps[s.topic])
	cctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	if err := cl.CommitMarkedOffsets(cctx); err != nil {
		s.log.Warn("committing acknowledged offsets at a rebalance failed; those records will be delivered again", "error", err)
	}
}

// lost stops the workers of partitions we lost without a clean rebalance
// (the group expired our session): a commit would be refused.
func (s *subscription) lost(_ context.Context, _ *kgo.Client, tps map[string][]int32) {
	s.release(tps[s.topic])
}

func (s *subscription) release(ids []int32) {
	s.mu.Lock()
	parts := make(map[int32]*partition, len(ids))
	for _, id := range ids {
		if pt := s.parts[id]; pt != nil {
			parts[id] = pt
			delete(s.parts, id)
		}
	}
	s.mu.Unlock()
	s.stop(parts)
}

// stop ends the partition workers and waits for their running handlers.
func (s *subscription) stop(parts map[int32]*partition) {
	for _, pt := range parts {
		pt.cancel()
	}
	var paused []int32
	for id, pt := range parts {
		<-pt.done
		pt.mu.Lock()
		if pt.paused {
			paused = append(paused, id)
		}
		pt.mu.Unlock()
	}
	if len(paused) > 0 {
		// Pausing outlives assignments: a partition we get back must fetch.
		s.cl.ResumeFetchPartitions(map[string][]int32{s.topic: paused})
	}
}

// unacked counts the records this member fetched whose offsets are not
// committed-through yet, and the offsets it marked for commit.
func (s *subscription) unacked() (n int64, marked map[int32]int64) {
	s.mu.Lock()
	for _, pt := range s.parts {
		n += pt.unsettled()
	}
	s.mu.Unlock()
	marked = make(map[int32]int64)
	for id, eo := range s.cl.MarkedOffsets()[s.topic] {
		marked[id] = eo.Offset
	}
	return n, marked
}

// partition hands one partition's records to its own Dispatcher: records
// with the same key one at a time in offset order, others concurrently,
// all within the subscription's concurrency.
type partition struct {
	id     int32
	ctx    context.Context
	cancel context.CancelFunc
	d      *pubsub.Dispatcher
	done   chan struct{}
	wake   chan struct{}
	track  tracker

	mu     sync.Mutex
	queue  []*kgo.Record
	paused bool
	high   int // queue length that pauses fetching this partition
}

func (s *subscription) startPartition(cl *kgo.Client, id int32) *partition {
	ctx, cancel := context.WithCancel(context.Background())
	pt := &partition{
		id: id, ctx: ctx, cancel: cancel,
		done: make(chan struct{}), wake: make(chan struct{}, 1),
		high: 2*s.conc + pollRecords,
	}
	// The handler waits for a slot of the subscription's concurrency;
	// given up when the partition goes away (the record is not acked and
	// its next owner reads it).
	h := func(hctx context.Context, m *pubsub.Message) error {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-s.sem }()
		return s.h(hctx, m)
	}
	pt.d = pubsub.NewDispatcher(ctx, h, pubsub.DispatcherConfig{
		Concurrency: s.conc,
		OrderingKey: s.orderingKey,
		Retries:     -1, // never skip a record: retry until it succeeds or the partition goes away
		Backoff:     s.retry,
		Log:         s.log.With("partition", id),
	})
	go pt.feed(s, cl)
	return pt
}

// push queues records from a poll; s.mu is held. A partition whose queue
// is long is paused so the others keep flowing.
func (pt *partition) push(s *subscription, recs []*kgo.Record) {
	pt.mu.Lock()
	pt.queue = append(pt.queue, recs...)
	if len(pt.queue) >= pt.high && !pt.paused {
		pt.paused = true
		s.cl.PauseFetchPartitions(map[string][]int32{s.topic: {pt.id}})
	}
	pt.mu.Unlock()
	select {
	case pt.wake <- struct{}{}:
	default:
	}
}

// next takes the next queued record, waiting for one; false when the
// partition stops.
func (pt *partition) next(s *subscription) (*kgo.Record, bool) {
	for {
		pt.mu.Lock()
		if len(pt.queue) > 0 {
			r := pt.queue[0]
			pt.queue[0] = nil
			pt.queue = pt.queue[1:]
			if pt.paused && len(pt.queue) <= pt.high/2 {
				pt.paused = false
				s.cl.ResumeFetchPartitions(map[string][]int32{s.topic: {pt.id}})
			}
			pt.mu.Unlock()
			return r, true
		}
		pt.mu.Unlock()
		select {
		case <-pt.wake:
		case <-pt.ctx.Done():
			return nil, false
		}
	}
}

func (pt *partition) unsettled() int64 {
	pt.mu.Lock()
	n := len(pt.queue)
	pt.mu.Unlock()
	return int64(n) + int64(pt.track.len())
}

// feed dispatches the partition's records until it stops, then waits for
// the handlers it started.
func (pt *partition) feed(s *subscription, cl *kgo.Client) {
	defer close(pt.done)
	defer pt.d.Wait()
	for {
		r, ok := pt.next(s)
		if !ok || pt.ctx.Err() != nil {
			return
		}
		pt.track.add(r)
		if pt.d.Dispatch(pt.delivery(cl, r)) != nil {
			return
		}
	}
}

// delivery wraps a record: its ack marks for commit the highest offset
// below which every record was acked.
func (pt *partition) delivery(cl *kgo.Client, r *kgo.Record) pubsub.Delivery {
	md := make(map[string]string, len(r.Headers)+5)
	var ct string
	for _, h := range r.Headers {
		if h.Key == contentTypeHeader {
			ct = string(h.Value)
			continue
		}
		md[h.Key] = string(h.Value)
	}
	if len(r.Key) > 0 {
		md[MetadataKey] = string(r.Key)
	}
	md[MetadataTopic] = r.Topic
	md[MetadataPartition] = strconv.FormatInt(int64(r.Partition), 10)
	md[MetadataOffset] = strconv.FormatInt(r.Offset, 10)
	md[MetadataTimestamp] = r.Timestamp.UTC().Format(time.RFC3339Nano)
	msg := &pubsub.Message{
		Topic: r.Topic, Data: r.Value, ContentType: ct, Metadata: md,
		ID: strconv.FormatInt(int64(r.Partition), 10) + "-" + strconv.FormatInt(r.Offset, 10),
	}
	return pubsub.Delivery{
		Msg: msg,
		Ack: func(context.Context) error {
			if last := pt.track.ack(r.Offset); last != nil {
				cl.MarkCommitRecords(last)
			}
			return nil
		},
		// A record not acked stays uncommitted: the partition's next owner
		// (or this member after a restart) reads it again.
	}
}

// tracker follows one partition's records from dispatch to ack and finds
// the longest acked run from the oldest, whose end may be committed.
type tracker struct {
	mu      sync.Mutex
	pending []*kgo.Record // dispatched, in offset order, not yet committable
	acked   map[int64]bool
}

func (t *tracker) add(r *kgo.Record) {
	t.mu.Lock()
	t.pending = append(t.pending, r)
	t.mu.Unlock()
}

// ack records offset as acked and returns the last record of the acked run
// at the front, nil when the front is still unacked.
func (t *tracker) ack(offset int64) *kgo.Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.acked == nil {
		t.acked = make(map[int64]bool)
	}
	t.acked[offset] = true
	var last *kgo.Record
	for len(t.pending) > 0 && t.acked[t.pending[0].Offset] {
		last = t.pending[0]
		delete(t.acked, last.Offset)
		t.pending[0] = nil
		t.pending = t.pending[1:]
	}
	return last
}

func (t *tracker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
