package sqlite_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/pubsubtest"
)

const childEnv = "TANDEM_SQLITE_PUBSUB_CHILD_FILE"

// TestCrashedSubscriberRedelivered runs a subscriber in a child process,
// which takes a message and hangs. While it lives its lease is renewed and
// another instance of the group does not get the message; once it is
// killed (no cleanup at all) the lease expires and the other instance does.
func TestCrashedSubscriberRedelivered(t *testing.T) {
	if file := os.Getenv(childEnv); file != "" {
		runChild(t, file)
		return
	}
	file := filepath.Join(t.TempDir(), "pubsub.db")
	props := map[string]string{"processingTimeout": "2s"}
	ps := open(t, file, "app", props)
	publish(t, ps, "t", "job", nil)

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashedSubscriberRedelivered$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+file)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "handling ") {
				got <- strings.TrimPrefix(sc.Text(), "handling ")
				return
			}
		}
	}()
	select {
	case m := <-got:
		if m != "job" {
			t.Fatalf("child handled %q", m)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the child process never received the message")
	}

	c := newCollector()
	subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: "t"}, c.handler)
	time.Sleep(2500 * time.Millisecond) // longer than processingTimeout
	if c.has("job") {
		t.Fatal("the message was redelivered while the child's handler still ran; its lease must be renewed")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	pubsubtest.Eventually(t, "the killed subscriber's message to be redelivered", func() bool { return c.has("job") })
	c.mu.Lock()
	m := c.msgs["job"][0]
	c.mu.Unlock()
	if !m.Redelivered {
		t.Error("Redelivered = false for a message delivered before")
	}
	t.Logf("redelivered %s after the kill", time.Since(killed).Round(time.Millisecond))
}

// runChild subscribes and hangs in the handler until killed.
func runChild(t *testing.T, file string) {
	ps := open(t, file, "app", map[string]string{"processingTimeout": "2s"})
	subscribe(t, context.Background(), ps, pubsub.SubscribeRequest{Topic: "t"}, func(_ context.Context, m *pubsub.Message) error {
		fmt.Printf("handling %s\n", m.Data)
		select {}
	})
	time.Sleep(time.Minute)
}
