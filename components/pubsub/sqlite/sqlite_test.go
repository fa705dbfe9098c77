package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/pubsubtest"
	"github.com/tandemrun/tandem/components/pubsub/sqlite"
)

// open returns an initialised broker on file with extra metadata; it is
// closed when the test ends.
func open(t *testing.T, file, appID string, props map[string]string) *sqlite.PubSub {
	t.Helper()
	p := map[string]string{
		"connectionString":  file,
		"pollInterval":      "10ms",
		"processingTimeout": "2s",
	}
	for k, v := range props {
		p[k] = v
	}
	ps := sqlite.New(nil)
	if err := ps.Init(context.Background(), components.Metadata{Name: "sq", Type: sqlite.Type, AppID: appID, Properties: p}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.Close() })
	return ps
}

func TestContract(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pubsub.db")
	pubsubtest.Run(t, func(t *testing.T) pubsub.PubSub {
		// concurrency 2: the suite's consumer group test publishes through
		// one instance, which is woken by its own Publish and, with enough
		// free slots, takes every message before the other instance polls.
		// That is correct (the group shares the topic), but the test wants
		// both instances busy: fewer slots saturate the first one. (The
		// write lock goes round by turns, so the other instance is not
		// kept waiting for it meanwhile: turn.go.)
		return open(t, file, "contract", map[string]string{"concurrency": "2"})
	})
}

// collector records deliveries by payload.
type collector struct {
	mu   sync.Mutex
	msgs map[string][]*pubsub.Message
}

func newCollector() *collector { return &collector{msgs: map[string][]*pubsub.Message{}} }

func (c *collector) handler(_ context.Context, m *pubsub.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs[string(m.Data)] = append(c.msgs[string(m.Data)], m)
	return nil
}

func (c *collector) has(k string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs[k]) > 0
}

func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func publish(t *testing.T, ps pubsub.PubSub, topic, data string, md map[string]string) {
	t.Helper()
	if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: topic, Data: []byte(data), ContentType: "text/plain", Metadata: md}); err != nil {
		t.Fatalf("Publish %q: %v", data, err)
	}
}

func subscribe(t *testing.T, ctx context.Context, ps pubsub.PubSub, req pubsub.SubscribeRequest, h pubsub.Handler) {
	t.Helper()
	if err := ps.Subscribe(ctx, req, h); err != nil {
		t.Fatalf("Subscribe %q: %v", req.Topic, err)
	}
}

// TestGroupsEachGetEverything: two sidecars (separate instances, separate
// connections to one file) of different apps each receive every message,
// also those another instance published.
func TestGroupsEachGetEverything(t *testing.T) {
	const n = 50
	file := filepath.Join(t.TempDir(), "pubsub.db")
	orders, audit, publisher := open(t, file, "orders", nil), open(t, file, "audit", nil), open(t, file, "web", nil)
	co, ca := newCollector(), newCollector()
	subscribe(t, t.Context(), orders, pubsub.SubscribeRequest{Topic: "t"}, co.handler)
	subscribe(t, t.Context(), audit, pubsub.SubscribeRequest{Topic: "t"}, ca.handler)
	for i := range n {
		publish(t, publisher, "t", "m-"+strconv.Itoa(i), map[string]string{"i": strconv.Itoa(i)})
	}
	pubsubtest.Eventually(t, "both groups to receive all messages", func() bool { return co.distinct() == n && ca.distinct() == n })
	time.Sleep(100 * time.Millisecond)
	for name, c := range map[string]*collector{"orders": co, "audit": ca} {
		c.mu.Lock()
		for k, ms := range c.msgs {
			if len(ms) != 1 {
				t.Errorf("%s: %q delivered %d times", name, k, len(ms))
			}
			m := ms[0]
			if m.Topic != "t" || m.ContentType != "text/plain" || "m-"+m.Metadata["i"] != k || m.ID == "" || m.Redelivered {
				t.Errorf("%s: message %+v", name, m)
			}
		}
		c.mu.Unlock()
	}
}

