package mcp

import (
	"encoding/json"
	"fmt"
	"strings"

	wfv1 "github.com/dapr/dapr/pkg/proto/workflows/v1"
	"github.com/dapr/durabletask-go/task"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/protobuf/types/known/structpb"
)

// callToolInput is the input of a CallTool workflow.
type callToolInput struct {
	Arguments map[string]any `json:"arguments,omitempty"`
}

// callToolActivityInput is what a CallTool workflow hands its call-tool
// activity (daprd's field names: instances move between the two).
type callToolActivityInput struct {
	ToolName  string         `json:"tool_name"`
	Arguments map[string]any `json:"arguments,omitempty"`
}

// errorResult is a tool result with isError set: what the caller (an
// agent) gets when the call could not be made, so it can correct itself.
func errorResult(format string, a ...any) *sdk.CallToolResult {
	return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: fmt.Sprintf(format, a...)}}}
}

// hookOptions runs a hook's workflow as a child, on its app if it names
// one.
func hookOptions(h Hook, input any) []task.ChildWorkflowOption {
	opts := []task.ChildWorkflowOption{task.WithChildWorkflowInput(input)}
	if h.Workflow.AppID != "" {
		opts = append(opts, task.WithChildWorkflowAppID(h.Workflow.AppID))
	}
	return opts
}

func asStruct(args map[string]any) (*structpb.Struct, error) {
	if args == nil {
		return nil, nil
	}
	return structpb.NewStruct(args)
}

// listToolsWorkflow: beforeListTools hooks, the list-tools activity,
// afterListTools hooks. Any failure fails the workflow.
func listToolsWorkflow(ctx *task.WorkflowContext, s *Server) (any, error) {
	name := s.Name()
	var mw Middleware
	if s.Spec.Middleware != nil {
		mw = *s.Spec.Middleware
	}
	for _, h := range mw.BeforeListTools {
		if err := ctx.CallChildWorkflow(h.Workflow.WorkflowName, hookOptions(h, &wfv1.MCPBeforeListToolsHookInput{Name: name})...).Await(nil); err != nil {
			return nil, fmt.Errorf("beforeListTools failed: %w", err)
		}
	}
	var result sdk.ListToolsResult
	if err := ctx.CallActivity(ListToolsActivity(name)).Await(&result); err != nil {
		return nil, fmt.Errorf("list-tools activity failed: %w", err)
	}
	if len(mw.AfterListTools) == 0 {
		return &result, nil
	}
	raw, err := json.Marshal(&result)
	if err != nil {
		return nil, fmt.Errorf("afterListTools failed: encode the result: %w", err)
	}
	out := &result
	for _, h := range mw.AfterListTools {
		in := &wfv1.MCPAfterListToolsHookInput{Name: name, Result: raw}
		if !h.Mutate {
			if err := ctx.CallChildWorkflow(h.Workflow.WorkflowName, hookOptions(h, in)...).Await(nil); err != nil {
				return nil, fmt.Errorf("afterListTools failed: hook %q failed for MCPServer %q: %w", h.Workflow.WorkflowName, name, err)
			}
			continue
		}
		var mutated wfv1.MCPAfterListToolsHookInput
		if err := ctx.CallChildWorkflow(h.Workflow.WorkflowName, hookOptions(h, in)...).Await(&mutated); err != nil {
			return nil, fmt.Errorf("afterListTools failed: mutating hook %q failed for MCPServer %q: %w", h.Workflow.WorkflowName, name, err)
		}
		var next sdk.ListToolsResult
		if err := json.Unmarshal(mutated.GetResult(), &next); err != nil {
			return nil, fmt.Errorf("afterListTools failed: mutating hook %q returned a malformed result for MCPServer %q: %w", h.Workflow.WorkflowName, name, err)
		}
		out, raw = &next, mutated.GetResult()
	}
	return out, nil
}

