package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/kafkaconn"
	"github.com/tandemrun/tandem/internal/kafkatest"
	"github.com/tandemrun/tandem/test/e2e/framework"
)

// broker is one pub/sub component under test.
type broker struct {
	Name string
	Type string
	// Addr is the server that must be reachable ("" for in-process brokers).
	Addr string
	// Meta returns the component's metadata items as YAML list lines; id is
	// unique to the run (stream names and the like); dir is a scratch folder.
	Meta func(id, dir string) string
	// Cleanup removes what the run left on the server.
	Cleanup func(id, topic string)
}

// brokers lists the brokers; kafkaAddr is the test Kafka peer (kfake, see
// internal/kafkatest), "" when it is not started.
func brokers(kafkaAddr string) []broker {
	item := func(name, value string) string {
		return fmt.Sprintf("  - name: %s\n    value: %q\n", name, value)
	}
	return []broker{
		{Name: "in-memory", Type: "pubsub.in-memory", Meta: func(_, _ string) string { return "" }},
		{Name: "redis", Type: "pubsub.redis", Addr: "127.0.0.1:6379",
			Meta: func(_, _ string) string { return item("redisHost", "127.0.0.1:6379") },
			Cleanup: func(_, topic string) {
				c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379", Protocol: 2, DisableIdentity: true})
				defer c.Close()
				_ = c.Del(context.Background(), topic).Err()
			}},
		{Name: "jetstream", Type: "pubsub.jetstream", Addr: "127.0.0.1:4222",
			Meta: func(id, _ string) string { return item("natsURL", "nats://127.0.0.1:4222") + item("streamName", id) },
			Cleanup: func(id, _ string) {
				nc, err := nats.Connect("nats://127.0.0.1:4222")
				if err != nil {
					return
				}
				defer nc.Close()
				if js, err := jetstream.New(nc); err == nil {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					_ = js.DeleteStream(ctx, id)
				}
			}},
		// deletedWhenUnused: the queue and exchange go away with the sidecar.
		{Name: "rabbitmq", Type: "pubsub.rabbitmq", Addr: "127.0.0.1:5672",
			Meta: func(_, _ string) string {
				return item("connectionString", "amqp://guest:guest@127.0.0.1:5672/") + item("deletedWhenUnused", "true")
			}},
		// cleanSession: no session is left behind on the broker.
		{Name: "mqtt3", Type: "pubsub.mqtt3", Addr: "127.0.0.1:1883",
			Meta: func(_, _ string) string { return item("url", "tcp://127.0.0.1:1883") + item("cleanSession", "true") }},
		// kfake (franz-go's in-memory cluster in its own process), not
		// Apache Kafka: there is none on our machines.
		{Name: "kafka", Type: "pubsub.kafka", Addr: kafkaAddr,
			Meta: func(id, _ string) string {
				return item("brokers", kafkaAddr) + item("authType", "none") + item("consumerGroup", id) + item("initialOffset", "oldest")
			}},
		{Name: "sqlite", Type: "pubsub.sqlite",
			Meta: func(_, dir string) string { return item("connectionString", filepath.Join(dir, "pubsub.db")) }},
	}
}

// pubsubRun is one measured phase on one broker.
type pubsubRun struct {
	Broker  string
	Rate    float64 // target publish rate; <= 0: max rate
	Skipped string  // why the broker was not measured
	Sent    int
	PubErrs int64
	Publish opStats // HTTP publish calls
	Deliver opStats // publish → delivery latency, first delivery of each message
	Dups    int
	// Delivered is how many distinct messages arrived; Span is from the
	// first publish to the last first delivery.
	Delivered  int
	Span       time.Duration
	SidecarCPU time.Duration
	// Direct: no sidecar (the franz-go floor), so no sidecar CPU.
	Direct bool
}