// TestStartFrom: a new group starts at the oldest message held (earliest,
// the default) or after the newest (latest); per subscription too.
func TestStartFrom(t *testing.T) {
	tests := []struct {
		name      string
		component string // startFrom metadata of the component
		sub       string // startFrom of the subscription
		wantOld   bool
	}{
		{"default is earliest", "", "", true},
		{"latest", "latest", "", false},
		{"subscription overrides", "latest", "earliest", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "pubsub.db")
			props := map[string]string{}
			if tt.component != "" {
				props["startFrom"] = tt.component
			}
			ps := open(t, file, "app", props)
			publish(t, ps, "t", "old", nil)
			c := newCollector()
			var md map[string]string
			if tt.sub != "" {
				md = map[string]string{"startFrom": tt.sub}
			}
			subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: "t", Metadata: md}, c.handler)
			publish(t, ps, "t", "new", nil)
			pubsubtest.Eventually(t, "the new message", func() bool { return c.has("new") })
			time.Sleep(50 * time.Millisecond)
			if c.has("old") != tt.wantOld {
				t.Errorf("old message delivered = %v, want %v", c.has("old"), tt.wantOld)
			}
		})
	}
}

// TestTTL: an expired message is not delivered; a bad TTL is refused.
func TestTTL(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pubsub.db")
	ps := open(t, file, "app", nil)
	publish(t, ps, "t", "short", map[string]string{pubsub.MetadataTTLInSeconds: "1"})
	publish(t, ps, "t", "long", map[string]string{pubsub.MetadataTTLInSeconds: "60"})
	time.Sleep(1100 * time.Millisecond)
	c := newCollector()
	subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: "t"}, c.handler)
	publish(t, ps, "t", "after", nil)
	pubsubtest.Eventually(t, "the live messages", func() bool { return c.has("long") && c.has("after") })
	if c.has("short") {
		t.Error("an expired message was delivered")
	}
	for _, bad := range []string{"soon", "-1", "1.5"} {
		err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: "t", Data: []byte("x"), Metadata: map[string]string{pubsub.MetadataTTLInSeconds: bad}})
		if err == nil {
			t.Errorf("ttlInSeconds %q accepted", bad)
		}
	}
}

// rows counts the rows of a table in file, through a separate connection.
func rows(t *testing.T, file, table string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRetention: old messages go once every group of their topic handled
// them, not before.
func TestRetention(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pubsub.db")
	props := map[string]string{"retention": "100ms", "cleanupInterval": "20ms"}
	a, b := open(t, file, "a", props), open(t, file, "b", props)
	// Group b registers on the topic and stops.
	bctx, stopB := context.WithCancel(t.Context())
	subscribe(t, bctx, b, pubsub.SubscribeRequest{Topic: "t"}, func(context.Context, *pubsub.Message) error { return nil })
	stopB()
	ca := newCollector()
	subscribe(t, t.Context(), a, pubsub.SubscribeRequest{Topic: "t"}, ca.handler)
	publish(t, a, "t", "m", nil)
	publish(t, a, "other", "nobody listens", nil)
	pubsubtest.Eventually(t, "a to receive the message", func() bool { return ca.has("m") })
	// The unsubscribed topic's message goes; b still needs "m".
	pubsubtest.Eventually(t, "the unwanted message to be deleted", func() bool { return rows(t, file, "pubsub_messages") == 1 })
	time.Sleep(300 * time.Millisecond)
	if n := rows(t, file, "pubsub_messages"); n != 1 {
		t.Fatalf("%d messages left; group b has not received \"m\" yet, it must be kept", n)
	}
	cb := newCollector()
	subscribe(t, t.Context(), b, pubsub.SubscribeRequest{Topic: "t"}, cb.handler)
	pubsubtest.Eventually(t, "b to receive the kept message", func() bool { return cb.has("m") })
	pubsubtest.Eventually(t, "the delivered message to be deleted", func() bool { return rows(t, file, "pubsub_messages") == 0 })
	if n := rows(t, file, "pubsub_deliveries"); n != 0 {
		t.Errorf("%d deliveries left", n)
	}
}
