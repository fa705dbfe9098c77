package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/dapr/durabletask-go/api"
	"github.com/dapr/durabletask-go/api/protos"
	"github.com/dapr/durabletask-go/backend"
	"github.com/dapr/durabletask-go/task"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// maxListPages bounds the pages of a tool listing (a server that keeps
// returning cursors is refused, not truncated).
const maxListPages = 500

// Executor runs the MCP workflows and activities of the registered
// servers inside the sidecar: it is the workflow engine's in-process
// executor for names under dapr.internal. (workflow.InProcess). It is
// safe for concurrent use.
type Executor struct {
	log  *slog.Logger
	exec backend.Executor

	mu      sync.RWMutex
	servers map[string]*registered
}

// registered is one server whose tools were discovered.
type registered struct {
	server  *Server
	sess    *session
	tools   []*sdk.Tool
	schemas map[string]json.RawMessage // tool name -> input schema
}

// NewExecutor returns an Executor with no servers.
func NewExecutor(log *slog.Logger) *Executor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Executor{log: log, servers: map[string]*registered{}}
	reg := task.NewTaskRegistry()
	// One workflow entry point: the name picks the server and the tool,
	// so servers come and go without touching the registry. Activities
	// are run directly (ExecuteActivity).
	_ = reg.AddWorkflowN("*", e.workflow)
	e.exec = task.NewTaskExecutor(reg)
	return e
}

// ExecuteWorkflow runs one step of an in-process workflow instance.
func (e *Executor) ExecuteWorkflow(ctx context.Context, req *protos.WorkflowRequest) (*protos.WorkflowResponse, error) {
	return e.exec.ExecuteWorkflow(ctx, api.InstanceID(req.GetInstanceId()), req.GetPastEvents(), req.GetNewEvents(),
		backend.ExecuteOptions{PropagatedHistory: req.GetPropagatedHistory()})
}

// ExecuteActivity runs one in-process activity: list-tools or call-tool
// of a registered server. A call the server refuses is a result with
// isError set; an activity the sidecar cannot run fails.
func (e *Executor) ExecuteActivity(ctx context.Context, req *protos.ActivityRequest) (*protos.ActivityResponse, error) {
	resp := &protos.ActivityResponse{InstanceId: req.GetWorkflowInstance().GetInstanceId(), TaskId: req.GetTaskId()}
	out, err := e.activity(ctx, req.GetName(), []byte(req.GetInput().GetValue()))
	if err == nil {
		var raw []byte
		if raw, err = json.Marshal(out); err == nil {
			resp.Result = wrapperspb.String(string(raw))
			return resp, nil
		}
	}
	resp.FailureDetails = &protos.TaskFailureDetails{ErrorType: fmt.Sprintf("%T", err), ErrorMessage: err.Error()}
	return resp, nil
}

// lookup returns the registered server of a workflow or activity.
func (e *Executor) lookup(server string) *registered {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.servers[server]
}

// workflow dispatches by name; a name that is not a registered server's
// ListTools or one of its tools' CallTool fails the instance.
func (e *Executor) workflow(ctx *task.WorkflowContext) (any, error) {
	notRegistered := fmt.Errorf("workflow named '%s' is not registered", ctx.Name)
	p, ok := parseWorkflowName(ctx.Name)
	if !ok {
		return nil, notRegistered
	}
	r := e.lookup(p.server)
	if r == nil {
		return nil, notRegistered
	}
	switch p.method {
	case methodListTools:
		return listToolsWorkflow(ctx, r.server)
	default:
		if _, ok := r.schemas[p.tool]; !ok && !slices.ContainsFunc(r.tools, func(t *sdk.Tool) bool { return t.Name == p.tool }) {
			return nil, notRegistered
		}
		return callToolWorkflow(ctx, r.server, p.tool)
	}
}

