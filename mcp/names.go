package mcp

import "strings"

// Daprd's names of the built-in MCP workflows and activities, which
// callers start by name through the workflow API:
//
//	dapr.internal.mcp.<server>.ListTools         (workflow, no input)
//	dapr.internal.mcp.<server>.CallTool.<tool>   (workflow, input {"arguments": {...}})
//	dapr.internal.mcp.<server>.list-tools        (activity)
//	dapr.internal.mcp.<server>.call-tool         (activity, input {"tool_name": ..., "arguments": {...}})
const (
	// Prefix starts every MCP workflow and activity name.
	Prefix = "dapr.internal.mcp."
	// InternalPrefix starts the names of every workflow and activity the
	// sidecar runs itself (daprd's reserved prefix).
	InternalPrefix = "dapr.internal."

	methodListTools = "ListTools"
	methodCallTool  = "CallTool"
)

// ListToolsWorkflow is the ListTools workflow of server.
func ListToolsWorkflow(server string) string { return Prefix + server + "." + methodListTools }

// CallToolWorkflow is the CallTool workflow of one tool of server.
func CallToolWorkflow(server, tool string) string {
	return Prefix + server + "." + methodCallTool + "." + tool
}

// ListToolsActivity is the activity that lists server's tools.
func ListToolsActivity(server string) string { return Prefix + server + ".list-tools" }

// CallToolActivity is the activity that calls one of server's tools.
func CallToolActivity(server string) string { return Prefix + server + ".call-tool" }

// parsedName is a workflow name taken apart: server, method, tool.
type parsedName struct {
	server, method, tool string
}

// parseWorkflowName splits dapr.internal.mcp.<server>.ListTools and
// dapr.internal.mcp.<server>.CallTool.<tool>. Server names are Kubernetes
// names (no dots); tool names may hold dots, so the split is from the
// server on.
func parseWorkflowName(name string) (parsedName, bool) {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return parsedName{}, false
	}
	server, rest, ok := strings.Cut(rest, ".")
	if !ok || server == "" {
		return parsedName{}, false
	}
	if rest == methodListTools {
		return parsedName{server: server, method: methodListTools}, true
	}
	if tool, ok := strings.CutPrefix(rest, methodCallTool+"."); ok && tool != "" {
		return parsedName{server: server, method: methodCallTool, tool: tool}, true
	}
	return parsedName{}, false
}

// parseActivityName splits dapr.internal.mcp.<server>.list-tools and
// .call-tool.
func parseActivityName(name string) (server, method string, ok bool) {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return "", "", false
	}
	server, method, ok = strings.Cut(rest, ".")
	if !ok || server == "" || (method != "list-tools" && method != "call-tool") {
		return "", "", false
	}
	return server, method, true
}
