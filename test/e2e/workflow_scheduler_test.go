package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dapr/go-sdk/workflow"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestWorkflowRemindersWithScheduler: with the scheduler keeping the
// reminders, a workflow keeps daprd's set of them, which Dapr's own tests
// count in the scheduler's etcd: an instance waiting for an event with a
// timeout has exactly its timer (no watchdog), and an ended one has none.
// Then the crash test again: with no watchdog while instances wait for
// their activities, the run-activity reminders alone bring the runs a
// SIGKILL lost back.
func TestWorkflowRemindersWithScheduler(t *testing.T) {
	sched := startTandemScheduler(t, t.TempDir())
	env := startWorkflowEnv(t, "--scheduler-host-address", sched.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	jobKeys := schedulerJobKeys(t, ctx, sched)
	eventually := func(what string, ok func([]string) bool) {
		t.Helper()
		var keys []string
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if keys = jobKeys(); ok(keys) {
				return
			}
		}
		t.Fatalf("scheduler jobs never %s: %q\n%s", what, keys, env.sidecar.Output())
	}

	if _, err := env.client.ScheduleNewWorkflow(ctx, "WaitEvent", workflow.WithInstanceID("wait-1"), workflow.WithInput(600)); err != nil {
		t.Fatal(err)
	}
	eventually("held only the event's timeout timer", func(keys []string) bool {
		return len(keys) == 1 && strings.Contains(keys[0], "||wait-1||timer-")
	})
	// It stays that way: no watchdog comes back while the instance waits.
	time.Sleep(500 * time.Millisecond)
	if keys := jobKeys(); len(keys) != 1 {
		t.Fatalf("jobs while waiting: %q, want the timer alone", keys)
	}
	if err := env.client.RaiseEvent(ctx, "wait-1", "approve", workflow.WithEventPayload("yes")); err != nil {
		t.Fatal(err)
	}
	md, err := env.client.WaitForWorkflowCompletion(ctx, "wait-1")
	if err != nil {
		t.Fatal(err)
	}
	wantCompleted(t, md, `"yes"`)
	eventually("emptied after the end", func(keys []string) bool { return len(keys) == 0 })

	// A chain of activities leaves nothing behind either.
	wantCompleted(t, env.run(t, "Chain", "chain-1", 10), "15")
	eventually("emptied after a chain of activities", func(keys []string) bool { return len(keys) == 0 })

	// Crash with activities in flight: the run-activity reminders are what
	// is left to bring them back.
	const n = 10
	env.startSlow(t, ctx, n)
	keys := jobKeys()
	if !slices.ContainsFunc(keys, func(k string) bool { return strings.HasSuffix(k, "||run-activity") }) {
		t.Logf("no run-activity job seen at the crash (all between activities?): %q", keys)
	}
	env.crash(t)
	env.waitSlow(t, ctx, env.reconnect(t), n)
	eventually("emptied after the crashed workflows ended", func(keys []string) bool { return len(keys) == 0 })
}

// schedulerJobKeys returns a reader of the keys under dapr/jobs in the
// scheduler's etcd: the jobs and reminders Dapr's workflow tests count.
func schedulerJobKeys(t *testing.T, ctx context.Context, sched *schedulerProc) func() []string {
	t.Helper()
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{fmt.Sprintf("127.0.0.1:%d", sched.EtcdPort)}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = etcd.Close() })
	return func() []string {
		resp, err := etcd.Get(ctx, "dapr/jobs", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, kv := range resp.Kvs {
			keys = append(keys, string(kv.Key))
		}
		return keys
	}
}