// TestPubSubLoad publishes N messages through a sidecar's HTTP API to a
// subscriber behind the same sidecar, per broker, at a fixed rate and at
// max rate, and writes results/pubsub.md.
func TestPubSubLoad(t *testing.T) {
	if os.Getenv("TANDEM_BENCH") != "1" {
		t.Skip("load benchmark: run it with TANDEM_BENCH=1 go test ./test/bench -run TestPubSubLoad -v -timeout 20m (see test/bench/README.md)")
	}
	n := int(benchNum(t, "TANDEM_BENCH_PUBSUB_MESSAGES", 2000))
	rate := benchNum(t, "TANDEM_BENCH_PUBSUB_RATE", 500)
	workers := int(benchNum(t, "TANDEM_BENCH_CONNECTIONS", 16))
	wait := benchSeconds(t, "TANDEM_BENCH_PUBSUB_WAIT_SECONDS", 60)
	only := os.Getenv("TANDEM_BENCH_BROKERS") // comma-separated names; empty: all
	if n < 1 || workers < 1 {
		t.Fatal("TANDEM_BENCH_PUBSUB_MESSAGES and TANDEM_BENCH_CONNECTIONS must be at least 1")
	}
	bins := benchBinaries(t)
	loadBefore := machine().LoadAvg
	cpu := NewProcCPU()

	var runs []pubsubRun
	var kafkaAddr string
	if only == "" || strings.Contains(","+only+",", ",kafka,") {
		kafkaAddr = kafkatest.Start(t).Brokers
	}
	for _, b := range brokers(kafkaAddr) {
		if only != "" && !strings.Contains(","+only+",", ","+b.Name+",") {
			continue
		}
		if b.Name == "kafka" && kafkaAddr == "" {
			continue
		}
		if b.Addr != "" {
			if err := reachable(b.Addr); err != nil {
				t.Logf("%s: skipped: %v", b.Name, err)
				runs = append(runs, pubsubRun{Broker: b.Name, Skipped: fmt.Sprintf("server at %s unreachable", b.Addr)})
				continue
			}
		}
		t.Run(b.Name, func(t *testing.T) {
			runs = append(runs, benchBroker(t, bins, cpu, b, n, workers, rate, wait)...)
		})
		if b.Name == "kafka" {
			// The floor, in the same run against the same broker process.
			t.Run("kafka-direct", func(t *testing.T) {
				runs = append(runs, benchKafkaDirect(t, kafkaAddr, n, workers, rate, wait)...)
			})
		}
	}
	md := pubsubMarkdown(runs, n, workers, rate, loadBefore)
	t.Logf("\n%s", md)
	// A run of some brokers only does not replace the report of all.
	out := "pubsub.md"
	if only != "" {
		out = "pubsub-" + strings.ReplaceAll(only, ",", "-") + ".md"
	}
	writeBenchReport(t, "TANDEM_BENCH_PUBSUB_OUT", filepath.Join("results", out), md)
}

// kafkaDirectName is the franz-go floor's row in the report.
const kafkaDirectName = "kafka: franz-go direct (floor)"

