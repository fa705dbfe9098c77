package e2e

// The Kafka tests run the sidecars against franz-go's kfake
// (test/apps/kafkabroker, started by internal/kafkatest), an in-memory
// cluster speaking the Kafka protocol in a process of its own on a random
// loopback port. It is the closest real peer available: there is no Apache
// Kafka server and no Docker on the machines these tests run on, so what
// kfake does not implement (or implements differently from Apache Kafka) is
// not covered here.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/dapr/go-sdk/service/common"
	daprd "github.com/dapr/go-sdk/service/grpc"

	"github.com/tandemrun/tandem/internal/kafkatest"
	"github.com/tandemrun/tandem/test/e2e/framework"
)

// kafkaComponent is a component of type typ named name on the brokers,
// with the extra metadata items (name, value pairs).
func kafkaComponent(name, typ, brokers string, extra ...string) string {
	items := append([]string{"brokers", brokers, "authType", "none",
		// A group whose partitions have no committed offset yet starts at
		// their beginning: with "newest" (Dapr's default), records published
		// to such a partition before a member first joined would be skipped,
		// as in Kafka itself.
		"initialOffset", "oldest",
		// Kafka's smallest session timeout, so that the member of a killed
		// sidecar leaves the group in seconds.
		"sessionTimeout", "6s", "heartbeatInterval", "1s"}, extra...)
	y := "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: " + name + "\nspec:\n  type: " + typ + "\n  version: v1\n  metadata:\n"
	for i := 0; i+1 < len(items); i += 2 {
		y += fmt.Sprintf("  - name: %s\n    value: %q\n", items[i], items[i+1])
	}
	return y
}