// activity runs list-tools and call-tool.
func (e *Executor) activity(ctx context.Context, name string, input []byte) (any, error) {
	server, method, ok := parseActivityName(name)
	r := e.lookup(server)
	if !ok || r == nil {
		return nil, fmt.Errorf("no task activity named '%s' was registered", name)
	}
	if method == "list-tools" {
		return r.listTools(ctx)
	}
	var in callToolActivityInput
	if len(input) > 0 {
		if err := json.Unmarshal(input, &in); err != nil {
			return errorResult("call-tool: failed to parse input: %s", err), nil
		}
	}
	if missing := missingArguments(r.schemas[in.ToolName], in.Arguments); len(missing) > 0 {
		return errorResult("call-tool: missing required argument(s) for tool %q: %s", in.ToolName, joinNames(missing)), nil
	}
	callCtx, cancel := context.WithTimeout(ctx, r.server.Timeout())
	defer cancel()
	res, err := do(callCtx, r.sess, func(ctx context.Context, cs *sdk.ClientSession) (*sdk.CallToolResult, error) {
		return cs.CallTool(ctx, &sdk.CallToolParams{Name: in.ToolName, Arguments: in.Arguments})
	})
	if err != nil {
		return errorResult("call-tool: call failed for %q: %s (tool %q)", server, err, in.ToolName), nil
	}
	return res, nil
}

// listTools answers from the tools discovered at registration, which a
// reload refreshes.
func (r *registered) listTools(ctx context.Context) (*sdk.ListToolsResult, error) {
	if len(r.tools) > 0 {
		return &sdk.ListToolsResult{Tools: r.tools}, nil
	}
	tools, err := discover(ctx, r.sess, r.server.Timeout())
	if err != nil {
		return nil, err
	}
	return &sdk.ListToolsResult{Tools: tools}, nil
}

// discover lists every page of the server's tools.
func discover(ctx context.Context, s *session, timeout time.Duration) ([]*sdk.Tool, error) {
	var tools []*sdk.Tool
	cursor := ""
	for range maxListPages {
		pageCtx, cancel := context.WithTimeout(ctx, timeout)
		res, err := do(pageCtx, s, func(ctx context.Context, cs *sdk.ClientSession) (*sdk.ListToolsResult, error) {
			return cs.ListTools(ctx, &sdk.ListToolsParams{Cursor: cursor})
		})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("ListTools failed: %w", err)
		}
		tools = append(tools, res.Tools...)
		if res.NextCursor == "" {
			return tools, nil
		}
		cursor = res.NextCursor
	}
	return nil, fmt.Errorf("the MCP server returned more than %d pages of tools; refusing to truncate", maxListPages)
}

// Register connects to server, discovers its tools and makes its
// workflows available, replacing an earlier registration of the same
// name (whose connection is closed). On failure, nothing of the server
// is left registered.
func (e *Executor) Register(ctx context.Context, server *Server, resolved Resolved) error {
	e.Unregister(server.Name())
	ctx, cancel := context.WithTimeout(ctx, server.Timeout())
	defer cancel()
	sess, err := connect(ctx, server, resolved)
	if err != nil {
		return fmt.Errorf("MCPServer %q: failed to connect: %w", server.Name(), err)
	}
	tools, err := discover(ctx, sess, server.Timeout())
	if err != nil {
		sess.close()
		return fmt.Errorf("MCPServer %q: failed to discover tools: %w", server.Name(), err)
	}
	r := &registered{server: server, sess: sess, tools: tools, schemas: map[string]json.RawMessage{}}
	for _, t := range tools {
		var raw json.RawMessage
		if t.InputSchema != nil {
			raw, _ = json.Marshal(t.InputSchema)
		}
		r.schemas[t.Name] = raw
	}
	e.mu.Lock()
	old := e.servers[server.Name()]
	e.servers[server.Name()] = r
	e.mu.Unlock()
	if old != nil {
		old.sess.close()
	}
	names := make([]string, len(tools))
	for i, t := range tools {
		names[i] = t.Name
	}
	e.log.Info("MCPServer workflows registered", "mcpserver", server.Name(), "tools", names)
	return nil
}

// Unregister removes a server's workflows and closes its connection;
// false if it was not registered.
func (e *Executor) Unregister(name string) bool {
	e.mu.Lock()
	r := e.servers[name]
	delete(e.servers, name)
	e.mu.Unlock()
	if r == nil {
		return false
	}
	r.sess.close()
	return true
}

// Registered names the servers whose workflows are available, sorted.
func (e *Executor) Registered() []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Sorted(maps.Keys(e.servers))
}

// Close closes every server's connection.
func (e *Executor) Close() error {
	e.mu.Lock()
	servers := e.servers
	e.servers = map[string]*registered{}
	e.mu.Unlock()
	for _, r := range servers {
		r.sess.close()
	}
	return nil
}
