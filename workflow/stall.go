package workflow

import (
	"context"
	"fmt"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"
)

// Stall threshold: a work item larger than this share of the gRPC
// server's max message size would fail on the worker's stream, so the
// instance stalls instead (daprd's 95%, the rest for the WorkflowStarted
// event and framing).
const (
	stallNumerator   = 95
	stallDenominator = 100
)

// oversize is why an instance's next work item would not fit the worker's
// stream (its history, inbox and propagated history), "" if it fits or there is no limit.
func (e *Engine) oversize(inst *instance) string {
	limit := e.cfg.MaxMessageSize
	if limit <= 0 {
		return ""
	}
	size := proto.Size(inst.incoming) // the work item carries it too
	for _, list := range [][]*protos.HistoryEvent{inst.history, inst.inbox} {
		for _, ev := range list {
			size += proto.Size(ev)
		}
	}
	if r, ok := e.ratio(size); ok && e.cfg.Metrics != nil {
		e.cfg.Metrics.WorkflowPayloadRatio(inst.started().GetName(), r)
	}
	if size <= limit*stallNumerator/stallDenominator {
		return ""
	}
	return fmt.Sprintf("Workflow payload size %d bytes exceeds %d%% of max gRPC body size %d bytes; increase daprd --max-body-size and restart to resume",
		size, stallNumerator, limit)
}

// oversizeActivity is daprd's description of an activity whose request
// would not fit the worker's stream.
func oversizeActivity(name string, id int32, size, limit int) string {
	return fmt.Sprintf("activity '%s::%d' payload %d bytes exceeds %d%% of max gRPC body size %d bytes; increase daprd --max-body-size and restart to resume: activity payload exceeds max gRPC body size",
		name, id, size, stallNumerator, limit)
}

// stall records that the instance cannot run (an ExecutionStalled event,
// once per distinct description) and keeps its inbox for a sidecar
// restarted with a larger limit; its status is STALLED until it runs.
func (e *Engine) stall(ctx context.Context, inst *instance, description string) error {
	return e.stallWith(ctx, inst, protos.StalledReason_PAYLOAD_SIZE_EXCEEDED, description)
}
