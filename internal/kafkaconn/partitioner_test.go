package kafkaconn

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestEventMetadata(t *testing.T) {
	r := &kgo.Record{Topic: "t", Partition: 3, Offset: 42, Key: []byte("a b"), Timestamp: time.UnixMilli(1700000000123),
		Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x&y")}, {Key: "__offset", Value: []byte("header wins")}}}
	md := EventMetadata(r, false)
	want := map[string]string{"__key": "a b", "__topic": "t", "__partition": "3", "__offset": "header wins",
		"__timestamp": "1700000000123", "h": "x&y"}
	for k, v := range want {
		if md[k] != v {
			t.Errorf("%s = %q, want %q", k, md[k], v)
		}
	}
	if md := EventMetadata(r, true); md["__key"] != "a+b" || md["h"] != "x%26y" {
		t.Errorf("escaped = %v", md)
	}
	if md := EventMetadata(&kgo.Record{}, false); md["__key"] != "" {
		if _, ok := md["__key"]; ok {
			t.Error("__key set for a record without a key")
		}
	}
}

// Keys keep one partition, spread as sarama's hash partitioner does;
// records without a key go round the partitions.
func TestPartitioner(t *testing.T) {
	p := Partitioner().ForTopic("t")
	k := &kgo.Record{Key: []byte("order-1")}
	first := p.Partition(k, 8)
	for range 5 {
		if got := p.Partition(k, 8); got != first {
			t.Fatalf("key moved from partition %d to %d", first, got)
		}
	}
	if first != HashPartition([]byte("order-1"), 8) {
		t.Fatal("keyed record not placed by HashPartition")
	}
	seen := map[int]bool{}
	for range 8 {
		seen[p.Partition(&kgo.Record{}, 8)] = true
	}
	if len(seen) != 8 {
		t.Errorf("8 unkeyed records used %d partitions, want 8", len(seen))
	}
	for _, key := range []string{"", "a", "order-1", "\xff\xfe"} {
		if n := HashPartition([]byte(key), 7); n < 0 || n >= 7 {
			t.Errorf("HashPartition(%q, 7) = %d", key, n)
		}
	}
}
