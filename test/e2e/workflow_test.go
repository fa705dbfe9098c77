package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/dapr/go-sdk/workflow"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

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

func startWorkflowEnv(t *testing.T, sidecarArgs ...string) *workflowEnv {
	t.Helper()
	return startWorkflowHost(t, "wfapp", startPlacement(t), framework.ActorStore(t), "", nil, sidecarArgs...)
}

// startWorkflowHost starts one host of appID: a tandemd on placement place
// with the resources in res, and the Go SDK workflow app (with appArgs),
// which appends its activity runs to runs (default: runs.txt in res).
func startWorkflowHost(t *testing.T, appID, place, res, runs string, appArgs []string, sidecarArgs ...string) *workflowEnv {
	t.Helper()
	if runs == "" {
		runs = filepath.Join(res, "runs.txt")
	}
	env := &workflowEnv{runs: runs}
	env.sidecar = framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: appID, ResourcesDir: res,
		Args: append([]string{"--placement-host-address", place, "--actors-disseminate-timeout", "10s"}, sidecarArgs...),
	})
	waitActorsReady(t, env.sidecar)
	env.app = framework.Start(t, "workflowapp "+appID, buildWorkflowApp(t), append([]string{"--dapr-grpc", env.sidecar.GRPCAddr(), "--runs", env.runs}, appArgs...))
	env.waitWorkers(t)
	env.client = env.reconnect(t)
	return env
}

// startSlow starts n Slow workflows (three 300 ms activities each) and
// returns once about half their activities ran, with how many did.
func (env *workflowEnv) startSlow(t *testing.T, ctx context.Context, n int) int {
	t.Helper()
	for i := range n {
		if _, err := env.client.ScheduleNewWorkflow(ctx, "Slow", workflow.WithInstanceID(fmt.Sprintf("slow-%d", i)), workflow.WithInput(i)); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && strings.Count(readFile(t, env.runs), "\n") < n/2; {
		time.Sleep(50 * time.Millisecond)
	}
	return strings.Count(readFile(t, env.runs), "\n")
}

// crash SIGKILLs the app and its sidecar and starts both again.
func (env *workflowEnv) crash(t *testing.T) {
	t.Helper()
	env.app.Kill()
	env.sidecar.Kill()
	env.sidecar.Restart()
	env.sidecar.WaitReady(t)
	waitActorsReady(t, env.sidecar)
	env.app.Restart()
	env.waitWorkers(t)
}

// waitSlow waits for the n Slow workflows startSlow started to complete
// with their outputs.
func (env *workflowEnv) waitSlow(t *testing.T, ctx context.Context, client *workflow.Client, n int) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("slow-%d", i)
		md, err := client.WaitForWorkflowCompletion(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v\n%s", id, err, env.sidecar.Output())
		}
		wantCompleted(t, md, fmt.Sprintf(`"%d:3"`, i))
	}
}

// reconnect gives a workflow client of the (restarted) sidecar.
func (env *workflowEnv) reconnect(t *testing.T) *workflow.Client {
	t.Helper()
	c, err := dapr.NewClientWithAddress(env.sidecar.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	client, err := workflow.NewClient(workflow.WithDaprClient(c))
	if err != nil {
		t.Fatal(err)
	}
	return client
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
	t.Run("rerun", func(t *testing.T) { testWorkflowRerun(t, env) })
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

// rerunRequest is a durabletask RerunWorkflowFromEventRequest, encoded
// by hand: the Go SDK links microsoft/durabletask-go, whose protos clash
// with dapr/durabletask-go's in one binary.
type rerunRequest struct {
	source, newID, input string
	eventID              uint64
	overwriteInput       bool
}

func (r rerunRequest) encode() []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, r.source)
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, r.eventID)
	if r.newID != "" {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, r.newID)
	}
	if r.overwriteInput {
		var sv []byte
		sv = protowire.AppendTag(sv, 1, protowire.BytesType)
		sv = protowire.AppendString(sv, r.input)
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, sv)
		b = protowire.AppendTag(b, 5, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	return b
}

// rawCodec passes encoded messages through as []byte.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// rerun calls TaskHubSidecarService/RerunWorkflowFromEvent and returns
// the new instance's ID (field 1 of the response).
func rerun(ctx context.Context, conn *grpc.ClientConn, r rerunRequest) (string, error) {
	in, out := r.encode(), []byte(nil)
	if err := conn.Invoke(ctx, "/TaskHubSidecarService/RerunWorkflowFromEvent", &in, &out, grpc.ForceCodec(rawCodec{})); err != nil {
		return "", err
	}
	if num, typ, n := protowire.ConsumeTag(out); n > 0 && num == 1 && typ == protowire.BytesType {
		id, _ := protowire.ConsumeString(out[n:])
		return id, nil
	}
	return "", nil
}

