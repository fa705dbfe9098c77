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
// registers the workflow actors for its first MCPServer). Each call is
// paired with a ReleaseActors.
func (e *Engine) HostActors() {
	e.hostMu.Lock()
	defer e.hostMu.Unlock()
	e.inProcUsers++
	if e.hostLocked() {
		e.log.Debug("Registering workflow actors for internal workflows") // daprd's words
	}
}

// ReleaseActors ends one HostActors. When none is left and no worker is
// connected, the actor types are no longer hosted here, as daprd
// unregisters the workflow actors when its last MCPServer goes.
func (e *Engine) ReleaseActors(ctx context.Context) {
	e.hostMu.Lock()
	defer e.hostMu.Unlock()
	if e.inProcUsers > 0 {
		e.inProcUsers--
	}
	if e.inProcUsers > 0 || !e.hosted || e.workers.count() > 0 || e.cfg.Actors == nil {
		return
	}
	e.log.Debug("Unregistering workflow actors") // daprd's words
	e.hosted = false
	e.cfg.Actors.UnhostInternal(ctx, e.workflowType, e.activityType, e.retainType)
}
