package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	js "github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tandemrun/tandem/scaler/externalscaler"
	"github.com/tandemrun/tandem/test/e2e/framework"
)

const natsAddr = "127.0.0.1:4222"

// needServer skips when addr is not reachable, except in CI where it must be.
func needServer(t *testing.T, addr, what string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s at %s is required in CI: %v", what, addr, err)
		}
		t.Skipf("%s at %s not reachable: %v", what, addr, err)
	}
	_ = c.Close()
}

var (
	scalerOnce sync.Once
	scalerBin  string
	scalerErr  error
)

// scalerBinary builds cmd/scaler once.
func scalerBinary(t *testing.T) string {
	t.Helper()
	scalerOnce.Do(func() {
		scalerBin = filepath.Join(bins.Dir, "scaler")
		args := append([]string{"build"}, framework.ReleaseFlags...)
		cmd := exec.Command("go", append(args, "-o", scalerBin, "./cmd/scaler")...)
		cmd.Dir = framework.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			scalerErr = fmt.Errorf("go build scaler: %v\n%s", err, out)
		}
	})
	if scalerErr != nil {
		t.Fatal(scalerErr)
	}
	return scalerBin
}

// kedaBroker is one broker the scaler test runs on: its component and a
// direct read of the consumer's backlog, the truth GetMetrics must match.
type kedaBroker struct {
	name      string
	addr      string
	component func(suffix string) string
	backlog   func(t *testing.T, appID, topic, suffix string) int64
}

