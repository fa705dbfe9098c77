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

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestWorkflowInteropWithDaprd: workflows move between a real daprd 1.18.2
// and tandemd. The Go SDK workflow app runs on one runtime with work in
// flight (a long durable timer, a long activity, Slow workflows between
// activities); that runtime and its app are killed, and the other
// runtime takes the same app ID, actor state store and scheduler. The
// reminders the first one stored (daprd's data layout: DurableTimer,
// ActivityInvocation) fire on the second, so every instance completes
// with the right output, the timer not before it is due; the instance
// that ended on the first runtime reads back, and new workflows run. Both
// ways round, so each runtime reads what the other writes.
func TestWorkflowInteropWithDaprd(t *testing.T) {
	daprd := requireDaprd(t)
	for _, tc := range []struct {
		name          string
		first, second string // "" is tandemd
	}{
		{"daprd then tandemd", daprd, ""},
		{"tandemd then daprd", "", daprd},
	} {
		t.Run(tc.name, func(t *testing.T) { testWorkflowHandover(t, tc.first, tc.second) })
	}
}

// requireDaprd is daprdBinary, except that under CI=true a missing daprd
// fails the test rather than skipping it.
func requireDaprd(t *testing.T) string {
	t.Helper()
	if os.Getenv("CI") == "true" {
		path := os.Getenv("TANDEM_DAPRD")
		if path == "" {
			home, _ := os.UserHomeDir()
			path = filepath.Join(home, ".cache", "tandem", "daprd-1.18.2")
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("CI=true and no daprd at %s: run scripts/build-daprd.sh (or set TANDEM_DAPRD)", path)
		}
	}
	return daprdBinary(t)
}

func testWorkflowHandover(t *testing.T, first, second string) {
	place := startPlacement(t)
	sched := startTandemScheduler(t, t.TempDir())
	res := framework.ActorStore(t)
	runs := filepath.Join(res, "runs.txt")
	app := buildWorkflowApp(t)
	start := func(binary string) *workflowEnv {
		t.Helper()
		env := &workflowEnv{runs: runs}
		env.sidecar = framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "wfapp", ResourcesDir: res, Binary: binary,
			Args: []string{"--placement-host-address", place, "--scheduler-host-address", sched.Addr}})
		waitActorsReady(t, env.sidecar)
		env.app = framework.Start(t, "workflowapp", app, []string{"--dapr-grpc", env.sidecar.GRPCAddr(), "--runs", runs})
		env.waitWorkers(t)
		env.client = env.reconnect(t)
		return env
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	one := start(first)
	wantCompleted(t, one.run(t, "Chain", "done-before", 10), "15")
	const timerSecs, napSecs = 20, 12
	timerStart := time.Now()
	for _, w := range []struct {
		name, id string
		input    int
	}{{"Timer", "long-timer", timerSecs}, {"Sleepy", "long-nap", napSecs}} {
		if _, err := one.client.ScheduleNewWorkflow(ctx, w.name, workflow.WithInstanceID(w.id), workflow.WithInput(w.input)); err != nil {
			t.Fatal(err)
		}
	}
	const n = 4
	ran := one.startSlow(t, ctx, n)
	if ran >= 3*n {
		t.Fatalf("all %d Slow activities ran before the handover: nothing to take over", ran)
	}
	// The timer is set and the long activity runs when the first runtime
	// goes.
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(readFile(t, runs), "Nap long-nap 0"); {
		if time.Now().After(deadline) {
			t.Fatalf("the Nap activity never started:\n%s\n%s", readFile(t, runs), one.sidecar.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	md, err := one.client.FetchWorkflowMetadata(ctx, "long-timer")
	if err != nil || md.RuntimeStatus != workflow.StatusRunning {
		t.Fatalf("long-timer before the handover: %+v, %v", md, err)
	}
	if time.Since(timerStart) >= timerSecs*time.Second/2 {
		t.Fatalf("the handover comes %s after the timer was set: too late to test it", time.Since(timerStart))
	}
	one.app.Kill()
	one.sidecar.Kill()

	two := start(second)
	two.waitSlow(t, ctx, two.client, n)
	md, err = two.client.WaitForWorkflowCompletion(ctx, "long-nap")
	if err != nil {
		t.Fatalf("long-nap: %v\n%s", err, two.sidecar.Output())
	}
	wantCompleted(t, md, `"rested"`)
	md, err = two.client.WaitForWorkflowCompletion(ctx, "long-timer")
	if err != nil {
		t.Fatalf("long-timer: %v\n%s", err, two.sidecar.Output())
	}
	wantCompleted(t, md, `"done"`)
	if took := time.Since(timerStart); took < timerSecs*time.Second {
		t.Errorf("a %d s timer fired after %s", timerSecs, took)
	}
	// The instance that ended on the first runtime reads back on the
	// second one, output and all.
	md, err = two.client.FetchWorkflowMetadata(ctx, "done-before", workflow.WithFetchPayloads(true))
	if err != nil {
		t.Fatalf("the workflow that completed on the first runtime: %v\n%s", err, two.sidecar.Output())
	}
	wantCompleted(t, md, "15")
	wantCompleted(t, two.run(t, "Chain", "done-after", 20), "25")
	wantCompleted(t, two.run(t, "Timer", "timer-after", 1), `"done"`)
	// Every Slow activity ran at least once; none was lost in the move.
	for i := range n {
		for step := range 3 {
			if !strings.Contains(readFile(t, runs), fmt.Sprintf("SlowStep slow-%d %d", i, step)) {
				t.Errorf("step %d of slow-%d never ran:\n%s", step, i, readFile(t, runs))
			}
		}
	}
}
