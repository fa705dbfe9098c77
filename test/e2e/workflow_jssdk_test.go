package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// jsWorkflowApp is test/e2e/jsactors/workflow.js, a workflow app written
// with the JS SDK's WorkflowRuntime, driven through the DaprWorkflowClient
// it exposes on its HTTP port.
type jsWorkflowApp struct {
	base    string
	sidecar *framework.Sidecar
	app     *framework.Process
}

// jsWorkflowState is a workflow state as workflow.js answers it.
type jsWorkflowState struct {
	Name       string `json:"name"`
	InstanceID string `json:"instanceId"`
	Status     string `json:"status"`
	Output     string `json:"output"`
	Failure    string `json:"failure"`
}

func startJSWorkflowApp(t *testing.T) *jsWorkflowApp {
	t.Helper()
	node, err := exec.LookPath("node")
	needTool(t, err == nil, "node")
	dir := filepath.Join(framework.RepoRoot(), "test", "e2e", "jsactors")
	_, err = os.Stat(filepath.Join(dir, "node_modules", "@dapr", "dapr"))
	needTool(t, err == nil, "@dapr/dapr (cd test/e2e/jsactors && npm ci)")
	place := startPlacement(t)
	a := &jsWorkflowApp{}
	a.sidecar = framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "jsworkflows", ResourcesDir: framework.ActorStore(t),
		Args: []string{"--placement-host-address", place, "--actors-disseminate-timeout", "10s"},
	})
	waitActorsReady(t, a.sidecar)
	port := framework.FreePort(t)
	a.base = fmt.Sprintf("http://127.0.0.1:%d", port)
	a.app = framework.Start(t, "jsworkflows", node, []string{filepath.Join(dir, "workflow.js")}, sdkAppEnv(port, a.sidecar)...)
	if err := framework.WaitTCP(fmt.Sprintf("127.0.0.1:%d", port), 30*time.Second); err != nil {
		t.Fatalf("workflow.js: %v\n%s", err, a.app.Output())
	}
	(&workflowEnv{sidecar: a.sidecar, app: a.app}).waitWorkers(t)
	return a
}

// call sends a request to the app and decodes its JSON answer into out;
// it returns the status code.
func (a *jsWorkflowApp) call(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var in []byte
	if body != nil {
		var err error
		if in, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	code, resp := httpDo(t, method, a.base+path, string(in))
	if code == http.StatusInternalServerError {
		t.Fatalf("%s %s: %s\nsidecar:\n%s", method, path, resp, a.sidecar.Output())
	}
	if out != nil && code == http.StatusOK {
		if err := json.Unmarshal([]byte(resp), out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, resp)
		}
	}
	return code
}

func (a *jsWorkflowApp) start(t *testing.T, name, id string, input any) {
	t.Helper()
	var got struct{ ID string }
	a.call(t, http.MethodPost, "/start", map[string]any{"name": name, "id": id, "input": input}, &got)
	if got.ID != id {
		t.Fatalf("start %s %s: instance %q", name, id, got.ID)
	}
}

func (a *jsWorkflowApp) wait(t *testing.T, id string) jsWorkflowState {
	t.Helper()
	var st jsWorkflowState
	if code := a.call(t, http.MethodGet, "/wait/"+id, nil, &st); code != http.StatusOK {
		t.Fatalf("wait for %s: %d", id, code)
	}
	return st
}

// run starts a workflow and waits for it to end.
func (a *jsWorkflowApp) run(t *testing.T, name, id string, input any) jsWorkflowState {
	t.Helper()
	a.start(t, name, id, input)
	return a.wait(t, id)
}

func (a *jsWorkflowApp) runs(t *testing.T) map[string]int {
	t.Helper()
	runs := map[string]int{}
	a.call(t, http.MethodGet, "/runs", nil, &runs)
	return runs
}

func (a *jsWorkflowApp) waitStatus(t *testing.T, id, want string) {
	t.Helper()
	var st jsWorkflowState
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		a.call(t, http.MethodGet, "/state/"+id, nil, &st)
		if st.Status == want {
			return
		}
	}
	t.Fatalf("%s is %s, want %s", id, st.Status, want)
}

func wantJSCompleted(t *testing.T, st jsWorkflowState, name, output string) {
	t.Helper()
	if st.Status != "COMPLETED" || st.Output != output || st.Name != name {
		t.Errorf("%s: %s status %s output %q failure %q; want %s COMPLETED %q", st.InstanceID, st.Name, st.Status, st.Output, st.Failure, name, output)
	}
}

