package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	wfv1 "github.com/dapr/dapr/pkg/proto/workflows/v1"
	"github.com/dapr/durabletask-go/api/protos"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// stdioServerEnv makes the test binary an MCP server on its stdin and
// stdout (the stdio transport's test server).
const stdioServerEnv = "TANDEM_MCP_TEST_STDIO_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(stdioServerEnv) == "1" {
		srv := testServer("stdio", nil)
		if err := srv.Run(context.Background(), &sdk.StdioTransport{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type cityInput struct {
	City string `json:"city"`
}

// testServer is a real MCP server with two tools: get_weather (city
// required) and env (returns $MCP_TEST_VAR).
func testServer(name string, calls *atomic.Int32) *sdk.Server {
	srv := sdk.NewServer(&sdk.Implementation{Name: name, Version: "v1"}, nil)
	sdk.AddTool(srv, &sdk.Tool{Name: "get_weather", Description: "weather"}, func(_ context.Context, _ *sdk.CallToolRequest, in cityInput) (*sdk.CallToolResult, struct{}, error) {
		if calls != nil {
			calls.Add(1)
		}
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: name + ": sunny in " + in.City}}}, struct{}{}, nil
	})
	sdk.AddTool(srv, &sdk.Tool{Name: "env", Description: "env"}, func(context.Context, *sdk.CallToolRequest, struct{}) (*sdk.CallToolResult, struct{}, error) {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "var=" + os.Getenv("MCP_TEST_VAR")}}}, struct{}{}, nil
	})
	return srv
}

func httpServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

func streamable(t *testing.T, name string, seen func(*http.Request)) string {
	srv := testServer(name, nil)
	return httpServer(t, sdk.NewStreamableHTTPHandler(func(r *http.Request) *sdk.Server {
		if seen != nil {
			seen(r)
		}
		return srv
	}, nil))
}

func server(t *testing.T, doc string) *Server {
	t.Helper()
	s, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(s.Validate(), s.CheckSecurity(false)); err != nil {
		t.Fatal(err)
	}
	return s
}

