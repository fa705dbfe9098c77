package workflow

import (
	"context"
	"strings"

	"github.com/dapr/durabletask-go/api/protos"
)

// InternalPrefix starts the names of the workflows and activities the
// sidecar runs itself, with no SDK worker (daprd's reserved prefix; the
// MCPServer workflows are dapr.internal.mcp.*).
const InternalPrefix = "dapr.internal."

// InProcess runs the workflows and activities under InternalPrefix inside
// the sidecar. The engine hands it their work items instead of a
// connected worker; the instances are durable like any other (history,
// timers, activity runs, child workflows).
type InProcess interface {
	ExecuteWorkflow(ctx context.Context, req *protos.WorkflowRequest) (*protos.WorkflowResponse, error)
	ExecuteActivity(ctx context.Context, req *protos.ActivityRequest) (*protos.ActivityResponse, error)
}

// inProcess reports whether the work item named name runs in the sidecar.
func (e *Engine) inProcess(name string) bool {
	return e.cfg.InProcess != nil && strings.HasPrefix(name, InternalPrefix)
}

// HostActors hosts the engine's actor types now rather than when the first
// worker connects: the sidecar has in-process workflows to run (daprd
// registers the workflow actors for its first MCPServer).
func (e *Engine) HostActors() { e.host() }
