package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
// Slow workflows (three 5 s activities) run spread over both; one host (sidecar and app) is
// SIGKILLed and never comes back. Every workflow completes on the
// survivor with the right output, and no activity ran more than once plus
// once for the lost host.
func TestWorkflowHostKilled(t *testing.T) {
	appID := fmt.Sprintf("wfhosts%d", time.Now().UnixNano()%1_000_000_000)
	res := redisActorStore(t, appID)
	place := startPlacement(t)
	dir := t.TempDir()
	survivor := startWorkflowHost(t, appID, place, res, filepath.Join(dir, "runs-survivor.txt"), crashStep)
	victim := startWorkflowHost(t, appID, place, res, filepath.Join(dir, "runs-victim.txt"), crashStep)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n = 200
	start := time.Now()
	scheduleSlow(t, ctx, survivor.client, n)
	before, unfinished := slowProgress(t, n, survivor.runs, victim.runs)
	onVictim := strings.Count(readFile(t, victim.runs), "\n")
	if onVictim == 0 {
		t.Fatalf("the second host ran no activity of %d (%d ran): nothing moves when it dies\n%s", n, before, victim.sidecar.Output())
	}
	if unfinished < n/2 {
		t.Fatalf("only %d of %d workflows were before their last step at the kill (%d runs): too few to test", unfinished, n, before)
	}
	killed := time.Now()
	victim.app.Kill()
	victim.sidecar.Kill()
	survivor.waitSlow(t, ctx, survivor.client, n)
	if after := strings.Count(readFile(t, victim.runs), "\n"); after != onVictim {
		t.Errorf("the killed host's app recorded %d runs after the kill", after-onVictim)
	}
	checkSlowRuns(t, n, 1, survivor.runs, victim.runs)
	t.Logf("kill %s after the first start: %d activity runs (%d on the killed host), %d workflows before their last step; all %d done %s after the kill",
		killed.Sub(start).Round(time.Millisecond), before, onVictim, unfinished, n, time.Since(killed).Round(time.Millisecond))
}
