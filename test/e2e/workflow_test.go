package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/dapr/go-sdk/workflow"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// buildWorkflowApp builds test/apps/workflowapp (the Go SDK workflow app).
func buildWorkflowApp(t *testing.T) string {
	t.Helper()
	bin, err := framework.BuildApp("./test/apps/workflowapp")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// workflowEnv is a tandemd with a sqlite actor state store, placement, and
// the Go SDK workflow app connected to it.
type workflowEnv struct {
	sidecar *framework.Sidecar
	app     *framework.Process
	client  *workflow.Client
	runs    string
}

func startWorkflowEnv(t *testing.T) *workflowEnv {
	t.Helper()
	place := startPlacement(t)
	res := t.TempDir()
	if err := os.WriteFile(res+"/state.yaml", []byte(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: actorstore
spec:
  type: state.sqlite
  version: v1
  metadata:
  - name: connectionString
    value: "`+res+`/actors.db"
  - name: actorStateStore
    value: "true"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := &workflowEnv{runs: filepath.Join(res, "runs.txt")}
	env.sidecar = actorSidecar(t, "wfapp", 0, place, res)
	waitActorsReady(t, env.sidecar)
	env.app = framework.Start(t, "workflowapp", buildWorkflowApp(t), []string{"--dapr-grpc", env.sidecar.GRPCAddr(), "--runs", env.runs})
	env.waitWorkers(t)
	c, err := dapr.NewClientWithAddress(env.sidecar.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	env.client, err = workflow.NewClient(workflow.WithDaprClient(c))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// waitWorkers waits until the metadata API shows a connected worker.
func (env *workflowEnv) waitWorkers(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_, body := httpDo(t, "GET", env.sidecar.HTTPURL()+"/v1.0/metadata", "")
		if strings.Contains(body, `"workflows":{"connectedWorkers":1}`) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, body := httpDo(t, "GET", env.sidecar.HTTPURL()+"/v1.0/metadata", "")
	t.Fatalf("no workflow worker connected: %s\n%s", body, env.app.Output())
}

// run starts a workflow and waits for it to end.
func (env *workflowEnv) run(t *testing.T, name, id string, input any) *workflow.Metadata {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := env.client.ScheduleNewWorkflow(ctx, name, workflow.WithInstanceID(id), workflow.WithInput(input)); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	md, err := env.client.WaitForWorkflowCompletion(ctx, id)
	if err != nil {
		t.Fatalf("wait for %s %s: %v\n%s", name, id, err, env.sidecar.Output())
	}
	return md
}

func wantCompleted(t *testing.T, md *workflow.Metadata, output string) {
	t.Helper()
	if md.RuntimeStatus != workflow.StatusCompleted || md.SerializedOutput != output {
		t.Errorf("%s: status %s output %q failure %+v; want COMPLETED %q", md.InstanceID, md.RuntimeStatus, md.SerializedOutput, md.FailureDetails, output)
	}
}

// TestWorkflowGoSDK runs the Go SDK workflow app's workflows through
// tandemd's durabletask service: a chain of activities, fan-out/fan-in
// over 100 activities, a durable timer, an external event arriving and
// timing out, a child workflow, continue-as-new, retries of a failing
// activity, and terminate/suspend/resume/purge, over gRPC and HTTP.
func TestWorkflowGoSDK(t *testing.T) {
	env := startWorkflowEnv(t)
	ctx := context.Background()

	t.Run("chain", func(t *testing.T) { wantCompleted(t, env.run(t, "Chain", "chain-1", 10), "15") })
	t.Run("fan-out 100", func(t *testing.T) {
		want := 0
		for i := range 100 {
			want += i * i
		}
		wantCompleted(t, env.run(t, "FanOut", "fan-1", 100), fmt.Sprint(want))
	})
	t.Run("timer", func(t *testing.T) {
		start := time.Now()
		wantCompleted(t, env.run(t, "Timer", "timer-1", 1), `"done"`)
		if time.Since(start) < time.Second {
			t.Errorf("a 1 s timer ended after %s", time.Since(start))
		}
	})
	t.Run("event times out", func(t *testing.T) { wantCompleted(t, env.run(t, "WaitEvent", "event-timeout", 1), `"timeout"`) })
	t.Run("event arrives", func(t *testing.T) {
		if _, err := env.client.ScheduleNewWorkflow(ctx, "WaitEvent", workflow.WithInstanceID("event-1"), workflow.WithInput(30)); err != nil {
			t.Fatal(err)
		}
		if _, err := env.client.WaitForWorkflowStart(ctx, "event-1"); err != nil {
			t.Fatal(err)
		}
		if err := env.client.RaiseEvent(ctx, "event-1", "approve", workflow.WithEventPayload("yes")); err != nil {
			t.Fatal(err)
		}
		md, err := env.client.WaitForWorkflowCompletion(ctx, "event-1")
		if err != nil {
			t.Fatal(err)
		}
		wantCompleted(t, md, `"yes"`)
	})
	t.Run("child workflow", func(t *testing.T) { wantCompleted(t, env.run(t, "Parent", "parent-1", 1), "12") })
	t.Run("continue as new", func(t *testing.T) { wantCompleted(t, env.run(t, "Counter", "counter-1", 0), "5") })
	t.Run("retried activity", func(t *testing.T) {
		wantCompleted(t, env.run(t, "Flaky", "flaky-1", nil), "3")
		if n := strings.Count(readFile(t, env.runs), "FlakyAct flaky-1 "); n != 3 {
			t.Errorf("the flaky activity ran %d times, want 3", n)
		}
	})
	t.Run("suspend resume terminate purge", func(t *testing.T) {
		for _, id := range []string{"long-1", "long-2"} {
			if _, err := env.client.ScheduleNewWorkflow(ctx, "Long", workflow.WithInstanceID(id)); err != nil {
				t.Fatal(err)
			}
			if _, err := env.client.WaitForWorkflowStart(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if err := env.client.SuspendWorkflow(ctx, "long-1", "pause"); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, env, "long-1", workflow.StatusSuspended)
		// An event raised while suspended waits for the resume.
		if err := env.client.RaiseEvent(ctx, "long-1", "go", workflow.WithEventPayload("after resume")); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, env, "long-1", workflow.StatusSuspended)
		if err := env.client.ResumeWorkflow(ctx, "long-1", "go on"); err != nil {
			t.Fatal(err)
		}
		md, err := env.client.WaitForWorkflowCompletion(ctx, "long-1")
		if err != nil {
			t.Fatal(err)
		}
		wantCompleted(t, md, `"after resume"`)

		if err := env.client.TerminateWorkflow(ctx, "long-2"); err != nil {
			t.Fatal(err)
		}
		md, err = env.client.WaitForWorkflowCompletion(ctx, "long-2")
		if err != nil {
			t.Fatal(err)
		}
		if md.RuntimeStatus != workflow.StatusTerminated {
			t.Errorf("terminated workflow is %s", md.RuntimeStatus)
		}
		if err := env.client.PurgeWorkflow(ctx, "long-2"); err != nil {
			t.Fatal(err)
		}
		if _, err := env.client.FetchWorkflowMetadata(ctx, "long-2"); err == nil {
			t.Error("a purged workflow is still there")
		}
	})
	t.Run("http api", func(t *testing.T) {
		base := env.sidecar.HTTPURL()
		code, body := httpDo(t, "POST", base+"/v1.0/workflows/dapr/Long/start?instanceID=http-1", "")
		if code != 202 || body != `{"instanceID":"http-1"}` {
			t.Fatalf("start: %d %s", code, body)
		}
		waitHTTPStatus(t, base+"/v1.0/workflows/dapr/http-1", "RUNNING")
		if code, body := httpDo(t, "POST", base+"/v1.0-beta1/workflows/dapr/http-1/pause", ""); code != 202 {
			t.Fatalf("pause: %d %s", code, body)
		}
		waitHTTPStatus(t, base+"/v1.0/workflows/dapr/http-1", "SUSPENDED")
		if code, body := httpDo(t, "POST", base+"/v1.0/workflows/dapr/http-1/resume", ""); code != 202 {
			t.Fatalf("resume: %d %s", code, body)
		}
		if code, body := httpDo(t, "POST", base+"/v1.0/workflows/dapr/http-1/raiseEvent/go", `"via http"`); code != 202 {
			t.Fatalf("raise event: %d %s", code, body)
		}
		body = waitHTTPStatus(t, base+"/v1.0/workflows/dapr/http-1", "COMPLETED")
		if !strings.Contains(body, `"dapr.workflow.output":"\"via http\""`) || !strings.Contains(body, `"workflowName":"Long"`) {
			t.Errorf("get: %s", body)
		}
		if code, body := httpDo(t, "POST", base+"/v1.0/workflows/dapr/http-1/purge", ""); code != 202 {
			t.Fatalf("purge: %d %s", code, body)
		}
		if code, body := httpDo(t, "GET", base+"/v1.0/workflows/dapr/http-1", ""); code != 404 || !strings.Contains(body, "ERR_INSTANCE_ID_NOT_FOUND") {
			t.Errorf("get purged: %d %s", code, body)
		}
		if code, body := httpDo(t, "POST", base+"/v1.0/workflows/dapr/Long/start?instanceID=bad.id", ""); code != 400 || !strings.Contains(body, "ERR_INSTANCE_ID_INVALID") {
			t.Errorf("start with a bad ID: %d %s", code, body)
		}
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func waitStatus(t *testing.T, env *workflowEnv, id string, want workflow.Status) {
	t.Helper()
	var got workflow.Status
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		md, err := env.client.FetchWorkflowMetadata(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got = md.RuntimeStatus; got == want {
			return
		}
	}
	t.Fatalf("%s is %s, want %s", id, got, want)
}

func waitHTTPStatus(t *testing.T, url, want string) string {
	t.Helper()
	var body string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, body = httpDo(t, "GET", url, "")
		if strings.Contains(body, `"runtimeStatus":"`+want+`"`) {
			return body
		}
	}
	t.Fatalf("%s never %s: %s", url, want, body)
	return ""
}

// TestWorkflowSurvivesCrash: SIGKILL the sidecar and the app while 20
// workflows of three 300 ms activities run; after both restart, every
// workflow completes with the right output, and no activity ran more than
// once plus once for the crash.
func TestWorkflowSurvivesCrash(t *testing.T) {
	env := startWorkflowEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n = 20
	for i := range n {
		if _, err := env.client.ScheduleNewWorkflow(ctx, "Slow", workflow.WithInstanceID(fmt.Sprintf("slow-%d", i)), workflow.WithInput(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Kill once some activities ran and before all could.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && strings.Count(readFile(t, env.runs), "\n") < n/2; {
		time.Sleep(50 * time.Millisecond)
	}
	before := strings.Count(readFile(t, env.runs), "\n")
	env.app.Kill()
	env.sidecar.Kill()
	if before >= 3*n {
		t.Fatalf("every activity ran (%d) before the crash: nothing to test", before)
	}
	env.sidecar.Restart()
	env.sidecar.WaitReady(t)
	waitActorsReady(t, env.sidecar)
	env.app.Restart()
	env.waitWorkers(t)
	c, err := dapr.NewClientWithAddress(env.sidecar.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	client, err := workflow.NewClient(workflow.WithDaprClient(c))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("slow-%d", i)
		md, err := client.WaitForWorkflowCompletion(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v\n%s", id, err, env.sidecar.Output())
		}
		wantCompleted(t, md, fmt.Sprintf(`"%d:3"`, i))
	}
	runs := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(readFile(t, env.runs)), "\n") {
		runs[line]++
	}
	for step, count := range runs {
		if count > 2 {
			t.Errorf("%s ran %d times; at most 2 allowed (one crash)", step, count)
		}
	}
	if len(runs) != 3*n {
		t.Errorf("%d distinct activity runs, want %d", len(runs), 3*n)
	}
	t.Logf("%d activity runs before the crash, %d distinct steps", before, len(runs))
}