func httpDoc(name, transport, url, extra string) string {
	return fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: MCPServer
metadata:
  name: %s
spec:
  endpoint:
    %s:
      url: %s
%s`, name, transport, url, extra)
}

// hooks answers child workflows (middleware hooks) by name: the output
// (JSON) or an error.
type hooks map[string]func(input string) (string, error)

// run drives one instance of a workflow through the executor as the
// engine does: each step gets the past and new events, activities run on
// the executor, child workflows are answered by h. It returns the
// completion action.
func run(t *testing.T, e *Executor, name string, input any, h hooks) *protos.CompleteWorkflowAction {
	t.Helper()
	ctx := context.Background()
	raw, _ := json.Marshal(input)
	now := timestamppb.Now()
	var past []*protos.HistoryEvent
	next := []*protos.HistoryEvent{
		{EventId: -1, Timestamp: now, EventType: &protos.HistoryEvent_WorkflowStarted{WorkflowStarted: &protos.WorkflowStartedEvent{}}},
		{EventId: -1, Timestamp: now, EventType: &protos.HistoryEvent_ExecutionStarted{ExecutionStarted: &protos.ExecutionStartedEvent{
			Name: name, Input: wrapperspb.String(string(raw)), WorkflowInstance: &protos.WorkflowInstance{InstanceId: "i1"}}}},
	}
	for step := 0; step < 20; step++ {
		resp, err := e.ExecuteWorkflow(ctx, &protos.WorkflowRequest{InstanceId: "i1", PastEvents: past, NewEvents: next})
		if err != nil {
			t.Fatal(err)
		}
		past = append(past, next...)
		next = []*protos.HistoryEvent{{EventId: -1, Timestamp: now, EventType: &protos.HistoryEvent_WorkflowStarted{WorkflowStarted: &protos.WorkflowStartedEvent{}}}}
		for _, a := range resp.GetActions() {
			switch {
			case a.GetCompleteWorkflow() != nil:
				return a.GetCompleteWorkflow()
			case a.GetScheduleTask() != nil:
				st := a.GetScheduleTask()
				past = append(past, &protos.HistoryEvent{EventId: a.GetId(), Timestamp: now, EventType: &protos.HistoryEvent_TaskScheduled{TaskScheduled: &protos.TaskScheduledEvent{Name: st.GetName(), Input: st.GetInput()}}})
				ar, err := e.ExecuteActivity(ctx, &protos.ActivityRequest{Name: st.GetName(), Input: st.GetInput(), TaskId: a.GetId(), WorkflowInstance: &protos.WorkflowInstance{InstanceId: "i1"}})
				if err != nil {
					t.Fatal(err)
				}
				if fd := ar.GetFailureDetails(); fd != nil {
					next = append(next, &protos.HistoryEvent{EventId: -1, Timestamp: now, EventType: &protos.HistoryEvent_TaskFailed{TaskFailed: &protos.TaskFailedEvent{TaskScheduledId: a.GetId(), FailureDetails: fd}}})
				} else {
					next = append(next, &protos.HistoryEvent{EventId: -1, Timestamp: now, EventType: &protos.HistoryEvent_TaskCompleted{TaskCompleted: &protos.TaskCompletedEvent{TaskScheduledId: a.GetId(), Result: ar.GetResult()}}})
				}
			case a.GetCreateChildWorkflow() != nil:
				c := a.GetCreateChildWorkflow()
				past = append(past, &protos.HistoryEvent{EventId: a.GetId(), Timestamp: now, EventType: &protos.HistoryEvent_ChildWorkflowInstanceCreated{ChildWorkflowInstanceCreated: &protos.ChildWorkflowInstanceCreatedEvent{Name: c.GetName(), InstanceId: c.GetInstanceId(), Input: c.GetInput()}}})
				hook, ok := h[c.GetName()]
				if !ok {
					t.Fatalf("unexpected child workflow %q", c.GetName())
				}
				out, err := hook(c.GetInput().GetValue())
				if err != nil {
					next = append(next, &protos.HistoryEvent{EventId: -1, Timestamp: now, EventType: &protos.HistoryEvent_ChildWorkflowInstanceFailed{ChildWorkflowInstanceFailed: &protos.ChildWorkflowInstanceFailedEvent{TaskScheduledId: a.GetId(), FailureDetails: &protos.TaskFailureDetails{ErrorType: "error", ErrorMessage: err.Error()}}}})
				} else {
					var res *wrapperspb.StringValue
					if out != "" {
						res = wrapperspb.String(out)
					}
					next = append(next, &protos.HistoryEvent{EventId: -1, Timestamp: now, EventType: &protos.HistoryEvent_ChildWorkflowInstanceCompleted{ChildWorkflowInstanceCompleted: &protos.ChildWorkflowInstanceCompletedEvent{TaskScheduledId: a.GetId(), Result: res}}})
				}
			default:
				t.Fatalf("unexpected action %v", a)
			}
		}
	}
	t.Fatal("the workflow did not complete")
	return nil
}

func completed(t *testing.T, c *protos.CompleteWorkflowAction) string {
	t.Helper()
	if c.GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED {
		t.Fatalf("status %v, failure %v", c.GetWorkflowStatus(), c.GetFailureDetails())
	}
	return c.GetResult().GetValue()
}

func callResult(t *testing.T, c *protos.CompleteWorkflowAction) *sdk.CallToolResult {
	t.Helper()
	var res sdk.CallToolResult
	if err := json.Unmarshal([]byte(completed(t, c)), &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func text(r *sdk.CallToolResult) string {
	if len(r.Content) == 0 {
		return ""
	}
	if tc, ok := r.Content[0].(*sdk.TextContent); ok {
		return tc.Text
	}
	return ""
}

func register(t *testing.T, e *Executor, doc string, resolved Resolved) *Server {
	t.Helper()
	s := server(t, doc)
	if err := e.Register(context.Background(), s, resolved); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Unregister(s.Name()) })
	return s
}

func TestTransports(t *testing.T) {
	sse := testServer("sse", nil)
	for _, tc := range []struct {
		name string
		doc  func(t *testing.T) string
		env  []string
	}{
		{"streamableHTTP", func(t *testing.T) string {
			return httpDoc("weather", "streamableHTTP", streamable(t, "streamableHTTP", nil), "")
		}, nil},
		{"sse", func(t *testing.T) string {
			return httpDoc("weather", "sse", httpServer(t, sdk.NewSSEHandler(func(*http.Request) *sdk.Server { return sse }, nil)), "")
		}, nil},
		{"stdio", func(t *testing.T) string {
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("kind: MCPServer\nmetadata:\n  name: weather\nspec:\n  endpoint:\n    stdio:\n      command: %s\n      env:\n      - name: %s\n        value: \"1\"\n", exe, stdioServerEnv)
		}, []string{stdioServerEnv + "=1", "MCP_TEST_VAR=from-resource"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := NewExecutor(nil)
			defer e.Close()
			register(t, e, tc.doc(t), Resolved{Env: tc.env})

			var list sdk.ListToolsResult
			if err := json.Unmarshal([]byte(completed(t, run(t, e, ListToolsWorkflow("weather"), nil, nil))), &list); err != nil {
				t.Fatal(err)
			}
			if len(list.Tools) != 2 {
				t.Fatalf("tools %v", list.Tools)
			}
			res := callResult(t, run(t, e, CallToolWorkflow("weather", "get_weather"), map[string]any{"arguments": map[string]any{"city": "Seattle"}}, nil))
			if res.IsError || !strings.Contains(text(res), "sunny in Seattle") {
				t.Fatalf("result %+v %q", res, text(res))
			}
			if tc.name == "stdio" {
				res := callResult(t, run(t, e, CallToolWorkflow("weather", "env"), map[string]any{}, nil))
				if text(res) != "var=from-resource" {
					t.Fatalf("env tool: %q", text(res))
				}
			}
		})
	}
}

func TestCallToolErrors(t *testing.T) {
	e := NewExecutor(nil)
	defer e.Close()
	register(t, e, httpDoc("weather", "streamableHTTP", streamable(t, "w", nil), ""), Resolved{})

	t.Run("missing required argument is isError", func(t *testing.T) {
		res := callResult(t, run(t, e, CallToolWorkflow("weather", "get_weather"), map[string]any{"arguments": map[string]any{}}, nil))
		if !res.IsError || !strings.Contains(text(res), "missing required argument(s)") || !strings.Contains(text(res), "city") {
			t.Fatalf("result %+v %q", res, text(res))
		}
	})
	t.Run("unknown tool fails not registered", func(t *testing.T) {
		c := run(t, e, CallToolWorkflow("weather", "nope"), map[string]any{}, nil)
		if c.GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED || !strings.Contains(c.GetFailureDetails().GetErrorMessage(), "is not registered") {
			t.Fatalf("status %v failure %v", c.GetWorkflowStatus(), c.GetFailureDetails())
		}
	})
	t.Run("unknown server fails not registered", func(t *testing.T) {
		c := run(t, e, ListToolsWorkflow("other"), nil, nil)
		if c.GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED || !strings.Contains(c.GetFailureDetails().GetErrorMessage(), "is not registered") {
			t.Fatalf("status %v failure %v", c.GetWorkflowStatus(), c.GetFailureDetails())
		}
	})
	t.Run("unregistered server's activity fails", func(t *testing.T) {
		ar, err := e.ExecuteActivity(context.Background(), &protos.ActivityRequest{Name: CallToolActivity("other")})
		if err != nil || ar.GetFailureDetails() == nil {
			t.Fatalf("%v %v", ar, err)
		}
	})
}

func TestMiddleware(t *testing.T) {
	e := NewExecutor(nil)
	defer e.Close()
	url := streamable(t, "w", nil)
	register(t, e, httpDoc("gated", "streamableHTTP", url, `  middleware:
    beforeCallTool:
    - workflow:
        workflowName: pass
    - workflow:
        workflowName: redact
      mutate: true
    afterCallTool:
    - workflow:
        workflowName: rewrite
      mutate: true
    - workflow:
        workflowName: audit
    beforeListTools:
    - workflow:
        workflowName: deny
`), Resolved{})
	var auditIn wfv1.MCPAfterCallToolHookInput
	h := hooks{
		"pass": func(in string) (string, error) {
			var hi wfv1.MCPBeforeCallToolHookInput
			if err := protojson.Unmarshal([]byte(in), &hi); err != nil || hi.GetName() != "gated" || hi.GetToolName() != "get_weather" || hi.GetArguments().AsMap()["city"] != "Oslo" {
				return "", fmt.Errorf("pass got %s (%v)", in, err)
			}
			return "", nil
		},
		"redact": func(in string) (string, error) {
			var hi wfv1.MCPBeforeCallToolHookInput
			_ = protojson.Unmarshal([]byte(in), &hi)
			hi.Arguments.Fields["city"] = structString("Bergen")
			b, _ := protojson.Marshal(&hi)
			return string(b), nil
		},
		"rewrite": func(in string) (string, error) {
			var hi wfv1.MCPAfterCallToolHookInput
			if err := protojson.Unmarshal([]byte(in), &hi); err != nil {
				return "", err
			}
			var r sdk.CallToolResult
			if err := json.Unmarshal(hi.GetResult(), &r); err != nil {
				return "", err
			}
			r.Content = append(r.Content, &sdk.TextContent{Text: "audited"})
			hi.Result, _ = json.Marshal(&r)
			b, _ := protojson.Marshal(&hi)
			return string(b), nil
		},
		"audit": func(in string) (string, error) { return "", protojson.Unmarshal([]byte(in), &auditIn) },
		"deny":  func(string) (string, error) { return "", errors.New("listing tools is not allowed") },
	}
	res := callResult(t, run(t, e, CallToolWorkflow("gated", "get_weather"), map[string]any{"arguments": map[string]any{"city": "Oslo"}}, h))
	if res.IsError || text(res) != "w: sunny in Bergen" || len(res.Content) != 2 {
		t.Fatalf("result %+v %q", res, text(res))
	}
	if !strings.Contains(string(auditIn.GetResult()), "audited") || auditIn.GetArguments().AsMap()["city"] != "Bergen" {
		t.Fatalf("the audit hook saw %v", &auditIn)
	}
	if c := run(t, e, ListToolsWorkflow("gated"), nil, h); c.GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED {
		t.Fatalf("beforeListTools deny: %v", c.GetWorkflowStatus())
	}

	// A failing before hook is an isError result; a failing after hook
	// fails the workflow.
	h["pass"] = func(string) (string, error) { return "", errors.New("access denied by policy") }
	res = callResult(t, run(t, e, CallToolWorkflow("gated", "get_weather"), map[string]any{"arguments": map[string]any{"city": "Oslo"}}, h))
	if !res.IsError || !strings.Contains(text(res), "access denied by policy") {
		t.Fatalf("result %+v %q", res, text(res))
	}
	h["pass"] = func(string) (string, error) { return "", nil }
	h["audit"] = func(string) (string, error) { return "", errors.New("post-call audit failed") }
	if c := run(t, e, CallToolWorkflow("gated", "get_weather"), map[string]any{"arguments": map[string]any{"city": "Oslo"}}, h); c.GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED {
		t.Fatalf("after hook failure: %v", c.GetWorkflowStatus())
	}
}

func TestHeadersAndOAuth2(t *testing.T) {
	var tokenCalls atomic.Int32
	token := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.Form.Get("grant_type") != "client_credentials" {
			http.Error(w, "bad grant", http.StatusBadRequest)
			return
		}
		id, secret, _ := r.BasicAuth()
		if id != "cid" || secret != "s3cret" {
			http.Error(w, "bad client", http.StatusUnauthorized)
			return
		}
		tokenCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}`)
	}))
	var auth, key atomic.Value
	url := streamable(t, "w", func(r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		key.Store(r.Header.Get("X-API-Key"))
	})
	doc := httpDoc("authed", "streamableHTTP", url, fmt.Sprintf(`      headers:
      - name: X-API-Key
        secretKeyRef:
          name: k
      auth:
        secretStore: vault
        oauth2:
          issuer: %s
          clientID: cid
          secretKeyRef:
            name: oauth
            key: client_secret
`, token))
	doc = strings.Replace(doc, "spec:\n  endpoint:\n    streamableHTTP:\n      url: "+url+"\n", "spec:\n  endpoint:\n    streamableHTTP:\n      url: "+url+"\n", 1)
	e := NewExecutor(nil)
	defer e.Close()
	register(t, e, doc, Resolved{Headers: map[string]string{"X-API-Key": "k-123"}, ClientSecret: "s3cret"})
	res := callResult(t, run(t, e, CallToolWorkflow("authed", "get_weather"), map[string]any{"arguments": map[string]any{"city": "Rome"}}, nil))
	if res.IsError {
		t.Fatalf("result %q", text(res))
	}
	if auth.Load() != "Bearer tok-1" || key.Load() != "k-123" || tokenCalls.Load() != 1 {
		t.Fatalf("authorization %v, key %v, token calls %d", auth.Load(), key.Load(), tokenCalls.Load())
	}
}