// TestWorkflowJSSDK runs workflows of an app written with the JS SDK's
// workflow runtime (@dapr/dapr WorkflowRuntime), started and managed with
// its DaprWorkflowClient: a chain of activities, a durable timer, an
// external event arriving and timing out, a sub-orchestration,
// continue-as-new, an activity that fails twice under a retry policy, and
// suspend/resume/terminate/purge. It counts every activity run.
func TestWorkflowJSSDK(t *testing.T) {
	a := startJSWorkflowApp(t)

	t.Run("chain", func(t *testing.T) {
		wantJSCompleted(t, a.run(t, "chain", "chain-1", 10), "chain", "15")
		runs := a.runs(t)
		for step := range 5 {
			if n := runs[fmt.Sprintf("add1 chain-1 %d", step)]; n != 1 {
				t.Errorf("add1 step %d of chain-1 ran %d times, want 1", step, n)
			}
		}
	})
	t.Run("timer", func(t *testing.T) {
		start := time.Now()
		wantJSCompleted(t, a.run(t, "timer", "timer-1", 2), "timer", `"done"`)
		if took := time.Since(start); took < 2*time.Second {
			t.Errorf("a 2 s timer ended after %s", took)
		}
	})
	t.Run("event times out", func(t *testing.T) {
		wantJSCompleted(t, a.run(t, "waitEvent", "event-timeout", 1), "waitEvent", `"timeout"`)
	})
	t.Run("event arrives", func(t *testing.T) {
		a.start(t, "waitEvent", "event-1", 30)
		a.call(t, http.MethodGet, "/started/event-1", nil, nil)
		a.call(t, http.MethodPost, "/raise/event-1", map[string]any{"event": "approve", "data": "yes"}, nil)
		start := time.Now()
		wantJSCompleted(t, a.wait(t, "event-1"), "waitEvent", `"yes"`)
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("the event took %s to end the wait: the timer won", took)
		}
	})
	t.Run("sub-orchestration", func(t *testing.T) {
		wantJSCompleted(t, a.run(t, "parent", "parent-1", 1), "parent", "12")
		var child jsWorkflowState
		a.call(t, http.MethodGet, "/state/parent-1-child", nil, &child)
		wantJSCompleted(t, child, "chain", "6")
	})
	t.Run("continue as new", func(t *testing.T) {
		wantJSCompleted(t, a.run(t, "counter", "counter-1", 0), "counter", "5")
	})
	t.Run("retried activity", func(t *testing.T) {
		wantJSCompleted(t, a.run(t, "flaky", "flaky-1", nil), "flaky", `"attempt 3"`)
		runs := a.runs(t)
		for attempt := range 3 {
			if n := runs[fmt.Sprintf("flakyAct flaky-1 %d", attempt)]; n != 1 {
				t.Errorf("attempt %d of flakyAct ran %d times, want 1", attempt, n)
			}
		}
		if n := runs["flakyAct flaky-1 3"]; n != 0 {
			t.Errorf("a fourth attempt ran %d times after the third succeeded", n)
		}
	})
	t.Run("suspend resume terminate purge", func(t *testing.T) {
		for _, id := range []string{"long-1", "long-2"} {
			a.start(t, "long", id, nil)
			a.call(t, http.MethodGet, "/started/"+id, nil, nil)
		}
		a.call(t, http.MethodPost, "/suspend/long-1", nil, nil)
		a.waitStatus(t, "long-1", "SUSPENDED")
		// An event raised while suspended waits for the resume.
		a.call(t, http.MethodPost, "/raise/long-1", map[string]any{"event": "go", "data": "after resume"}, nil)
		time.Sleep(500 * time.Millisecond)
		a.waitStatus(t, "long-1", "SUSPENDED")
		a.call(t, http.MethodPost, "/resume/long-1", nil, nil)
		wantJSCompleted(t, a.wait(t, "long-1"), "long", `"after resume"`)

		a.call(t, http.MethodPost, "/terminate/long-2", nil, nil)
		if st := a.wait(t, "long-2"); st.Status != "TERMINATED" {
			t.Errorf("terminated workflow is %s", st.Status)
		}
		var purged struct{ Purged bool }
		a.call(t, http.MethodPost, "/purge/long-2", nil, &purged)
		if !purged.Purged {
			t.Error("purge of long-2 purged nothing")
		}
		if code := a.call(t, http.MethodGet, "/state/long-2", nil, nil); code != http.StatusNotFound {
			t.Errorf("a purged workflow is still there (%d)", code)
		}
	})
}