// resourcesDir writes the components into a new folder and returns it.
func resourcesDir(t *testing.T, components ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i, c := range components {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("c%d.yaml", i)), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startSDKApp serves svc (the Dapr Go SDK's gRPC app service) on a loopback
// port until the test ends and returns the port.
func startSDKApp(t *testing.T, register func(s common.Service) error) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := daprd.NewServiceWithListener(lis)
	if err := register(svc); err != nil {
		t.Fatal(err)
	}
	go func() { _ = svc.Start() }()
	t.Cleanup(func() { _ = svc.GracefulStop() })
	return lis.Addr().(*net.TCPAddr).Port
}

// seqCounter counts deliveries per sequence number.
type seqCounter struct {
	mu    sync.Mutex
	seen  map[int]int
	total int
}

func (c *seqCounter) add(seq int) {
	c.mu.Lock()
	c.seen[seq]++
	c.total++
	c.mu.Unlock()
}

// missing counts the numbers of 0..n-1 never delivered and returns the
// first few; dups counts deliveries beyond the first of each number.
func (c *seqCounter) missing(n int) (count int, first []int, dups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range n {
		if c.seen[i] == 0 {
			count++
			if len(first) < 20 {
				first = append(first, i)
			}
		}
	}
	for _, k := range c.seen {
		dups += k - 1
	}
	return count, first, dups
}

func (c *seqCounter) delivered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// TestKafkaPubSubKillRestart publishes 2,000 numbered messages with the Dapr
// Go SDK through one sidecar to a pubsub.kafka topic, while the sidecar of
// the subscriber (a Go SDK gRPC app, slower than the publishers) is killed
// with SIGKILL and restarted twice mid-stream. Every message must reach the app; duplicates (records
// delivered but not yet committed at a kill come again) are counted and
// reported.
func TestKafkaPubSubKillRestart(t *testing.T) {
	broker := kafkatest.Start(t, "--partitions", "4")
	topic := randomTopic("kafka-e2e")
	const n = 2000
	got := &seqCounter{seen: map[int]int{}}
	var bad atomic.Value
	appPort := startSDKApp(t, func(s common.Service) error {
		// Two handlers at a time, 5ms each: the publishers outrun the app,
		// so at each kill the sidecar holds records fetched and not yet
		// delivered, besides those in flight.
		sub := &common.Subscription{PubsubName: "kafka-pubsub", Topic: topic, Metadata: map[string]string{"maxConcurrency": "2"}}
		return s.AddTopicEventHandler(sub,
			func(_ context.Context, e *common.TopicEvent) (bool, error) {
				var d struct {
					Seq *int `json:"seq"`
				}
				if err := json.Unmarshal(e.RawData, &d); err != nil || d.Seq == nil {
					bad.CompareAndSwap(nil, fmt.Sprintf("event without a seq: %q", e.RawData))
					return false, nil
				}
				time.Sleep(5 * time.Millisecond)
				got.add(*d.Seq)
				return false, nil
			})
	})
	comp := kafkaComponent("kafka-pubsub", "pubsub.kafka", broker.Brokers)
	sub := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "kafka-sub", AppPort: appPort, AppProtocol: "grpc", ResourcesDir: resourcesDir(t, comp),
	})
	pub := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "kafka-pub", ResourcesDir: resourcesDir(t, comp)})
	client, err := dapr.NewClientWithAddress(pub.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Warm-up: seq -1 until it arrives, so the subscription is up.
	deadline := time.Now().Add(60 * time.Second)
	for got.delivered() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the warm-up event never arrived\n%s", sub.Output())
		}
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := client.PublishEvent(pctx, "kafka-pubsub", topic, map[string]any{"seq": -1}); err != nil {
			t.Logf("warm-up publish: %v", err)
		}
		pcancel()
		time.Sleep(500 * time.Millisecond)
	}

	// Eight publishers share the numbers 0..n-1.
	var published, next atomic.Int64
	var pubWG sync.WaitGroup
	pubErr := make(chan error, 8)
	for range 8 {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := publishSeq(ctx, client, "kafka-pubsub", topic, i); err != nil {
					pubErr <- err
					return
				}
				published.Add(1)
			}
		}()
	}

	// Each kill comes once the publishers are far enough and the sidecar
	// (the restarted one, the second time) has been delivering for longer
	// than the group's commit interval (1s), so that it holds records it
	// fetched long enough ago to have committed them, had it committed
	// before the app had them.
	wait := func(what string, cond func() bool) {
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("stalled waiting for %s: %d published, %d delivered", what, published.Load(), got.delivered())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	lastKill := got.delivered()
	for _, at := range []int64{n / 4, n / 2} {
		wait("deliveries", func() bool { return got.delivered() > lastKill+20 })
		since := time.Now()
		wait("the publishers", func() bool { return published.Load() >= at && time.Since(since) > 1500*time.Millisecond })
		before := got.delivered()
		lastKill = before
		sub.Kill()
		t.Logf("killed the subscriber's sidecar (SIGKILL) after %d published, %d delivered", published.Load(), before)
		time.Sleep(500 * time.Millisecond)
		sub.Restart()
		sub.WaitReady(t)
		t.Logf("restarted the subscriber's sidecar")
	}
	pubWG.Wait()
	close(pubErr)
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	t.Logf("published all %d; %d delivered so far", n, got.delivered())
	start := time.Now()
	for {
		count, first, dups := got.missing(n)
		if count == 0 {
			t.Logf("all %d messages arrived (%.1fs after the last publish): %d deliveries, %d duplicates (warm-up included)",
				n, time.Since(start).Seconds(), got.delivered(), dups)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d messages lost (first %v), %d duplicates\n%s", count, n, first, dups, sub.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
}

// TestKafkaBindings: the Go SDK invokes a bindings.kafka output binding
// (operation create, publishTopic) through one sidecar; a bindings.kafka
// input binding on the same topic, in the sidecar of a Go SDK gRPC app,
// delivers every record to the app, in order per key, with the key and the
// headers as metadata; a record the app fails once comes again.
func TestKafkaBindings(t *testing.T) {
	broker := kafkatest.Start(t, "--partitions", "4")
	topic := randomTopic("kafka-binding")
	const n, keys = 200, 3
	var (
		mu      sync.Mutex
		got     = map[string][]int{} // key -> seqs in delivery order
		failed  bool
		badMeta error
	)
	appPort := startSDKApp(t, func(s common.Service) error {
		return s.AddBindingInvocationHandler("kafka-in", func(_ context.Context, e *common.BindingEvent) ([]byte, error) {
			seq, err := strconv.Atoi(string(e.Data))
			mu.Lock()
			defer mu.Unlock()
			key := e.Metadata["__key"]
			if err != nil || e.Metadata["source"] != "e2e" || key == "" || e.Metadata["__topic"] != topic {
				badMeta = fmt.Errorf("record %q with metadata %v", e.Data, e.Metadata)
				return nil, nil
			}
			if seq == 10 && !failed {
				failed = true
				return nil, errors.New("the app fails record 10 once")
			}
			got[key] = append(got[key], seq)
			return nil, nil
		})
	})
	in := kafkaComponent("kafka-in", "bindings.kafka", broker.Brokers, "topics", topic, "consumerGroup", "kafka-in-"+topic,
		"consumeRetryInterval", "50ms")
	out := kafkaComponent("kafka-out", "bindings.kafka", broker.Brokers, "publishTopic", topic)
	reader := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "kafka-reader", AppPort: appPort, AppProtocol: "grpc", ResourcesDir: resourcesDir(t, in),
	})
	writer := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "kafka-writer", ResourcesDir: resourcesDir(t, out)})
	client, err := dapr.NewClientWithAddress(writer.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range n {
		key := "k" + strconv.Itoa(i%keys)
		if err := client.InvokeOutputBinding(ctx, &dapr.InvokeBindingRequest{Name: "kafka-out", Operation: "create",
			Data: []byte(strconv.Itoa(i)), Metadata: map[string]string{"partitionKey": key, "source": "e2e"}}); err != nil {
			t.Fatalf("invoke the output binding (record %d): %v\n%s", i, err, writer.Output())
		}
	}
	for {
		mu.Lock()
		total := 0
		for _, s := range got {
			total += len(s)
		}
		mu.Unlock()
		if total >= n {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records reached the app\n%s", total, n, reader.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if badMeta != nil {
		t.Fatal(badMeta)
	}
	if !failed {
		t.Fatal("record 10 was never failed")
	}
	for k := range keys {
		key := "k" + strconv.Itoa(k)
		seqs := got[key]
		for j, seq := range seqs {
			if want := k + j*keys; seq != want {
				t.Fatalf("key %s: records in the order %v, want %d at position %d (each once, in order)", key, seqs, want, j)
			}
		}
	}
}
