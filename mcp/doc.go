// Package mcp runs Dapr's MCPServer resources (dapr.io/v1alpha1, Dapr
// 1.18): the sidecar connects to a Model Context Protocol server over
// streamable HTTP, SSE or stdio (the official go-sdk client, with static
// headers, OAuth2 client credentials and secret references), discovers its
// tools, and exposes them as workflows that run inside the sidecar with no
// SDK worker, under daprd's names:
//
//	dapr.internal.mcp.<server>.ListTools
//	dapr.internal.mcp.<server>.CallTool.<tool>   input {"arguments": {...}}
//
// Their outputs are the MCP ListToolsResult and CallToolResult as JSON.
// The middleware hooks of spec.middleware run as child workflows (the
// app's, or another app's) around each call, with daprd's hook inputs
// (dapr.proto.workflows.v1.MCP*HookInput).
//
// Executor is the workflow engine's in-process executor (workflow.InProcess)
// for these names; Manager keeps the resources in effect (validation,
// hot reload, spec.ignoreErrors). cmd/tandemd wires both; this package
// imports nothing of Tandem's.
package mcp
