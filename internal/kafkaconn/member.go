package kafkaconn

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// pollRecords bounds the records one poll hands over.
	pollRecords = 500
	// settleTimeout bounds the commit of acknowledged offsets and the
	// leaving of the group when a member stops or partitions are revoked,
	// so brokers that are down cannot hold the sidecar.
	settleTimeout = 10 * time.Second
	// joinWait bounds how long Join waits for the group to assign
	// partitions.
	joinWait = 15 * time.Second
)

// Sink takes one assigned partition's records, in offset order, and hands
// them to the app as its component does (pub/sub: concurrently per key;
// bindings: one at a time).
type Sink interface {
	// Dispatch hands r over; it may block while the sink is full. ack, to
	// be called once the app acknowledged r, lets r's offset be committed
	// once every record before it was acknowledged too. An error means the
	// partition stopped: r was not taken.
	Dispatch(r *kgo.Record, ack func()) error
	// Wait returns once every record dispatched was settled or given up
	// because the partition's context ended (a record not acked is read
	// again by the partition's next owner).
	Wait()
}

// MemberConfig describes a consumer group member.
type MemberConfig struct {
	Topics []string
	Group  string
	// Options are the client options (Config.Options); the group options
	// come from Config.GroupOptions.
	Config  Config
	Options []kgo.Opt
	// NewSink returns the sink of a newly assigned partition; ctx ends when
	// the partition is revoked or lost, or the member stops.
	NewSink func(ctx context.Context, topic string, partition int32) Sink
	// QueueHigh is the number of fetched records waiting for one
	// partition's sink above which that partition's fetching pauses.
	QueueHigh int
	Log       *slog.Logger
}

// Member is one consumer group member: it commits a record's offset only
// after the app acknowledged it and every record before it in its
// partition, so no record is ever skipped. On a rebalance or when it
// stops, it starts no new record, lets the running ones finish, commits
// what was acknowledged, then lets the partitions go.
type Member struct {
	cfg    MemberConfig
	log    *slog.Logger
	cl     *kgo.Client
	joined chan struct{}
	once   sync.Once

	mu      sync.Mutex
	parts   map[tp]*partition
	stopped bool
}

type tp struct {
	topic string
	part  int32
}

// NewMember creates the member's client, which starts joining the group.
// Call Run, then (or meanwhile) WaitJoined.
func NewMember(cfg MemberConfig) (*Member, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.QueueHigh <= 0 {
		cfg.QueueHigh = pollRecords
	}
	m := &Member{cfg: cfg, log: cfg.Log, joined: make(chan struct{}), parts: make(map[tp]*partition)}
	opts := slices.Concat(cfg.Options, cfg.Config.GroupOptions(cfg.Group), []kgo.Opt{
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.BlockRebalanceOnPoll(),
		// Sarama's default, so Tandem and daprd members can share a group;
		// eager, so a member joining gets its share in one rebalance.
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.OnPartitionsAssigned(m.assigned),
		kgo.OnPartitionsRevoked(m.revoked),
		kgo.OnPartitionsLost(m.lost),
		kgo.WithLogger(Logger(cfg.Log)),
	})
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka consumer group %q: %w", cfg.Group, err)
	}
	m.cl = cl
	return m, nil
}

// Close releases a member whose Run was never called.
func (m *Member) Close() { m.cl.Close() }

// WaitJoined waits until the group gave this member its share (so records
// published from then on are split with the members already there), at
// most joinWait or until ctx ends. Brokers that are slow or down do not
// fail it: the client keeps joining in the background.
func (m *Member) WaitJoined(ctx context.Context) {
	t := time.NewTimer(joinWait)
	defer t.Stop()
	select {
	case <-m.joined:
	case <-t.C:
		m.log.Warn("the consumer group has not assigned partitions yet; joining in the background", "waited", joinWait.String())
	case <-ctx.Done():
	}
}

