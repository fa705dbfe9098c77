package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dapr/go-sdk/workflow"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// TestWorkflowRetentionWithScheduler: with spec.workflow.stateRetentionPolicy
// the sidecar purges an ended instance by itself, through one reminder
// named "retention" on the retentioner actor type (daprd's, which Dapr's
// tests find in the scheduler's etcd): a completed instance after its 1s,
// a terminated one at once, a failed one (anyTerminal: a week) not before
// it is purged by hand, which takes its reminder along. A reused ID's new
// run outlives the reminder its earlier run left. A force purge takes a
// running instance and its reminders.
func TestWorkflowRetentionWithScheduler(t *testing.T) {
	sched := startTandemScheduler(t, t.TempDir())
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(`apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: wfpolicy}
spec:
  workflow:
    stateRetentionPolicy:
      anyTerminal: 168h
      completed: 1s
      terminated: 0s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := startWorkflowEnv(t, "--scheduler-host-address", sched.Addr, "--config", cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	jobKeys := schedulerJobKeys(t, ctx, sched)
	retention := func(id string) string {
		return "dapr/jobs/actorreminder||default||dapr.internal.default.wfapp.retentioner||" + id + "||retention"
	}
	gone := func(id string) bool {
		_, err := env.client.FetchWorkflowMetadata(ctx, id)
		return err != nil
	}
	eventually := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if ok() {
				return
			}
		}
		t.Fatalf("never %s: jobs %q\n%s", what, jobKeys(), env.sidecar.Output())
	}

	// Completed: its reminder is there as soon as the end is seen, and
	// purges it a second later.
	wantCompleted(t, env.run(t, "Chain", "ret-done", 1), "6")
	if keys := jobKeys(); !slices.Contains(keys, retention("ret-done")) {
		t.Fatalf("jobs right after the end: %q, want the retention reminder", keys)
	}
	if gone("ret-done") {
		t.Fatal("purged before its second")
	}
	eventually("purged the completed instance", func() bool { return gone("ret-done") && len(jobKeys()) == 0 })

	// Terminated, with its event's timer pending: purged at once, the
	// timer's reminder too.
	if _, err := env.client.ScheduleNewWorkflow(ctx, "WaitEvent", workflow.WithInstanceID("ret-term"), workflow.WithInput(600)); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, env, "ret-term", workflow.StatusRunning)
	if err := env.client.TerminateWorkflow(ctx, "ret-term"); err != nil {
		t.Fatal(err)
	}
	eventually("purged the terminated instance", func() bool { return gone("ret-term") && len(jobKeys()) == 0 })

	// Failed falls back to anyTerminal (a week): kept, with one reminder,
	// until purged by hand, which deletes the reminder.
	if _, err := env.client.ScheduleNewWorkflow(ctx, "Chain", workflow.WithInstanceID("ret-fail"), workflow.WithInput("not a number")); err != nil {
		t.Fatal(err)
	}
	md, err := env.client.WaitForWorkflowCompletion(ctx, "ret-fail")
	if err != nil || md.RuntimeStatus != workflow.StatusFailed {
		t.Fatalf("ret-fail: %+v %v, want FAILED", md, err)
	}
	time.Sleep(1500 * time.Millisecond)
	if keys := jobKeys(); len(keys) != 1 || keys[0] != retention("ret-fail") {
		t.Fatalf("jobs of the failed instance: %q, want its retention reminder alone", keys)
	}
	if err := env.client.PurgeWorkflow(ctx, "ret-fail"); err != nil {
		t.Fatal(err)
	}
	if keys := jobKeys(); len(keys) != 0 || !gone("ret-fail") {
		t.Fatalf("after the purge by hand: jobs %q, gone %v", keys, gone("ret-fail"))
	}

	// A reused ID: run 1's reminder fires while run 2 waits, finds it
	// running and ends; run 2 is purged after its own end.
	if _, err := env.client.ScheduleNewWorkflow(ctx, "Long", workflow.WithInstanceID("ret-reuse")); err != nil {
		t.Fatal(err)
	}
	if err := env.client.RaiseEvent(ctx, "ret-reuse", "go", workflow.WithEventPayload("one")); err != nil {
		t.Fatal(err)
	}
	if _, err := env.client.WaitForWorkflowCompletion(ctx, "ret-reuse"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.client.ScheduleNewWorkflow(ctx, "Long", workflow.WithInstanceID("ret-reuse")); err != nil {
		t.Fatal(err)
	}
	eventually("drained run 1's reminder", func() bool { return len(jobKeys()) == 0 })
	waitStatus(t, env, "ret-reuse", workflow.StatusRunning)
	if err := env.client.RaiseEvent(ctx, "ret-reuse", "go", workflow.WithEventPayload("two")); err != nil {
		t.Fatal(err)
	}
	md, err = env.client.WaitForWorkflowCompletion(ctx, "ret-reuse")
	if err != nil {
		t.Fatal(err)
	}
	wantCompleted(t, md, `"two"`)
	eventually("purged run 2", func() bool { return gone("ret-reuse") && len(jobKeys()) == 0 })

	// Force purge: a running instance, with its event's timer, is gone
	// with its reminders; a plain purge refuses it.
	if _, err := env.client.ScheduleNewWorkflow(ctx, "WaitEvent", workflow.WithInstanceID("ret-force"), workflow.WithInput(600)); err != nil {
		t.Fatal(err)
	}
	eventually("stored the running instance's timer", func() bool { return len(jobKeys()) == 1 })
	conn, err := grpc.NewClient(env.sidecar.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := purgeInstance(ctx, conn, "ret-force", false); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("plain purge of a running instance: %v, want FailedPrecondition", err)
	}
	if n, err := purgeInstance(ctx, conn, "ret-force", true); err != nil || n != 1 {
		t.Fatalf("force purge: %d %v", n, err)
	}
	if keys := jobKeys(); len(keys) != 0 || !gone("ret-force") {
		t.Fatalf("after the force purge: jobs %q, gone %v", keys, gone("ret-force"))
	}
	if n, err := purgeInstance(ctx, conn, "ret-force", true); err != nil || n != 0 {
		t.Fatalf("force purge of nothing: %d %v, want 0 deleted", n, err)
	}
}

// purgeInstance calls TaskHubSidecarService/PurgeInstances for one
// instance (encoded by hand, see rerunRequest) and returns how many
// instances it deleted.
func purgeInstance(ctx context.Context, conn *grpc.ClientConn, id string, force bool) (int, error) {
	var in []byte
	in = protowire.AppendTag(in, 1, protowire.BytesType)
	in = protowire.AppendString(in, id)
	if force {
		in = protowire.AppendTag(in, 4, protowire.VarintType)
		in = protowire.AppendVarint(in, 1)
	}
	var out []byte
	if err := conn.Invoke(ctx, "/TaskHubSidecarService/PurgeInstances", &in, &out, grpc.ForceCodec(rawCodec{})); err != nil {
		return 0, err
	}
	if num, typ, n := protowire.ConsumeTag(out); n > 0 && num == 1 && typ == protowire.VarintType {
		v, _ := protowire.ConsumeVarint(out[n:])
		return int(v), nil
	}
	return 0, nil
}