var kedaBrokers = []kedaBroker{
	{
		name: "redis", addr: redisAddr,
		component: func(string) string {
			return "  type: pubsub.redis\n  version: v1\n  metadata:\n  - name: redisHost\n    value: " + redisAddr + "\n"
		},
		// The group's lag (entries not yet read) plus its pending entries
		// (read, not acked): what the app still has to settle.
		backlog: func(t *testing.T, appID, topic, _ string) int64 {
			c := goredis.NewClient(&goredis.Options{Addr: redisAddr})
			defer c.Close()
			groups, err := c.XInfoGroups(t.Context(), topic).Result()
			if err != nil {
				t.Fatalf("XINFO GROUPS %s: %v", topic, err)
			}
			for _, g := range groups {
				if g.Name == appID {
					return g.Lag + g.Pending
				}
			}
			t.Fatalf("no consumer group %q on %s", appID, topic)
			return 0
		},
	},
	{
		name: "jetstream", addr: natsAddr,
		component: func(suffix string) string {
			return "  type: pubsub.jetstream\n  version: v1\n  metadata:\n  - name: natsURL\n    value: nats://" + natsAddr +
				"\n  - name: streamName\n    value: keda_" + suffix + "\n  - name: memoryStorage\n    value: \"true\"\n"
		},
		// The durable consumer's NumPending plus NumAckPending.
		backlog: func(t *testing.T, appID, topic, suffix string) int64 {
			nc, err := nats.Connect("nats://" + natsAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			j, err := js.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			cons, err := j.Consumer(t.Context(), "keda_"+suffix, appID+"-"+topic)
			if err != nil {
				t.Fatalf("consumer of %s: %v", topic, err)
			}
			info := cons.CachedInfo()
			return int64(info.NumPending) + int64(info.NumAckPending)
		},
	},
}

// TestKEDAScaler runs cmd/scaler against a subscriber's sidecar on each
// broker: a real gRPC client speaking KEDA's external scaler protocol
// sees IsActive (and StreamIsActive) turn true when a backlog appears
// while the app is frozen (SIGSTOP), GetMetrics equal to the consumer's
// backlog read from the broker itself, and IsActive false again once the
// app is let go and has drained it. How long the stream took to say
// "active" after the last publish is logged, not asserted.
func TestKEDAScaler(t *testing.T) {
	for _, b := range kedaBrokers {
		t.Run(b.name, func(t *testing.T) {
			needServer(t, b.addr, b.name)
			testKEDAScaler(t, b)
		})
	}
}

func testKEDAScaler(t *testing.T, b kedaBroker) {
	suffix := strings.TrimPrefix(randomTopic(""), "-")
	topic, appID := "keda-"+suffix, "kedasub-"+suffix
	dir := t.TempDir()
	comp := "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n" + b.component(suffix)
	if err := os.WriteFile(filepath.Join(dir, "pubsub.yaml"), []byte(comp), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupBroker(b.name, topic, suffix) })
	app := framework.StartApp(t, "subscriber app", subscriberApp(t), "PUBSUB=pubsub", "TOPIC="+topic)
	t.Cleanup(func() { app.Signal(syscall.SIGCONT) }) // so it can stop
	sc := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: appID, AppPort: app.Port, ResourcesDir: dir})

	port := framework.FreePort(t)
	scaler := framework.Start(t, "scaler", scalerBinary(t), []string{"--port", fmt.Sprint(port), "--sidecars", sc.HTTPURL(), "--poll-interval", "100ms", "--resources-path", dir})
	if err := framework.WaitTCP(fmt.Sprintf("127.0.0.1:%d", port), 15*time.Second); err != nil {
		t.Fatalf("scaler: %v\n%s", err, scaler.Output())
	}
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := externalscaler.NewExternalScalerClient(conn)
	ref := &externalscaler.ScaledObjectRef{Name: "subscriber", Namespace: "default",
		ScalerMetadata: map[string]string{"appId": appID, "pubsubName": "pubsub", "topic": topic, "targetBacklog": "5"}}
	metric := func() float64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m, err := client.GetMetrics(ctx, &externalscaler.GetMetricsRequest{ScaledObjectRef: ref, MetricName: "s0-tandem-pending"})
		if err != nil {
			t.Fatalf("GetMetrics: %v\n%s", err, scaler.Output())
		}
		return m.GetMetricValues()[0].GetMetricValueFloat()
	}
	pubURL := sc.HTTPURL()
	// publish retries while the sidecar's pub/sub is not ready yet (503).
	publish := func(seq int) {
		t.Helper()
		var last string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			resp, err := http.Post(pubURL+"/v1.0/publish/pubsub/"+topic, "application/json", bytes.NewReader(fmt.Appendf(nil, `{"seq":%d}`, seq)))
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return
			}
			if last = resp.Status; resp.StatusCode != http.StatusServiceUnavailable {
				break
			}
		}
		t.Fatalf("publish: %s", last)
	}
	// Warm up: the subscription exists and is idle.
	publish(-1)
	waitFor(t, 30*time.Second, "the warm-up event", func() bool { return getStats(t, app, 0).Total > 0 })
	waitFor(t, 30*time.Second, "no backlog", func() bool { return metric() == 0 })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := client.StreamIsActive(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.GetResult() {
		t.Fatalf("StreamIsActive with no backlog = %v, %v; want false", r, err)
	}

	// The app freezes; a backlog builds up in the broker.
	app.Signal(syscall.SIGSTOP)
	const n = 20
	for i := range n {
		publish(i)
	}
	published := time.Now()
	r, err := stream.Recv()
	if err != nil || !r.GetResult() {
		t.Fatalf("StreamIsActive after %d messages = %v, %v; want true", n, r, err)
	}
	t.Logf("%s: StreamIsActive said active %v after the last publish", b.name, time.Since(published).Round(time.Millisecond))
	if a, err := client.IsActive(ctx, ref); err != nil || !a.GetResult() {
		t.Errorf("IsActive with a backlog = %v, %v; want true", a, err)
	}
	// All n are unsettled while the app is frozen: the broker says so and
	// so must the scaler.
	waitFor(t, 30*time.Second, fmt.Sprintf("the broker's backlog to be %d", n), func() bool { return b.backlog(t, appID, topic, suffix) == n })
	if got := metric(); got != n {
		t.Errorf("GetMetrics = %v, want the broker's backlog %d", got, n)
	}

	// Let the app go: it drains, and the scaler says inactive.
	app.Signal(syscall.SIGCONT)
	r, err = stream.Recv()
	if err != nil || r.GetResult() {
		t.Fatalf("StreamIsActive after draining = %v, %v; want false\n%s", r, err, sc.Output())
	}
	if got := b.backlog(t, appID, topic, suffix); got != 0 {
		t.Errorf("broker backlog after the stream said inactive = %d, want 0", got)
	}
	if got := metric(); got != 0 {
		t.Errorf("GetMetrics after draining = %v, want 0", got)
	}
	if a, err := client.IsActive(ctx, ref); err != nil || a.GetResult() {
		t.Errorf("IsActive after draining = %v, %v; want false", a, err)
	}
	if st := getStats(t, app, n); st.MissingCount != 0 {
		t.Errorf("the app is missing %d events: %v", st.MissingCount, st.Missing)
	}

	// Scaled to zero: the app and its sidecar are gone, messages arrive
	// through another app's sidecar, and the scaler asks the broker
	// itself (--resources-path) as the subscriber's consumer.
	app.Stop()
	sc.Stop()
	pub := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "kedapub-" + suffix, ResourcesDir: dir})
	pubURL = pub.HTTPURL()
	const m = 7
	for i := range m {
		publish(n + i)
	}
	published = time.Now()
	waitFor(t, 30*time.Second, "IsActive with no replica and a backlog", func() bool {
		a, err := client.IsActive(ctx, ref)
		return err == nil && a.GetResult()
	})
	t.Logf("%s: IsActive said active %v after the last publish, with no replica running", b.name, time.Since(published).Round(time.Millisecond))
	if got := b.backlog(t, appID, topic, suffix); got != m {
		t.Errorf("broker backlog with no replica = %d, want %d", got, m)
	}
	if got := metric(); got != m {
		t.Errorf("GetMetrics with no replica = %v, want the broker's backlog %d\n%s", got, m, scaler.Output())
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func cleanupBroker(broker, topic, suffix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch broker {
	case "redis":
		c := goredis.NewClient(&goredis.Options{Addr: redisAddr})
		defer c.Close()
		c.Del(ctx, topic)
	case "jetstream":
		nc, err := nats.Connect("nats://" + natsAddr)
		if err != nil {
			return
		}
		defer nc.Close()
		if j, err := js.New(nc); err == nil {
			_ = j.DeleteStream(ctx, "keda_"+suffix)
		}
	}
}
