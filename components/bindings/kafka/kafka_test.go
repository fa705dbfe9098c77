package kafka

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/components/bindings/bindingstest"
	"github.com/tandemrun/tandem/internal/kafkatest"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// The shared bindings contract against kfake (test/apps/kafkabroker), not
// Apache Kafka.
func TestContract(t *testing.T) {
	b := kafkatest.Start(t)
	topic := "tandemtest-" + bindingstest.RandomSuffix()
	group := "g-" + bindingstest.RandomSuffix()
	bindingstest.Run(t, bindingstest.Config{
		New: func() bindings.Binding { return New(nil) },
		Metadata: func(t *testing.T) components.Metadata {
			return components.Metadata{Name: "kafka-binding", Type: Type, AppID: "app", Properties: map[string]string{
				"brokers": b.Brokers, "authType": "none", "topics": topic, "publishTopic": topic,
				"consumerGroup": group, "initialOffset": "oldest", "consumeRetryInterval": "50ms",
			}}
		},
		Send: func(data []byte) *bindings.InvokeRequest {
			return &bindings.InvokeRequest{Operation: "create", Data: data, Metadata: map[string]string{"partitionKey": "k"}}
		},
	})
}

// Records of one partition reach the app in order, one at a time, a
// failing one retried in place before those behind it; key and headers
// travel as metadata.
func TestInputOrderAndMetadata(t *testing.T) {
	b := kafkatest.Start(t)
	topic := "in-" + bindingstest.RandomSuffix()
	bd := New(nil)
	if err := bd.Init(t.Context(), components.Metadata{Name: "k", Type: Type, Properties: map[string]string{
		"brokers": b.Brokers, "authType": "none", "topics": topic, "publishTopic": topic,
		"consumerGroup": "g-" + bindingstest.RandomSuffix(), "initialOffset": "oldest", "consumeRetryInterval": "10",
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bd.Close() })
	const n = 30
	var mu sync.Mutex
	var got []int
	failed := false
	var bad error
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- bd.Read(ctx, func(_ context.Context, ev *bindings.Event) ([]byte, error) {
			i, _ := strconv.Atoi(string(ev.Data))
			mu.Lock()
			defer mu.Unlock()
			if ev.Metadata["__key"] != "same" || ev.Metadata["h"] != "v" {
				bad = errors.New("metadata lost: " + strings.Join([]string{ev.Metadata["__key"], ev.Metadata["h"]}, ","))
			}
			if i == 10 && !failed {
				failed = true
				return nil, errors.New("fails once")
			}
			got = append(got, i)
			return nil, nil
		})
	}()
	for i := range n {
		if _, err := bd.Invoke(t.Context(), &bindings.InvokeRequest{Operation: "create", Data: []byte(strconv.Itoa(i)),
			Metadata: map[string]string{"partitionKey": "same", "h": "v"}}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		l := len(got)
		mu.Unlock()
		if l >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d of %d records", l, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if bad != nil {
		t.Fatal(bad)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("order = %v", got)
		}
	}
}

// consumeRetryEnabled=false, as in Dapr: a record the app fails is handed
// to it once and the partition moves on; the group's next member does not
// get it again.
func TestConsumeRetryDisabled(t *testing.T) {
	b := kafkatest.Start(t)
	topic := "once-" + bindingstest.RandomSuffix()
	props := map[string]string{
		"brokers": b.Brokers, "authType": "none", "topics": topic, "publishTopic": topic,
		"consumerGroup": "g-" + bindingstest.RandomSuffix(), "initialOffset": "oldest",
		"consumeRetryEnabled": "false", "consumeRetryInterval": "10",
	}
	read := func(h bindings.Handler) (*Binding, func()) {
		bd := New(nil)
		if err := bd.Init(t.Context(), components.Metadata{Name: "k", Type: Type, Properties: props}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- bd.Read(ctx, h) }()
		return bd, func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			_ = bd.Close()
		}
	}
	var mu sync.Mutex
	calls := map[string]int{}
	count := func(d string) int { mu.Lock(); defer mu.Unlock(); return calls[d] }
	bd, stop := read(func(_ context.Context, ev *bindings.Event) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		calls[string(ev.Data)]++
		if string(ev.Data) == "poison" {
			return nil, errors.New("the app cannot handle it")
		}
		return nil, nil
	})
	send := func(bd *Binding, d string) {
		if _, err := bd.Invoke(t.Context(), &bindings.InvokeRequest{Operation: "create", Data: []byte(d),
			Metadata: map[string]string{"partitionKey": "same"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"poison", "after-1", "after-2"} {
		send(bd, d)
	}
	waitUntil(t, "the records behind the failed one", func() bool { return count("after-2") > 0 })
	time.Sleep(300 * time.Millisecond) // retries would have come by now
	if n := count("poison"); n != 1 {
		t.Fatalf("the failed record was handed to the app %d times, want once", n)
	}
	stop()

	next := map[string]int{}
	var nmu sync.Mutex
	bd2, stop2 := read(func(_ context.Context, ev *bindings.Event) ([]byte, error) {
		nmu.Lock()
		defer nmu.Unlock()
		next[string(ev.Data)]++
		return nil, nil
	})
	defer stop2()
	send(bd2, "marker")
	waitUntil(t, "the marker on the next member", func() bool { nmu.Lock(); defer nmu.Unlock(); return next["marker"] > 0 })
	nmu.Lock()
	defer nmu.Unlock()
	if next["poison"] > 0 || next["after-1"] > 0 {
		t.Fatalf("records came again to the next member: %v", next)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var parseConfigCases = []struct {
	name    string
	props   map[string]string
	wantErr bool
}{
	{"input", map[string]string{"brokers": "a", "authType": "none", "topics": "t1, t2", "consumerGroup": "g"}, false},
	{"output", map[string]string{"brokers": "a", "authType": "none", "publishTopic": "t"}, false},
	{"neither side", map[string]string{"brokers": "a", "authType": "none"}, true},
	{"no brokers", map[string]string{"authType": "none", "publishTopic": "t"}, true},
}

func TestParseConfig(t *testing.T) {
	for _, c := range parseConfigCases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseConfig(components.Metadata{Name: "k", Properties: c.props})
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if c.name == "input" && (len(cfg.Topics) != 2 || cfg.Topics[1] != "t2") {
				t.Errorf("topics = %q", cfg.Topics)
			}
		})
	}
}

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has a side.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range parseConfigCases {
		seeds = append(seeds, c.props)
	}
	metadatafuzz.Run(f, "fuzzed", []string{"brokers", "authType", "topics", "publishTopic", "consumerGroup", "consumerID",
		"initialOffset", "saslUsername", "saslPassword", "consumeRetryInterval"}, seeds,
		func(p map[string]string) (config, error) {
			return parseConfig(components.Metadata{Name: "fuzzed", AppID: "app", Properties: p})
		}, func(c config) error {
			if len(c.Topics) == 0 && c.PublishTopic == "" {
				return errors.New("no side")
			}
			return nil
		})
}
