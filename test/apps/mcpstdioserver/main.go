// Command mcpstdioserver is an MCP server on its stdin and stdout (the
// official go-sdk server), the stdio server of Dapr's MCPServer suite case
// daprd/mcpserver/callToolStdio (DAPR_INTEGRATION_MCPSTDIOSERVER_PATH;
// Dapr's own helper is not in its module). It has one tool, stdio_echo,
// which answers "stdio-pong" and echoes its "msg" argument after it.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type echoInput struct {
	Msg string `json:"msg,omitempty"`
}

func main() {
	srv := mcp.NewServer(&mcp.Implementation{Name: "mcpstdioserver", Version: "v1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "stdio_echo", Description: "Answers stdio-pong"}, func(_ context.Context, _ *mcp.CallToolRequest, in echoInput) (*mcp.CallToolResult, struct{}, error) {
		text := "stdio-pong"
		if in.Msg != "" {
			text += ": " + in.Msg
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, struct{}{}, nil
	})
	if err := srv.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		fmt.Fprintln(os.Stderr, "mcpstdioserver:", err)
		os.Exit(1)
	}
}
