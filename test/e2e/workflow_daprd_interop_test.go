package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/dapr/go-sdk/workflow"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestWorkflowInteropWithDaprd: workflows move between a real daprd 1.18.2
// and tandemd. An app runs Slow workflows on one runtime, which is killed
// (with the app) mid-way, and the other runtime takes the same app ID,
// actor state store and scheduler: the instances continue from the
// history the first one wrote and complete with the right outputs, the
// state of the finished ones reads back, and new workflows run. Both ways
// round, so each runtime reads what the other writes (Dapr's workflow
// actor state layout and its scheduler reminders).
func TestWorkflowInteropWithDaprd(t *testing.T) {
	daprd := daprdBinary(t)
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
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	one := start(first)
	wantCompleted(t, one.run(t, "Chain", "done-before", 10), "15")
	const n = 6
	ran := one.startSlow(t, ctx, n)
	if ran >= 3*n {
		t.Fatalf("all %d activities ran before the handover: nothing to take over", ran)
	}
	one.app.Kill()
	one.sidecar.Kill()

	two := start(second)
	two.waitSlow(t, ctx, two.client, n)
	// The instance that ended on the first runtime reads back on the
	// second one, output and all.
	md, err := two.client.FetchWorkflowMetadata(ctx, "done-before", workflow.WithFetchPayloads(true))
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
	// The first runtime's own client is gone; a client of the second one
	// sees the ended instances as any client would.
	c, err := dapr.NewClientWithAddress(two.sidecar.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wc, err := workflow.NewClient(workflow.WithDaprClient(c))
	if err != nil {
		t.Fatal(err)
	}
	if md, err := wc.FetchWorkflowMetadata(ctx, "slow-0"); err != nil || md.RuntimeStatus != workflow.StatusCompleted {
		t.Fatalf("slow-0 through a new client: %+v, %v", md, err)
	}
}