// testWorkflowRerun reruns chain-1 (five Add1 steps, ended) from its
// fourth activity (event 3) with a new input: only steps 3 and 4 run
// again, on the replayed history, and bad reruns get daprd's errors.
func testWorkflowRerun(t *testing.T, env *workflowEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(env.sidecar.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const newID = "chain-1-rerun"
	id, err := rerun(ctx, conn, rerunRequest{source: "chain-1", eventID: 3, newID: newID,
		overwriteInput: true, input: `{"instance":"chain-1","step":3,"value":100}`})
	if err != nil || id != newID {
		t.Fatalf("rerun: %q %v", id, err)
	}
	md, err := env.client.WaitForWorkflowCompletion(ctx, newID)
	if err != nil {
		t.Fatal(err)
	}
	wantCompleted(t, md, "102")
	runs := readFile(t, env.runs)
	if n := strings.Count(runs, "Add1 chain-1 "); n != 6 {
		t.Errorf("Add1 ran %d times for chain-1 (five, and step 3 again), want 6:\n%s", n, runs)
	}
	if n := strings.Count(runs, "Add1 chain-1-rerun "); n != 1 {
		t.Errorf("Add1 ran %d times for the rerun instance (step 4), want 1:\n%s", n, runs)
	}
	for _, tc := range []struct {
		req  rerunRequest
		code codes.Code
		msg  string
	}{
		{rerunRequest{source: "no-such"}, codes.NotFound, "workflow instance does not exist with ID 'no-such'"},
		{rerunRequest{source: "chain-1", eventID: 5}, codes.NotFound,
			"target event '*protos.HistoryEvent_ExecutionCompleted' with ID '5' is not an event that can be rerun"},
		{rerunRequest{source: "chain-1", newID: newID}, codes.AlreadyExists, "workflow 'chain-1-rerun' has already been created"},
		{rerunRequest{source: "chain-1", newID: "chain-1"}, codes.InvalidArgument, "rerun workflow instance ID must be different from the original instance ID"},
	} {
		_, err := rerun(ctx, conn, tc.req)
		if s := status.Convert(err); s.Code() != tc.code || s.Message() != tc.msg {
			t.Errorf("rerun %+v: %v, want %s %q", tc.req, err, tc.code, tc.msg)
		}
	}
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

// crashStep is how long a Slow workflow's activity takes in the crash
// tests: long enough that, with 200 of them scheduled on a loaded machine
// (2 to 8 s for all), most workflows are still before their last step when
// the crash comes (with 2 s, a slow scheduling left only 65 of 200).
var crashStep = []string{"--slow-step", "5s"}

// scheduleSlow schedules n Slow workflows (slow-0...) through client, ten
// at a time.
func scheduleSlow(t *testing.T, ctx context.Context, client *workflow.Client, n int) {
	t.Helper()
	ids := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for i := range ids {
				if _, err := client.ScheduleNewWorkflow(ctx, "Slow", workflow.WithInstanceID(fmt.Sprintf("slow-%d", i)), workflow.WithInput(i)); err != nil {
					errs <- fmt.Errorf("schedule slow-%d: %w", i, err)
				}
			}
		})
	}
	for i := range n {
		ids <- i
	}
	close(ids)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// slowProgress reads the runs files: how many activity runs there were,
// and how many of the n Slow workflows had not started their last step.
func slowProgress(t *testing.T, n int, files ...string) (runs, unfinished int) {
	t.Helper()
	all := ""
	for _, f := range files {
		all += readFile(t, f)
	}
	for i := range n {
		if !strings.Contains(all, fmt.Sprintf("SlowStep slow-%d 2\n", i)) {
			unfinished++
		}
	}
	return strings.Count(all, "\n"), unfinished
}

// TestWorkflowSurvivesCrash: SIGKILL the sidecar and the app while 200
// workflows of three 5 s activities run (at least half of them before their
// last step); after both restart, every workflow completes with the right
// output, and no activity ran more than once plus once for the crash.
func TestWorkflowSurvivesCrash(t *testing.T) {
	env := startWorkflowHost(t, "wfapp", startPlacement(t), framework.ActorStore(t), "", crashStep)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n = 200
	start := time.Now()
	scheduleSlow(t, ctx, env.client, n)
	before, unfinished := slowProgress(t, n, env.runs)
	if unfinished < n/2 {
		t.Fatalf("only %d of %d workflows were before their last step at the crash (%d runs): too few to test", unfinished, n, before)
	}
	crashed := time.Now()
	env.crash(t)
	restarted := time.Now()
	env.waitSlow(t, ctx, env.reconnect(t), n)
	checkSlowRuns(t, n, 1, env.runs)
	t.Logf("crash %s after the first start: %d activity runs, %d workflows before their last step; restart took %s; all %d done %s after it",
		crashed.Sub(start).Round(time.Millisecond), before, unfinished, restarted.Sub(crashed).Round(time.Millisecond), n, time.Since(restarted).Round(time.Millisecond))
}

// checkSlowRuns checks the activity runs the workflow apps appended to
// files for n Slow workflows (which have no retries) across crashes: every
// one of the 3n steps ran, none more than once plus once per crash.
func checkSlowRuns(t *testing.T, n, crashes int, files ...string) {
	t.Helper()
	runs := map[string]int{}
	for _, f := range files {
		for line := range strings.SplitSeq(strings.TrimSpace(readFile(t, f)), "\n") {
			if line != "" {
				runs[line]++
			}
		}
	}
	for step, count := range runs {
		if count > 1+crashes {
			t.Errorf("%s ran %d times; at most %d allowed (%d crashes)", step, count, 1+crashes, crashes)
		}
	}
	if len(runs) != 3*n {
		t.Errorf("%d distinct activity runs, want %d", len(runs), 3*n)
	}
	for i := range n {
		for step := range 3 {
			if runs[fmt.Sprintf("SlowStep slow-%d %d", i, step)] == 0 {
				t.Errorf("step %d of slow-%d never ran", step, i)
			}
		}
	}
}
