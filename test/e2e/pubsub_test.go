package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

const redisAddr = "127.0.0.1:6379"

// needRedis skips when Redis is not reachable, except in CI where it must be.
func needRedis(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", redisAddr, time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis at %s is required in CI: %v", redisAddr, err)
		}
		t.Skipf("redis at %s not reachable: %v", redisAddr, err)
	}
	_ = c.Close()
}

var (
	subscriberOnce sync.Once
	subscriberBin  string
	subscriberErr  error
)

// subscriberApp builds test/apps/subscriber once.
func subscriberApp(t *testing.T) string {
	t.Helper()
	subscriberOnce.Do(func() {
		subscriberBin = filepath.Join(bins.Dir, "subscriber")
		cmd := exec.Command("go", "build", "-o", subscriberBin, "./test/apps/subscriber")
		cmd.Dir = framework.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			subscriberErr = fmt.Errorf("go build subscriber: %v\n%s", err, out)
		}
	})
	if subscriberErr != nil {
		t.Fatal(subscriberErr)
	}
	return subscriberBin
}

// redisPubSubDir writes a pubsub.redis component named "pubsub" that
// reclaims unacknowledged messages quickly.
func redisPubSubDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	yaml := `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - name: redisHost
    value: ` + redisAddr + `
  - name: processingTimeout
    value: "2s"
  - name: redeliverInterval
    value: "500ms"
`
	if err := os.WriteFile(filepath.Join(dir, "pubsub.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// subscriberStats is the subscriber app's GET /stats.
type subscriberStats struct {
	Total        int   `json:"total"`
	Unique       int   `json:"unique"`
	Duplicates   int   `json:"duplicates"`
	Dead         int   `json:"dead"`
	Missing      []int `json:"missing"`
	MissingCount int   `json:"missingCount"`
}

func getStats(t *testing.T, app *framework.App, expect int) subscriberStats {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/stats?expect=%d", app.Port, expect))
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	defer resp.Body.Close()
	var s subscriberStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("stats: %v", err)
	}
	return s
}

func randomTopic(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

type pubsubPair struct {
	pub, sub *framework.Sidecar
	app      *framework.App
	client   dapr.Client
	topic    string
}

// startPubSubPair starts a publisher sidecar (no app) and a subscriber
// app with its sidecar on one Redis topic, and waits until a warm-up
// event (seq -1) went through.
func startPubSubPair(t *testing.T, deadLetter bool, appEnv ...string) *pubsubPair {
	t.Helper()
	needRedis(t)
	topic := randomTopic("e2e")
	env := append([]string{"PUBSUB=pubsub", "TOPIC=" + topic}, appEnv...)
	if deadLetter {
		env = append(env, "DEAD_LETTER_TOPIC="+topic+"-dead")
	}
	resources := redisPubSubDir(t)
	p := &pubsubPair{topic: topic}
	p.app = framework.StartApp(t, "subscriber app", subscriberApp(t), env...)
	p.sub = framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "subscriber", AppPort: p.app.Port, ResourcesDir: resources})
	p.pub = framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "publisher", ResourcesDir: resources})
	c, err := dapr.NewClientWithAddress(p.pub.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p.client = c
	deadline := time.Now().Add(30 * time.Second)
	for getStats(t, p.app, 0).Total == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("warm-up event never arrived\n%s", p.sub.Output())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.PublishEvent(ctx, "pubsub", topic, map[string]any{"seq": -1})
		cancel()
		if err != nil {
			t.Logf("warm-up publish: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return p
}

// TestPubSubRedis publishes with the Dapr Go SDK (gRPC) and over HTTP
// through one sidecar and checks the subscriber app behind another gets
// every event, RETRY and DROP go to the dead letter topic (as in Dapr),
// and the metadata API lists the app's subscriptions.
func TestPubSubRedis(t *testing.T) {
	p := startPubSubPair(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 50
	for i := 0; i < n; i++ {
		data := map[string]any{"seq": i}
		switch i {
		case 7:
			data["drop"] = true
		case 9:
			data["retry"] = true
		}
		if i%2 == 0 {
			if err := p.client.PublishEvent(ctx, "pubsub", p.topic, data); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
			continue
		}
		b, _ := json.Marshal(data)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.pub.HTTPURL()+"/v1.0/publish/pubsub/"+p.topic, strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("HTTP publish %d: %v %v", i, err, resp)
		}
		resp.Body.Close()
	}
	var s subscriberStats
	for {
		s = getStats(t, p.app, n)
		// As in Dapr, the subscription has a dead letter topic, so the
		// RETRY answer sends the event there too, like the DROP one.
		if s.MissingCount == 0 && s.Dead == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not all events arrived: %+v\n%s", s, p.sub.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("delivered: %+v", s)

	// Unknown pub/sub through the SDK: Dapr's error.
	if err := p.client.PublishEvent(ctx, "nope", p.topic, map[string]any{"seq": 0}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown pubsub: %v", err)
	}

	resp, err := http.Get(p.sub.HTTPURL() + "/v1.0/metadata")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md struct {
		Subscriptions []struct {
			PubsubName, Topic, Type string
		}
	}
	_ = json.NewDecoder(resp.Body).Decode(&md)
	found := false
	for _, sub := range md.Subscriptions {
		if sub.Topic == p.topic && sub.Type == "PROGRAMMATIC" {
			found = true
		}
	}
	if !found {
		t.Errorf("metadata subscriptions = %+v", md.Subscriptions)
	}
}

// TestPubSubKillRestart publishes thousands of events while the
// subscriber's sidecar is killed (SIGKILL) and restarted twice: every
// event must reach the app; duplicates are allowed and reported.
func TestPubSubKillRestart(t *testing.T) {
	// Each answer takes 2ms, so deliveries are in flight at every kill.
	p := startPubSubPair(t, false, "DELAY_MS=2")
	const n = 3000
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var published atomic.Int64
	pubErr := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := publishSeq(ctx, p.client, "pubsub", p.topic, i); err != nil {
				pubErr <- err
				return
			}
			published.Add(1)
			time.Sleep(time.Millisecond) // spread the stream over a few seconds
		}
		pubErr <- nil
	}()

	for _, at := range []int64{n / 4, n / 2} {
		for published.Load() < at {
			if ctx.Err() != nil {
				t.Fatal("publishing stalled")
			}
			time.Sleep(5 * time.Millisecond)
		}
		before := getStats(t, p.app, 0).Total
		p.sub.Kill()
		t.Logf("killed the subscriber's sidecar after %d published, %d delivered", published.Load(), before)
		time.Sleep(500 * time.Millisecond)
		p.sub.Restart()
		p.sub.WaitReady(t)
		t.Logf("restarted the subscriber's sidecar")
	}
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var s subscriberStats
	for {
		s = getStats(t, p.app, n)
		if s.MissingCount == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d events never arrived (first missing %v); stats %+v\n%s", s.MissingCount, n, s.Missing, s, p.sub.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("all %d events arrived (%.1fs after the last publish): %d deliveries, %d duplicates (warm-up included)",
		n, time.Since(start).Seconds(), s.Total, s.Duplicates)
}

// publishSeq publishes {"seq": i} to topic, trying up to five times 100 ms
// apart (a sidecar being restarted refuses for a moment).
func publishSeq(ctx context.Context, client dapr.Client, pubsub, topic string, i int) error {
	var err error
	for range 5 {
		if err = client.PublishEvent(ctx, pubsub, topic, map[string]any{"seq": i}); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("publish %d: %w", i, err)
}
