package kafkaconn

import (
	"hash/fnv"
	"net/url"
	"strconv"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Partitioner places records as Dapr's Kafka components (sarama's hash
// partitioner) do, so that Tandem and daprd publishing to one topic send
// a key to the same partition: a keyed record goes to the partition of the
// FNV-1a hash of its key; a record without a key to the next partition in
// turn, so unkeyed messages spread over a consumer group's members.
func Partitioner() kgo.Partitioner { return partitioner{} }

type partitioner struct{}

func (partitioner) ForTopic(string) kgo.TopicPartitioner { return new(topicPartitioner) }

type topicPartitioner struct{ next atomic.Uint64 }

// RequiresConsistency: a key must keep its partition even while that
// partition cannot be written to, or ordering per key would break.
func (*topicPartitioner) RequiresConsistency(r *kgo.Record) bool { return r.Key != nil }

func (p *topicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Key == nil {
		return int(p.next.Add(1) % uint64(n))
	}
	return HashPartition(r.Key, n)
}

// HashPartition is sarama's hash partitioner: FNV-1a of the key, as a
// signed 32-bit number, modulo n, made non-negative.
func HashPartition(key []byte, n int) int {
	h := fnv.New32a()
	_, _ = h.Write(key)
	part := int32(h.Sum32()) % int32(n)
	if part < 0 {
		part = -part
	}
	return int(part)
}

// EventMetadata is a delivered record's metadata as Dapr builds it: __key
// (when the record has one), __offset, __topic, __timestamp (Unix
// milliseconds) and __partition, then every header (a header of the same
// name wins); with escape (escapeHeaders) the key and header values are
// URL query escaped.
func EventMetadata(r *kgo.Record, escape bool) map[string]string {
	esc := func(b []byte) string {
		if escape {
			return url.QueryEscape(string(b))
		}
		return string(b)
	}
	md := make(map[string]string, len(r.Headers)+5)
	if r.Key != nil {
		md["__key"] = esc(r.Key)
	}
	md["__offset"] = strconv.FormatInt(r.Offset, 10)
	md["__topic"] = r.Topic
	md["__timestamp"] = strconv.FormatInt(r.Timestamp.UnixMilli(), 10)
	md["__partition"] = strconv.FormatInt(int64(r.Partition), 10)
	for _, h := range r.Headers {
		md[h.Key] = esc(h.Value)
	}
	return md
}