// auth.spiffe.jwt puts the sidecar's current JWT SVID for the audience
// in the header, read at every request (a renewed token is used next);
// without a token for the audience the call fails and says why.
func TestSPIFFEJWT(t *testing.T) {
	var got atomic.Value // the header of the last request
	srv := testServer("w", nil)
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil)
	url := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("X-SPIFFE-JWT"))
		h.ServeHTTP(w, r)
	}))
	doc := httpDoc("spiffe", "streamableHTTP", url, `      auth:
        spiffe:
          jwt:
            header: X-SPIFFE-JWT
            headerValuePrefix: "Bearer "
            audience: mcp://test
`)
	var current atomic.Value
	current.Store("tok-1")
	jwt := func(aud string) (string, error) {
		if aud != "mcp://test" {
			return "", fmt.Errorf("no JWT SVID for audience %q", aud)
		}
		return current.Load().(string), nil
	}
	e := NewExecutor(nil)
	defer e.Close()
	register(t, e, doc, Resolved{JWT: jwt})
	for _, tok := range []string{"tok-1", "tok-2"} {
		current.Store(tok)
		res := callResult(t, run(t, e, CallToolWorkflow("spiffe", "get_weather"), map[string]any{"arguments": map[string]any{"city": "Rome"}}, nil))
		if res.IsError {
			t.Fatalf("result %q", text(res))
		}
		if got.Load() != "Bearer "+tok {
			t.Fatalf("header %v, want Bearer %s", got.Load(), tok)
		}
	}
}

