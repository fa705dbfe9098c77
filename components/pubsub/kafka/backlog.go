package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/internal/kafkaconn"
)

// oldestWait bounds the read of the oldest unsettled records' timestamps.
const oldestWait = 5 * time.Second

// Backlog is the consumer group's lag on topic: per partition, the end
// offset less the group's position (its committed offset, or the offset
// this member marked for commit when it is further; with no commit yet,
// where initialOffset starts). Unacked is the part of it this member
// fetched and has not settled (Kafka does not know what other members
// hold, so theirs count as undelivered). Oldest is the timestamp of the
// first record past the position, read from the brokers. A topic that does
// not exist has no backlog.
func (p *PubSub) Backlog(ctx context.Context, topic string) (pubsub.Backlog, error) {
	var b pubsub.Backlog
	if !p.life.Enter() || p.adm == nil {
		return b, errors.New("kafka backlog: component is closed or not initialised")
	}
	defer p.life.Exit()
	ends, err := p.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return b, fmt.Errorf("kafka backlog of %q: end offsets: %w", topic, err)
	}
	if len(ends[topic]) == 0 {
		return b, nil
	}
	starts, err := p.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return b, fmt.Errorf("kafka backlog of %q: start offsets: %w", topic, err)
	}
	committed, err := p.adm.FetchOffsets(ctx, p.cfg.ConsumerGroup)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return b, fmt.Errorf("kafka backlog of %q: offsets of group %q: %w", topic, p.cfg.ConsumerGroup, err)
	}
	unacked, marked := p.local(topic)
	from := make(map[int32]int64)
	for part, end := range ends[topic] {
		if end.Err != nil {
			if errors.Is(end.Err, kerr.UnknownTopicOrPartition) {
				continue // the topic does not exist (yet)
			}
			return b, fmt.Errorf("kafka backlog of %q: partition %d: %w", topic, part, end.Err)
		}
		pos := int64(-1)
		if o, ok := committed.Lookup(topic, part); ok && o.Err == nil && o.At >= 0 {
			pos = o.At
		}
		if m, ok := marked[part]; ok && m > pos {
			pos = m
		}
		start, _ := starts.Lookup(topic, part)
		switch {
		case pos < 0 && p.cfg.InitialOffsetOldest:
			pos = start.Offset
		case pos < 0:
			pos = end.Offset
		}
		// Records removed by retention are not waiting for anyone.
		pos = max(pos, start.Offset)
		if lag := end.Offset - pos; lag > 0 {
			b.Undelivered += lag
			from[part] = pos
		}
	}
	b.Unacked = min(unacked, b.Undelivered)
	b.Undelivered -= b.Unacked
	if len(from) > 0 {
		b.Oldest, err = p.oldest(ctx, topic, from)
		if err != nil {
			return b, fmt.Errorf("kafka backlog of %q: oldest record: %w", topic, err)
		}
	}
	return b, nil
}

// local sums what this component's subscriptions to topic hold: records
// fetched and not settled, and the highest offsets marked for commit.
func (p *PubSub) local(topic string) (unacked int64, marked map[int32]int64) {
	marked = make(map[int32]int64)
	p.mu.Lock()
	subs := make([]*subscription, 0, len(p.subs))
	for s := range p.subs {
		if s.topic == topic {
			subs = append(subs, s)
		}
	}
	p.mu.Unlock()
	for _, s := range subs {
		n, m := s.m.Unsettled(topic)
		unacked += n
		for part, off := range m {
			marked[part] = max(marked[part], off)
		}
	}
	return unacked, marked
}

// oldest reads the first record at each partition's position with a
// short-lived direct consumer and returns the earliest timestamp.
func (p *PubSub) oldest(ctx context.Context, topic string, from map[int32]int64) (time.Time, error) {
	parts := make(map[int32]kgo.Offset, len(from))
	for part, off := range from {
		parts[part] = kgo.NewOffset().At(off)
	}
	cl, err := kgo.NewClient(slices.Concat(p.opts, []kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}),
		kgo.WithLogger(kafkaconn.Logger(p.log)),
	})...)
	if err != nil {
		return time.Time{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, oldestWait)
	defer cancel()
	var oldest time.Time
	seen := make(map[int32]bool, len(from))
	for len(seen) < len(from) {
		fs := cl.PollRecords(ctx, len(from))
		if ctx.Err() != nil {
			break // what was read so far is the best answer
		}
		fs.EachRecord(func(r *kgo.Record) {
			if seen[r.Partition] {
				return
			}
			seen[r.Partition] = true
			if oldest.IsZero() || r.Timestamp.Before(oldest) {
				oldest = r.Timestamp
			}
			cl.PauseFetchPartitions(map[string][]int32{topic: {r.Partition}})
		})
	}
	return oldest, nil
}
