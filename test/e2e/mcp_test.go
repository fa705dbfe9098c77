package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// mcpTestServer serves a real MCP server (streamable HTTP) with one tool,
// echo, whose answer starts with tag.
func mcpTestServer(t *testing.T, tag string) string {
	t.Helper()
	srv := sdk.NewServer(&sdk.Implementation{Name: tag, Version: "v1"}, nil)
	type msg struct {
		Msg string `json:"msg"`
	}
	sdk.AddTool(srv, &sdk.Tool{Name: "echo", Description: "echo"}, func(_ context.Context, _ *sdk.CallToolRequest, in msg) (*sdk.CallToolResult, struct{}, error) {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: tag + ": " + in.Msg}}}, struct{}{}, nil
	})
	ts := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil))
	t.Cleanup(ts.Close)
	return ts.URL
}

// runWorkflowHTTP starts a workflow through the HTTP API and waits for it
// to end; it returns the runtime status and the output.
func runWorkflowHTTP(t *testing.T, s *framework.Sidecar, name string, input any) (string, string) {
	t.Helper()
	body, _ := json.Marshal(input)
	code, out := httpDo(t, http.MethodPost, s.HTTPURL()+"/v1.0-beta1/workflows/dapr/"+name+"/start", string(body))
	if code != http.StatusAccepted {
		t.Fatalf("start %s: %d %s", name, code, out)
	}
	var started struct {
		InstanceID string `json:"instanceID"`
	}
	if err := json.Unmarshal([]byte(out), &started); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, out := httpDo(t, http.MethodGet, s.HTTPURL()+"/v1.0-beta1/workflows/dapr/"+started.InstanceID, "")
		var st struct {
			RuntimeStatus string            `json:"runtimeStatus"`
			Properties    map[string]string `json:"properties"`
		}
		_ = json.Unmarshal([]byte(out), &st)
		switch st.RuntimeStatus {
		case "COMPLETED", "FAILED", "TERMINATED":
			return st.RuntimeStatus, st.Properties["dapr.workflow.output"] + st.Properties["dapr.workflow.failure.error_message"]
		}
	}
	t.Fatalf("workflow %s did not end\n%s", name, s.Output())
	return "", ""
}

// TestMCPServer: a sidecar with no app and no SDK worker runs an
// MCPServer's ListTools and CallTool workflows, lists the server in its
// metadata, and follows the resource file: a changed URL reaches the new
// server, a removed file unregisters the workflows.
func TestMCPServer(t *testing.T) {
	place := startPlacement(t)
	res := framework.ActorStore(t)
	urlA, urlB := mcpTestServer(t, "A"), mcpTestServer(t, "B")
	file := filepath.Join(res, "mcp.yaml")
	write := func(url string) {
		doc := fmt.Sprintf("apiVersion: dapr.io/v1alpha1\nkind: MCPServer\nmetadata:\n  name: tools\nspec:\n  endpoint:\n    streamableHTTP:\n      url: %s\n", url)
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(urlA)
	s := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "mcpapp", ResourcesDir: res,
		Args: []string{"--placement-host-address", place, "--actors-disseminate-timeout", "10s"},
	})
	if _, body := httpDo(t, http.MethodGet, s.HTTPURL()+"/v1.0/metadata", ""); !strings.Contains(body, `"mcpServers":[{"name":"tools"}]`) {
		t.Fatalf("metadata: %s", body)
	}
	status, out := runWorkflowHTTP(t, s, "dapr.internal.mcp.tools.ListTools", nil)
	if status != "COMPLETED" || !strings.Contains(out, `"name":"echo"`) {
		t.Fatalf("ListTools: %s %s", status, out)
	}
	call := map[string]any{"arguments": map[string]any{"msg": "hi"}}
	status, out = runWorkflowHTTP(t, s, "dapr.internal.mcp.tools.CallTool.echo", call)
	if status != "COMPLETED" || !strings.Contains(out, "A: hi") || strings.Contains(out, `"isError":true`) {
		t.Fatalf("CallTool: %s %s", status, out)
	}
	status, out = runWorkflowHTTP(t, s, "dapr.internal.mcp.tools.CallTool.missing", call)
	if status != "FAILED" || !strings.Contains(out, "is not registered") {
		t.Fatalf("CallTool of an unknown tool: %s %s", status, out)
	}

	write(urlB)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, out = runWorkflowHTTP(t, s, "dapr.internal.mcp.tools.CallTool.echo", call); strings.Contains(out, "B: hi") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reload never reached server B: %s\n%s", out, s.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	// Gone either way daprd shows it: the start is refused (the workflow
	// actors are no longer hosted: no worker, no MCPServer), or the
	// instance fails (the workflow is not registered).
	for deadline := time.Now().Add(30 * time.Second); ; {
		code, out := httpDo(t, http.MethodPost, s.HTTPURL()+"/v1.0-beta1/workflows/dapr/dapr.internal.mcp.tools.ListTools/start", "")
		if code != http.StatusAccepted {
			if !strings.Contains(out, "ERR_START_WORKFLOW") {
				t.Fatalf("start after the file was removed: %d %s", code, out)
			}
			break
		}
		if status, _ = runWorkflowHTTP(t, s, "dapr.internal.mcp.tools.ListTools", nil); status == "FAILED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ListTools still %s after the file was removed", status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