// Run polls until ctx ends, then stops every partition, commits what the
// app acknowledged and leaves the group.
func (m *Member) Run(ctx context.Context) {
	idle := 100 * time.Millisecond
	for {
		fs := m.cl.PollRecords(ctx, pollRecords)
		if ctx.Err() != nil || fs.IsClientClosed() {
			m.cl.AllowRebalance()
			break
		}
		var errs int
		fs.EachError(func(topic string, part int32, err error) {
			errs++
			m.log.Warn("fetch failed; the client retries", "topic", topic, "partition", part, "error", err)
		})
		m.mu.Lock()
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if pt := m.parts[tp{fp.Topic, fp.Partition}]; pt != nil && len(fp.Records) > 0 {
				pt.push(m, fp.Records)
			}
			// Records of a partition no longer ours were fetched before it
			// was revoked: its new owner reads them from the committed
			// offset.
		})
		m.mu.Unlock()
		// Rebalance callbacks run only between here and the next poll, so
		// records are never queued for a partition while it changes hands.
		m.cl.AllowRebalance()
		if errs > 0 && fs.NumRecords() == 0 {
			sleep(ctx, idle)
			idle = min(2*idle, 5*time.Second)
		} else {
			idle = 100 * time.Millisecond
		}
	}

	m.mu.Lock()
	m.stopped = true
	parts := m.parts
	m.parts = make(map[tp]*partition)
	m.mu.Unlock()
	m.stop(parts)

	cctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	if err := m.cl.CommitMarkedOffsets(cctx); err != nil {
		m.log.Warn("committing acknowledged offsets failed; those records will be delivered again", "error", err)
	}
	if err := m.cl.LeaveGroupContext(cctx); err != nil {
		m.log.Debug("leaving the consumer group", "error", err)
	}
	m.cl.Close()
}

// assigned starts a partition worker for each partition given to us.
func (m *Member) assigned(_ context.Context, cl *kgo.Client, tps map[string][]int32) {
	defer m.once.Do(func() { close(m.joined) })
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return
	}
	for topic, ids := range tps {
		for _, id := range ids {
			if k := (tp{topic, id}); m.parts[k] == nil {
				m.parts[k] = m.startPartition(cl, k)
			}
		}
	}
	m.mu.Unlock()
	if !m.cfg.Config.InitialOffsetOldest {
		m.pinNewest(cl, tps)
	}
}

// pinNewest starts the assigned partitions that have no committed offset
// at their end offset as of now, the join, rather than when the client
// gets round to asking: with initialOffset newest, a record published once
// Join returned is then never skipped.
func (m *Member) pinNewest(cl *kgo.Client, tps map[string][]int32) {
	topics := make([]string, 0, len(tps))
	for t, ids := range tps {
		if len(ids) > 0 {
			topics = append(topics, t)
		}
	}
	if len(topics) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	adm := kadm.NewClient(cl)
	committed, err := adm.FetchOffsetsForTopics(ctx, m.cfg.Group, topics...)
	if err != nil {
		m.log.Warn("reading the group's offsets at assignment failed; partitions without one start at their end when fetched", "error", err)
		return
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		m.log.Warn("reading end offsets at assignment failed; partitions without a commit start at their end when fetched", "error", err)
		return
	}
	set := make(map[string]map[int32]kgo.EpochOffset)
	for t, ids := range tps {
		for _, id := range ids {
			if o, ok := committed.Lookup(t, id); ok && o.Err == nil && o.At >= 0 {
				continue
			}
			end, ok := ends.Lookup(t, id)
			if !ok || end.Err != nil || end.Offset < 0 {
				continue
			}
			if set[t] == nil {
				set[t] = make(map[int32]kgo.EpochOffset)
			}
			set[t][id] = kgo.EpochOffset{Epoch: -1, Offset: end.Offset}
		}
	}
	if len(set) > 0 {
		cl.SetOffsets(set)
	}
}

// revoked stops the workers of partitions given away (their running
// handlers finish) and commits what the app acknowledged, so the next
// owner starts right after it.
func (m *Member) revoked(ctx context.Context, cl *kgo.Client, tps map[string][]int32) {
	m.release(tps)
	cctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	if err := cl.CommitMarkedOffsets(cctx); err != nil {
		m.log.Warn("committing acknowledged offsets at a rebalance failed; those records will be delivered again", "error", err)
	}
}

// lost stops the workers of partitions lost without a clean rebalance (the
// group expired our session): a commit would be refused.
func (m *Member) lost(_ context.Context, _ *kgo.Client, tps map[string][]int32) {
	m.release(tps)
}

func (m *Member) release(tps map[string][]int32) {
	m.mu.Lock()
	parts := make(map[tp]*partition)
	for topic, ids := range tps {
		for _, id := range ids {
			k := tp{topic, id}
			if pt := m.parts[k]; pt != nil {
				parts[k] = pt
				delete(m.parts, k)
			}
		}
	}
	m.mu.Unlock()
	m.stop(parts)
}