func TestReconnectAfterServerRestart(t *testing.T) {
	var calls atomic.Int32
	srv := testServer("w", &calls)
	ts := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil))
	defer ts.Close()
	e := NewExecutor(nil)
	defer e.Close()
	register(t, e, httpDoc("w", "streamableHTTP", ts.URL, ""), Resolved{})
	args := map[string]any{"arguments": map[string]any{"city": "Lima"}}
	if res := callResult(t, run(t, e, CallToolWorkflow("w", "get_weather"), args, nil)); res.IsError {
		t.Fatal(text(res))
	}
	// The server forgets its sessions (a restart): the next call
	// reconnects once and succeeds.
	ts.Config.Handler = sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, nil)
	res := callResult(t, run(t, e, CallToolWorkflow("w", "get_weather"), args, nil))
	if res.IsError || calls.Load() != 2 {
		t.Fatalf("after restart: %q (calls %d)", text(res), calls.Load())
	}
}

func TestRegisterUnreachable(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(3 * time.Second) }))
	defer ts.Close()
	e := NewExecutor(nil)
	defer e.Close()
	s := server(t, httpDoc("dead", "streamableHTTP", ts.URL, "      timeout: 1s\n"))
	start := time.Now()
	if err := e.Register(context.Background(), s, Resolved{}); err == nil {
		t.Fatal("registered an unreachable server")
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Fatalf("took %s", d)
	}
	if len(e.Registered()) != 0 {
		t.Fatal(e.Registered())
	}
}

func structString(s string) *structpb.Value { return structpb.NewStringValue(s) }