// callToolWorkflow: beforeCallTool hooks, the call-tool activity,
// afterCallTool hooks. A bad input, a failing before hook or a failed call
// complete the workflow with an isError result (after the after hooks
// have seen it); a failing after hook fails the workflow, as it may be an
// authorization gate.
func callToolWorkflow(ctx *task.WorkflowContext, s *Server, tool string) (any, error) {
	name := s.Name()
	var in callToolInput
	if err := ctx.GetInput(&in); err != nil {
		return errorResult("failed to parse CallToolInput: %s", err), nil
	}
	var mw Middleware
	if s.Spec.Middleware != nil {
		mw = *s.Spec.Middleware
	}
	args := in.Arguments
	if len(mw.BeforeCallTool) > 0 {
		st, err := asStruct(args)
		if err != nil {
			return errorResult("beforeCallTool: failed to encode arguments for tool %q on MCPServer %q: %s", tool, name, err), nil
		}
		hookIn := &wfv1.MCPBeforeCallToolHookInput{Name: name, ToolName: tool, Arguments: st}
		for _, h := range mw.BeforeCallTool {
			t := ctx.CallChildWorkflow(h.Workflow.WorkflowName, hookOptions(h, hookIn)...)
			if !h.Mutate {
				if err := t.Await(nil); err != nil {
					return errorResult("beforeCallTool: %s", err), nil
				}
				continue
			}
			var mutated wfv1.MCPBeforeCallToolHookInput
			if err := t.Await(&mutated); err != nil {
				return errorResult("beforeCallTool: %s", err), nil
			}
			args = nil
			if a := mutated.GetArguments(); a != nil {
				args = a.AsMap()
			}
			hookIn = &wfv1.MCPBeforeCallToolHookInput{Name: name, ToolName: tool, Arguments: mutated.GetArguments()}
		}
	}
	var result sdk.CallToolResult
	res := &result
	if err := ctx.CallActivity(CallToolActivity(name), task.WithActivityInput(callToolActivityInput{ToolName: tool, Arguments: args})).Await(&result); err != nil {
		res = errorResult("%s", err)
	}
	if len(mw.AfterCallTool) == 0 {
		return res, nil
	}
	st, err := asStruct(args)
	if err != nil {
		return nil, fmt.Errorf("afterCallTool failed: encode arguments for tool %q on MCPServer %q: %w", tool, name, err)
	}
	raw, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("afterCallTool failed: encode the result of tool %q on MCPServer %q: %w", tool, name, err)
	}
	for _, h := range mw.AfterCallTool {
		hookIn := &wfv1.MCPAfterCallToolHookInput{Name: name, ToolName: tool, Arguments: st, Result: raw}
		t := ctx.CallChildWorkflow(h.Workflow.WorkflowName, hookOptions(h, hookIn)...)
		if !h.Mutate {
			if err := t.Await(nil); err != nil {
				return nil, fmt.Errorf("afterCallTool failed: hook %q failed for tool %q on MCPServer %q: %w", h.Workflow.WorkflowName, tool, name, err)
			}
			continue
		}
		var mutated wfv1.MCPAfterCallToolHookInput
		if err := t.Await(&mutated); err != nil {
			return nil, fmt.Errorf("afterCallTool failed: mutating hook %q failed for tool %q on MCPServer %q: %w", h.Workflow.WorkflowName, tool, name, err)
		}
		var next sdk.CallToolResult
		if err := json.Unmarshal(mutated.GetResult(), &next); err != nil {
			return nil, fmt.Errorf("afterCallTool failed: mutating hook %q returned a malformed result for tool %q on MCPServer %q: %w", h.Workflow.WorkflowName, tool, name, err)
		}
		res, raw = &next, mutated.GetResult()
	}
	return res, nil
}

// missingArguments lists the required properties of schema (a tool's
// input schema as JSON) that args lacks.
func missingArguments(schema json.RawMessage, args map[string]any) []string {
	var s struct {
		Required []any `json:"required"`
	}
	if len(schema) == 0 || json.Unmarshal(schema, &s) != nil {
		return nil
	}
	var missing []string
	for _, r := range s.Required {
		if name, ok := r.(string); ok {
			if _, present := args[name]; !present {
				missing = append(missing, name)
			}
		}
	}
	return missing
}

func joinNames(names []string) string { return strings.Join(names, ", ") }