// stop ends the partition workers and waits for their running handlers.
func (m *Member) stop(parts map[tp]*partition) {
	for _, pt := range parts {
		pt.cancel()
	}
	paused := make(map[string][]int32)
	for k, pt := range parts {
		<-pt.done
		pt.mu.Lock()
		if pt.paused {
			paused[k.topic] = append(paused[k.topic], k.part)
		}
		pt.mu.Unlock()
	}
	if len(paused) > 0 {
		// Pausing outlives assignments: a partition we get back must fetch.
		m.cl.ResumeFetchPartitions(paused)
	}
}

// Unsettled counts the records of topic this member fetched whose offsets
// cannot be committed yet, and returns the offsets it marked for commit.
func (m *Member) Unsettled(topic string) (n int64, marked map[int32]int64) {
	m.mu.Lock()
	for k, pt := range m.parts {
		if k.topic == topic {
			n += pt.unsettled()
		}
	}
	m.mu.Unlock()
	marked = make(map[int32]int64)
	for id, eo := range m.cl.MarkedOffsets()[topic] {
		marked[id] = eo.Offset
	}
	return n, marked
}

// partition feeds one partition's fetched records to its Sink.
type partition struct {
	k      tp
	ctx    context.Context
	cancel context.CancelFunc
	sink   Sink
	done   chan struct{}
	wake   chan struct{}
	track  tracker

	mu     sync.Mutex
	queue  []*kgo.Record
	paused bool
}

func (m *Member) startPartition(cl *kgo.Client, k tp) *partition {
	ctx, cancel := context.WithCancel(context.Background())
	pt := &partition{k: k, ctx: ctx, cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	pt.sink = m.cfg.NewSink(ctx, k.topic, k.part)
	go pt.feed(m, cl)
	return pt
}

// push queues records from a poll; m.mu is held. A partition whose queue
// is long is paused so the others keep flowing.
func (pt *partition) push(m *Member, recs []*kgo.Record) {
	pt.mu.Lock()
	pt.queue = append(pt.queue, recs...)
	if len(pt.queue) >= m.cfg.QueueHigh && !pt.paused {
		pt.paused = true
		m.cl.PauseFetchPartitions(map[string][]int32{pt.k.topic: {pt.k.part}})
	}
	pt.mu.Unlock()
	select {
	case pt.wake <- struct{}{}:
	default:
	}
}

// next takes the next queued record, waiting for one; false when the
// partition stops.
func (pt *partition) next(m *Member) (*kgo.Record, bool) {
	for {
		pt.mu.Lock()
		if len(pt.queue) > 0 {
			r := pt.queue[0]
			pt.queue[0] = nil
			pt.queue = pt.queue[1:]
			if pt.paused && len(pt.queue) <= m.cfg.QueueHigh/2 {
				pt.paused = false
				m.cl.ResumeFetchPartitions(map[string][]int32{pt.k.topic: {pt.k.part}})
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
// the sink to settle what it took.
func (pt *partition) feed(m *Member, cl *kgo.Client) {
	defer close(pt.done)
	defer pt.sink.Wait()
	for {
		r, ok := pt.next(m)
		if !ok || pt.ctx.Err() != nil {
			return
		}
		pt.track.add(r)
		ack := func() {
			if last := pt.track.ack(r.Offset); last != nil {
				cl.MarkCommitRecords(last)
			}
		}
		if pt.sink.Dispatch(r, ack) != nil {
			return
		}
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

// Logger sends the client's warnings and errors to log; its info and
// debug lines (every rebalance step) stay out.
func Logger(log *slog.Logger) kgo.Logger { return logger{log} }

type logger struct{ log *slog.Logger }

func (l logger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l logger) Log(level kgo.LogLevel, msg string, kv ...any) {
	switch level {
	case kgo.LogLevelError:
		l.log.Error("kafka client: "+msg, kv...)
	case kgo.LogLevelWarn:
		l.log.Warn("kafka client: "+msg, kv...)
	}
}

// Produce sends r and waits for the brokers' answer, at most until ctx
// ends or PublishTimeout passes: the client keeps a record it has buffered
// while the brokers are unreachable, so the caller is told it failed (it
// may still arrive later: at least once).
func Produce(ctx context.Context, cl *kgo.Client, r *kgo.Record) error {
	done := make(chan error, 1)
	cl.Produce(ctx, r, func(_ *kgo.Record, err error) { done <- err })
	t := time.NewTimer(PublishTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("no answer from the brokers in %s", PublishTimeout)
	}
}
