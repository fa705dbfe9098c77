package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dapr/go-sdk/workflow"
	goredis "github.com/redis/go-redis/v9"
)

// redisActorStore writes, into a new resources folder it returns, a
// state.redis actor state store named actorstore, and removes appID's keys
// from Redis when the test ends (the hosts of one test share it; the app ID
// keeps tests apart).
func redisActorStore(t *testing.T, appID string) string {
	t.Helper()
	needRedis(t)
	res := t.TempDir()
	comp := `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: actorstore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: ` + redisAddr + `
  - name: actorStateStore
    value: "true"
`
	if err := os.WriteFile(filepath.Join(res, "state.yaml"), []byte(comp), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := goredis.NewClient(&goredis.Options{Addr: redisAddr})
		defer c.Close()
		ctx := context.Background()
		iter := c.Scan(ctx, 0, "*"+appID+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return res
}

// TestWorkflowHostKilled: two hosts of one app ID (a tandemd and the Go SDK
// workflow app each) share placement and a Redis actor state store; 200
// Slow workflows run spread over both; one host (sidecar and app) is
// SIGKILLed and never comes back. Every workflow completes on the
// survivor with the right output, and no activity ran more than once plus
// once for the lost host.
func TestWorkflowHostKilled(t *testing.T) {
	appID := fmt.Sprintf("wfhosts%d", time.Now().UnixNano()%1_000_000_000)
	res := redisActorStore(t, appID)
	place := startPlacement(t)
	dir := t.TempDir()
	survivor := startWorkflowHost(t, appID, place, res, filepath.Join(dir, "runs-survivor.txt"))
	victim := startWorkflowHost(t, appID, place, res, filepath.Join(dir, "runs-victim.txt"))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n = 200
	start := time.Now()
	for i := range n {
		if _, err := survivor.client.ScheduleNewWorkflow(ctx, "Slow", workflow.WithInstanceID(fmt.Sprintf("slow-%d", i)), workflow.WithInput(i)); err != nil {
			t.Fatal(err)
		}
	}
	ran := func() int {
		return strings.Count(readFile(t, survivor.runs), "\n") + strings.Count(readFile(t, victim.runs), "\n")
	}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && ran() < n; {
		time.Sleep(50 * time.Millisecond)
	}
	onVictim := strings.Count(readFile(t, victim.runs), "\n")
	before := ran()
	if onVictim == 0 {
		t.Fatalf("the second host ran no activity of %d (%d ran): nothing moves when it dies\n%s", n, before, victim.sidecar.Output())
	}
	if before >= 3*n {
		t.Fatalf("every activity ran (%d) before the host died: nothing to test", before)
	}
	killed := time.Now()
	victim.app.Kill()
	victim.sidecar.Kill()
	survivor.waitSlow(t, ctx, survivor.client, n)
	if after := strings.Count(readFile(t, victim.runs), "\n"); after != onVictim {
		t.Errorf("the killed host's app recorded %d runs after the kill", after-onVictim)
	}
	checkSlowRuns(t, n, 1, survivor.runs, victim.runs)
	t.Logf("%d activity runs before the kill (%d on the killed host, %s after the first start); all %d done %s after the kill",
		before, onVictim, killed.Sub(start).Round(time.Millisecond), n, time.Since(killed).Round(time.Millisecond))
}