// benchKafkaDirect runs the same two phases as benchBroker on the Kafka
// broker at addr with franz-go alone, no sidecar: producers with the
// component's client settings (internal/kafkaconn: acks from all in-sync
// replicas, Dapr's partitioner) each waiting for the broker's answer, as
// the sidecar's publish does, and one consumer group member with the
// component's group settings that records each message and marks it for
// commit. The messages are the same JSON bodies, without the CloudEvent
// envelope the sidecar adds.
func benchKafkaDirect(t *testing.T, addr string, n, workers int, rate float64, wait time.Duration) []pubsubRun {
	id := randomName("tbench-direct")
	topic := id + "-topic"
	cfg, err := kafkaconn.Parse("direct", "", components.Metadata{Name: "direct", Properties: map[string]string{
		"brokers": addr, "authType": "none", "consumerGroup": id, "initialOffset": "oldest",
	}})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cfg.Options()
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	cons, err := kgo.NewClient(slices.Concat(opts, cfg.GroupOptions(id), []kgo.Opt{kgo.ConsumeTopics(topic)})...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rcv := &receiver{runs: map[int]*received{}}
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for {
			fs := cons.PollFetches(ctx)
			if ctx.Err() != nil || fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				var d struct {
					Run int   `json:"run"`
					Seq int   `json:"seq"`
					TS  int64 `json:"ts"`
				}
				if json.Unmarshal(r.Value, &d) == nil {
					rcv.note(d.Run, d.Seq, d.TS, time.Now())
				}
				cons.MarkCommitRecords(r)
			})
		}
	}()
	defer func() { cancel(); <-consumed; cons.Close() }()
	produce := func(run, seq int) error {
		body := fmt.Appendf(nil, `{"run":%d,"seq":%d,"ts":%d}`, run, seq, time.Now().UnixNano())
		return kafkaconn.Produce(ctx, prod, &kgo.Record{Topic: topic, Value: body})
	}

	rcv.expect(0, 1)
	deadline := time.Now().Add(30 * time.Second)
	for rcv.delivered(0) == 0 {
		if time.Now().After(deadline) {
			t.Errorf("%s: the warm-up message never arrived", kafkaDirectName)
			return []pubsubRun{{Broker: kafkaDirectName, Skipped: "the warm-up message never arrived"}}
		}
		if err := produce(0, 0); err != nil {
			t.Logf("warm-up produce: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var runs []pubsubRun
	for i, r := range []float64{rate, -1} {
		run := i + 1
		rcv.expect(run, n)
		start := time.Now()
		pub := publishAll(n, r, workers, func(seq int) error { return produce(run, seq) })
		for rcv.delivered(run) < n && time.Since(start) < wait {
			time.Sleep(10 * time.Millisecond)
		}
		res := rcv.result(run, start)
		res.Broker, res.Rate, res.Sent, res.Publish, res.PubErrs, res.Direct = kafkaDirectName, r, n, pub, pub.Errors, true
		t.Logf("%s %s: published %.0f msg/s (%d errors), delivered %d/%d, %.0f msg/s, latency p50 %.3f ms p99 %.3f ms",
			kafkaDirectName, phaseLabel(r), pub.Rate(), pub.Errors, res.Delivered, n, res.DeliveredRate(), ms(res.Deliver.P50), ms(res.Deliver.P99))
		if pub.Errors > 0 {
			t.Errorf("%s: %d produce errors, first: %s", kafkaDirectName, pub.Errors, pub.FirstErr)
		}
		if res.Delivered < n {
			t.Errorf("%s %s: %d of %d messages delivered after %s", kafkaDirectName, phaseLabel(r), res.Delivered, n, wait)
		}
		runs = append(runs, res)
	}
	return runs
}

// benchBroker starts a sidecar with broker b and the in-test subscriber,
// warms the subscription up, and runs the fixed-rate and max-rate phases.
func benchBroker(t *testing.T, bins *framework.Binaries, cpu ProcCPU, b broker, n, workers int, rate float64, wait time.Duration) []pubsubRun {
	id := randomName("tbench")
	topic := id + "-topic"
	dir := t.TempDir()
	comp := fmt.Sprintf("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n  type: %s\n  version: v1\n  metadata:\n%s", b.Type, b.Meta(id, dir))
	if err := os.WriteFile(filepath.Join(dir, "pubsub.yaml"), []byte(comp), 0o600); err != nil {
		t.Fatal(err)
	}
	rcv := startReceiver(t, topic)
	sc := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: id, AppPort: rcv.port, ResourcesDir: dir, Args: []string{"--log-level", "info"},
	})
	if b.Cleanup != nil {
		// Runs before the framework's cleanup: stop the sidecar, then remove
		// the stream.
		t.Cleanup(func() { sc.Stop(); b.Cleanup(id, topic) })
	}
	url := sc.HTTPURL() + "/v1.0/publish/pubsub/" + topic
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}}

	// Warm-up: run 0, message 0, until it arrives.
	rcv.expect(0, 1)
	deadline := time.Now().Add(30 * time.Second)
	for rcv.delivered(0) == 0 {
		if time.Now().After(deadline) {
			t.Errorf("%s: the warm-up message never arrived", b.Name)
			return []pubsubRun{{Broker: b.Name, Skipped: "the warm-up message never arrived"}}
		}
		if err := publish(client, url, 0, 0); err != nil {
			t.Logf("warm-up publish: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	var runs []pubsubRun
	for i, r := range []float64{rate, -1} {
		run := i + 1
		rcv.expect(run, n)
		before, _ := cpu.CPU(sc.PID())
		start := time.Now()
		pub := publishAll(n, r, workers, func(seq int) error { return publish(client, url, run, seq) })
		for rcv.delivered(run) < n && time.Since(start) < wait {
			time.Sleep(10 * time.Millisecond)
		}
		after, _ := cpu.CPU(sc.PID())
		res := rcv.result(run, start)
		res.Broker, res.Rate, res.Sent, res.Publish, res.PubErrs = b.Name, r, n, pub, pub.Errors
		res.SidecarCPU = after - before
		t.Logf("%s %s: published %.0f msg/s (%d errors), delivered %d/%d, %.0f msg/s, latency p50 %.3f ms p99 %.3f ms",
			b.Name, phaseLabel(r), pub.Rate(), pub.Errors, res.Delivered, n, res.DeliveredRate(), ms(res.Deliver.P50), ms(res.Deliver.P99))
		if pub.Errors > 0 {
			t.Errorf("%s: %d publish errors, first: %s", b.Name, pub.Errors, pub.FirstErr)
		}
		if res.Delivered < n {
			t.Errorf("%s %s: %d of %d messages delivered after %s", b.Name, phaseLabel(r), res.Delivered, n, wait)
		}
		runs = append(runs, res)
	}
	return runs
}

// DeliveredRate is distinct messages delivered per second, from the first
// publish to the last delivery.
func (r pubsubRun) DeliveredRate() float64 {
	if r.Span <= 0 {
		return 0
	}
	return float64(r.Delivered) / r.Span.Seconds()
}

// publish sends one message {"run","seq","ts"} through the HTTP API.
func publish(c *http.Client, url string, run, seq int) error {
	body := fmt.Appendf(nil, `{"run":%d,"seq":%d,"ts":%d}`, run, seq, time.Now().UnixNano())
	return httpDo(c, http.MethodPost, url, body, http.StatusNoContent, -1)
}

// publishAll calls pub for seq 0..n-1 from workers goroutines; with rate >
// 0 message i is handed out no earlier than start + i/rate (a late worker
// pool makes the achieved rate lower, which the result shows).
func publishAll(n int, rate float64, workers int, pub func(seq int) error) opStats {
	seqs := make(chan int)
	lat := make([][]time.Duration, workers)
	var errs atomic.Int64
	var once sync.Once
	var first string
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range seqs {
				t0 := time.Now()
				err := pub(seq)
				lat[w] = append(lat[w], time.Since(t0))
				if err != nil {
					errs.Add(1)
					once.Do(func() { first = err.Error() })
				}
			}
		}()
	}
	for i := range n {
		if rate > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))))
		}
		seqs <- i
	}
	close(seqs)
	wg.Wait()
	s := summarize(slices.Concat(lat...))
	s.Duration, s.Errors, s.FirstErr = time.Since(start), errs.Load(), first
	return s
}

