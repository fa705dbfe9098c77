package inmemory_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/inmemory"
)

var matchCases = []struct {
	pattern, topic string
	want           bool
}{
	{"orders", "orders", true},
	{"orders", "orders2", false},
	{"orders.*", "orders.eu", true},
	{"orders.*", "orders.eu.paris", true},
	{"orders.*", "orders.", false}, // longer than the prefix only
	{"orders.*", "orders", false},
	{"orders.*", "order.eu", false},
	{"*", "anything", true},
	{"*", "", false},
	{"a*b", "a*b", true},
	{"a*b", "axb", false}, // "*" is a wildcard at the end only
	{"a**", "a*x", true},
	{"a**", "ax", false},
	{"", "", true},
}

func TestMatches(t *testing.T) {
	for _, tc := range matchCases {
		if got := inmemory.Matches(tc.pattern, tc.topic); got != tc.want {
			t.Errorf("Matches(%q, %q) = %t, want %t", tc.pattern, tc.topic, got, tc.want)
		}
	}
}

// FuzzMatches checks the rule against its definition: equal, or a pattern
// ending in "*" whose prefix starts a longer topic.
func FuzzMatches(f *testing.F) {
	for _, tc := range matchCases {
		f.Add(tc.pattern, tc.topic)
	}
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		got := inmemory.Matches(pattern, topic)
		prefix, wild := strings.CutSuffix(pattern, "*")
		want := pattern == topic || (wild && strings.HasPrefix(topic, prefix) && topic != prefix)
		if got != want {
			t.Fatalf("Matches(%q, %q) = %t, want %t", pattern, topic, got, want)
		}
		if got && !wild && pattern != topic {
			t.Fatalf("a pattern without a trailing * matched another topic")
		}
	})
}

// TestWildcardSubscription: a subscription to "orders.*" gets the messages
// of every orders.<x> topic, and the exact subscriber of one still gets its
// own; the broker says so in its features.
func TestWildcardSubscription(t *testing.T) {
	ps := inmemory.New(nil)
	if err := ps.Init(context.Background(), components.Metadata{Name: "mem", Type: inmemory.Type}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.Close() })
	if !pubsub.HasFeature(ps, pubsub.FeatureSubscribeWildcards) {
		t.Fatal("SUBSCRIBE_WILDCARDS not listed")
	}
	if got := pubsub.Capabilities(ps.Features()); len(got) != 1 || got[0] != "SUBSCRIBE_WILDCARDS" {
		t.Errorf("capabilities = %v, want daprd's [SUBSCRIBE_WILDCARDS]", got)
	}
	wild, exact := make(chan string, 10), make(chan string, 10)
	sub := func(topic string, ch chan string) {
		if err := ps.Subscribe(t.Context(), pubsub.SubscribeRequest{Topic: topic}, func(_ context.Context, m *pubsub.Message) error {
			ch <- m.Topic + "=" + string(m.Data)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	sub("orders.*", wild)
	sub("orders.eu", exact)
	for _, topic := range []string{"orders.eu", "orders.us", "orders", "other"} {
		if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: topic, Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	for range 2 {
		select {
		case m := <-wild:
			got[m] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("wildcard subscriber got %v, want orders.eu and orders.us", got)
		}
	}
	if !got["orders.eu=x"] || !got["orders.us=x"] {
		t.Errorf("wildcard subscriber got %v", got)
	}
	select {
	case m := <-exact:
		if m != "orders.eu=x" {
			t.Errorf("exact subscriber got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("exact subscriber got nothing")
	}
	time.Sleep(100 * time.Millisecond)
	if len(wild) != 0 || len(exact) != 0 {
		t.Errorf("extra deliveries: %d wildcard, %d exact", len(wild), len(exact))
	}
}