// phaseLabel names a publish rate: "500 msg/s" or "max rate".
func phaseLabel(rate float64) string {
	if rate <= 0 {
		return "max rate"
	}
	return fmt.Sprintf("%.0f msg/s", rate)
}

// receiver is the in-test subscriber app: it subscribes to one topic of
// pub/sub "pubsub" and records, per run, each message's first delivery
// time and latency (receive time − the publish time carried in the data).
type receiver struct {
	port int
	mu   sync.Mutex
	runs map[int]*received
}

type received struct {
	seen  []bool
	count int
	dups  int
	lat   []time.Duration
	last  time.Time
}

func startReceiver(t *testing.T, topic string) *receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{port: ln.Addr().(*net.TCPAddr).Port, runs: map[int]*received{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dapr/subscribe", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode([]map[string]string{{"pubsubname": "pubsub", "topic": topic, "route": "/events"}})
	})
	mux.HandleFunc("POST /events", r.event)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *receiver) event(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	var ev struct {
		Data struct {
			Run int   `json:"run"`
			Seq int   `json:"seq"`
			TS  int64 `json:"ts"`
		} `json:"data"`
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(req.Body)
	if err := json.Unmarshal(buf.Bytes(), &ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.note(ev.Data.Run, ev.Data.Seq, ev.Data.TS, now)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"SUCCESS"}`))
}

// note records message seq of run, published at ts (ns), received at now.
func (r *receiver) note(run, seq int, ts int64, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.runs[run]
	if rec == nil || seq < 0 || seq >= len(rec.seen) {
		return
	}
	if rec.seen[seq] {
		rec.dups++
		return
	}
	rec.seen[seq] = true
	rec.count++
	rec.lat = append(rec.lat, now.Sub(time.Unix(0, ts)))
	rec.last = now
}

// expect starts recording run, which has n messages.
func (r *receiver) expect(run, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs[run] = &received{seen: make([]bool, n)}
}

func (r *receiver) delivered(run int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs[run].count
}

// result summarises run; start is the time of the first publish.
func (r *receiver) result(run int, start time.Time) pubsubRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.runs[run]
	res := pubsubRun{Delivered: rec.count, Dups: rec.dups, Deliver: summarize(append([]time.Duration(nil), rec.lat...))}
	if rec.count > 0 {
		res.Span = rec.last.Sub(start)
	}
	return res
}

func pubsubMarkdown(runs []pubsubRun, n, workers int, rate float64, loadBefore string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	writeReportHead(&b, "Pub/sub load benchmark", loadBefore, machine().LoadAvg)
	p("- per broker: one tandemd (plaintext, no mTLS: publisher and subscriber are the same app) with component \"pubsub\" at its defaults unless noted, and an in-test subscriber app (GET /dapr/subscribe, answers SUCCESS at once); ")
	p("%d messages per phase published with `POST /v1.0/publish/pubsub/{topic}` (a ~50-byte JSON body carrying the publish time) from %d workers with keep-alive connections, first at %.0f msg/s, then at max rate (each worker publishes its next message as soon as the previous call returned)\n", n, workers, rate)
	p("- latency = time the subscriber received the message − time just before the publish call (one clock, the test process); first delivery of each message only. Delivered msg/s = distinct messages delivered ÷ (last delivery − first publish)\n")
	p("- broker settings changed from the defaults, to leave nothing behind: rabbitmq `deletedWhenUnused: true`, mqtt3 `cleanSession: true`; jetstream uses a stream of its own (deleted afterwards, file storage), redis a stream key of its own (deleted afterwards), sqlite a new database file\n")
	for _, r := range runs {
		if r.Direct {
			p("- kafka is franz-go's kfake (test/apps/kafkabroker, an in-memory cluster speaking the Kafka protocol in its own process; not Apache Kafka, which this machine does not have). %q is the floor, run right after the kafka rows against the same broker process: franz-go alone, no sidecar, with the component's client and group settings (internal/kafkaconn: acks from all in-sync replicas, Dapr's partitioner, commits of marked offsets), the same JSON bodies without the CloudEvent envelope, the same %d publishing workers each waiting for the broker's answer, and one consumer group member recording each record as it is polled\n", kafkaDirectName, workers)
			break
		}
	}
	p("- the load generator, subscriber, tandemd and the broker servers share the same CPUs\n\n")
	p("| broker | phase | publish msg/s | publish errors | publish call p50 / p99 ms | delivered | duplicates | delivered msg/s | latency p50 ms | p90 ms | p99 ms | max ms | sidecar CPU ms / 1000 msgs |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		if r.Skipped != "" {
			p("| %s | skipped: %s | | | | | | | | | | | |\n", r.Broker, r.Skipped)
			continue
		}
		all := ""
		if r.Delivered < r.Sent {
			all = " **missing**"
		}
		cpuK := "–"
		if r.Sent > 0 && !r.Direct {
			cpuK = fmt.Sprintf("%.1f", ms(r.SidecarCPU)*1000/float64(r.Sent))
		}
		p("| %s | %s | %.0f | %d | %.3f / %.3f | %d / %d%s | %d | %.0f | %.3f | %.3f | %.3f | %.3f | %s |\n",
			r.Broker, phaseLabel(r.Rate), r.Publish.Rate(), r.PubErrs, ms(r.Publish.P50), ms(r.Publish.P99),
			r.Delivered, r.Sent, all, r.Dups, r.DeliveredRate(), ms(r.Deliver.P50), ms(r.Deliver.P90), ms(r.Deliver.P99), ms(r.Deliver.Max), cpuK)
	}
	return b.String()
}
