package grpcapi

import (
	"context"
	"errors"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/workflow"
)

// The workflow RPCs of the Dapr service (StartWorkflow…, and the Beta1 and
// Alpha1 names daprd still serves), on the engine the durabletask TaskHub
// also serves. Errors are daprd's: ERR_ACTOR_RUNTIME_NOT_FOUND without an
// engine, ERR_INSTANCE_ID_* for a bad ID, and per-operation codes.

// StartWorkflow starts an instance; an empty instance ID gets a random one.
func (a *API) StartWorkflow(ctx context.Context, in *runtimev1.StartWorkflowRequest) (*runtimev1.StartWorkflowResponse, error) {
	e := a.cfg.Workflows
	if e == nil {
		return nil, apierr.GRPC(apierr.Workflow(apierr.WorkflowStart, in.GetWorkflowName(), workflow.ErrNoActors))
	}
	id := in.GetInstanceId()
	if id == "" {
		id = uuid.NewString()
	}
	if err := apierr.ValidateWorkflowInstanceID(id, true); err != nil {
		return nil, apierr.GRPC(err)
	}
	if in.GetWorkflowName() == "" {
		return nil, apierr.GRPC(apierr.WorkflowNameMissing())
	}
	req := &protos.CreateInstanceRequest{InstanceId: id, Name: in.GetWorkflowName(), Input: wrapperspb.String(string(in.GetInput()))}
	if st, ok := in.GetOptions()["dapr.workflow.start_time"]; ok {
		t, err := time.Parse(time.RFC3339, st)
		if err != nil {
			return nil, apierr.GRPC(apierr.Workflow(apierr.WorkflowStart, in.GetWorkflowName(),
				errors.New(`start times must be in RFC3339 format (e.g. "2009-11-10T23:00:00Z")`)))
		}
		req.ScheduledStartTimestamp = timestamppb.New(t)
	}
	if _, err := e.Start(ctx, req); err != nil {
		return nil, apierr.GRPC(apierr.Workflow(apierr.WorkflowStart, in.GetWorkflowName(), err))
	}
	return &runtimev1.StartWorkflowResponse{InstanceId: id}, nil
}

// GetWorkflow returns an instance's state; as in daprd, an unknown
// instance is an answer with only the ID, not an error.
func (a *API) GetWorkflow(ctx context.Context, in *runtimev1.GetWorkflowRequest) (*runtimev1.GetWorkflowResponse, error) {
	id := in.GetInstanceId()
	if a.cfg.Workflows == nil {
		return nil, apierr.GRPC(apierr.Workflow(apierr.WorkflowGet, id, workflow.ErrNoActors))
	}
	if err := apierr.ValidateWorkflowInstanceID(id, false); err != nil {
		return nil, apierr.GRPC(err)
	}
	st, err := a.cfg.Workflows.Get(ctx, id, true)
	if errors.Is(err, workflow.ErrNotFound) {
		return &runtimev1.GetWorkflowResponse{InstanceId: id}, nil
	}
	if err != nil {
		return nil, apierr.GRPC(apierr.Workflow(apierr.WorkflowGet, id, err))
	}
	return &runtimev1.GetWorkflowResponse{
		InstanceId: id, WorkflowName: st.GetName(),
		CreatedAt:     timestamppb.New(st.GetCreatedTimestamp().AsTime()),
		LastUpdatedAt: timestamppb.New(st.GetLastUpdatedTimestamp().AsTime()),
		RuntimeStatus: workflow.StatusName(st.GetWorkflowStatus()), Properties: workflow.Properties(st),
	}, nil
}

// workflowOp runs op on an instance after daprd's checks.
func (a *API) workflowOp(ctx context.Context, op apierr.WorkflowOp, id string, f func(e *workflow.Engine) error) (*emptypb.Empty, error) {
	if a.cfg.Workflows == nil {
		return nil, apierr.GRPC(apierr.Workflow(op, id, workflow.ErrNoActors))
	}
	if err := apierr.ValidateWorkflowInstanceID(id, false); err != nil {
		return nil, apierr.GRPC(err)
	}
	if err := f(a.cfg.Workflows); err != nil {
		return nil, apierr.GRPC(apierr.Workflow(op, id, err))
	}
	return &emptypb.Empty{}, nil
}

// TerminateWorkflow terminates an instance and its children.
func (a *API) TerminateWorkflow(ctx context.Context, in *runtimev1.TerminateWorkflowRequest) (*emptypb.Empty, error) {
	return a.workflowOp(ctx, apierr.WorkflowTerminate, in.GetInstanceId(), func(e *workflow.Engine) error {
		return e.Terminate(ctx, in.GetInstanceId(), nil, true)
	})
}

// RaiseEventWorkflow delivers an external event to an instance.
func (a *API) RaiseEventWorkflow(ctx context.Context, in *runtimev1.RaiseEventWorkflowRequest) (*emptypb.Empty, error) {
	return a.workflowOp(ctx, apierr.WorkflowRaiseEvent, in.GetInstanceId(), func(e *workflow.Engine) error {
		if in.GetEventName() == "" {
			return apierr.WorkflowEventNameMissing()
		}
		var data *wrapperspb.StringValue
		if in.GetEventData() != nil {
			data = wrapperspb.String(string(in.GetEventData()))
		}
		return e.RaiseEvent(ctx, in.GetInstanceId(), in.GetEventName(), data)
	})
}

// PauseWorkflow suspends an instance.
func (a *API) PauseWorkflow(ctx context.Context, in *runtimev1.PauseWorkflowRequest) (*emptypb.Empty, error) {
	return a.workflowOp(ctx, apierr.WorkflowPause, in.GetInstanceId(), func(e *workflow.Engine) error {
		return e.Suspend(ctx, in.GetInstanceId(), nil)
	})
}

// ResumeWorkflow resumes a suspended instance.
func (a *API) ResumeWorkflow(ctx context.Context, in *runtimev1.ResumeWorkflowRequest) (*emptypb.Empty, error) {
	return a.workflowOp(ctx, apierr.WorkflowResume, in.GetInstanceId(), func(e *workflow.Engine) error {
		return e.Resume(ctx, in.GetInstanceId(), nil)
	})
}

// PurgeWorkflow deletes an ended instance and its children.
func (a *API) PurgeWorkflow(ctx context.Context, in *runtimev1.PurgeWorkflowRequest) (*emptypb.Empty, error) {
	return a.workflowOp(ctx, apierr.WorkflowPurge, in.GetInstanceId(), func(e *workflow.Engine) error {
		deleted, err := e.Purge(ctx, in.GetInstanceId(), true)
		if err == nil && !deleted {
			err = workflow.ErrNotFound
		}
		return err
	})
}

// StartWorkflowBeta1 is StartWorkflow.
func (a *API) StartWorkflowBeta1(ctx context.Context, in *runtimev1.StartWorkflowRequest) (*runtimev1.StartWorkflowResponse, error) {
	return a.StartWorkflow(ctx, in)
}

// GetWorkflowBeta1 is GetWorkflow.
func (a *API) GetWorkflowBeta1(ctx context.Context, in *runtimev1.GetWorkflowRequest) (*runtimev1.GetWorkflowResponse, error) {
	return a.GetWorkflow(ctx, in)
}

// TerminateWorkflowBeta1 is TerminateWorkflow.
func (a *API) TerminateWorkflowBeta1(ctx context.Context, in *runtimev1.TerminateWorkflowRequest) (*emptypb.Empty, error) {
	return a.TerminateWorkflow(ctx, in)
}

// RaiseEventWorkflowBeta1 is RaiseEventWorkflow.
func (a *API) RaiseEventWorkflowBeta1(ctx context.Context, in *runtimev1.RaiseEventWorkflowRequest) (*emptypb.Empty, error) {
	return a.RaiseEventWorkflow(ctx, in)
}

// PauseWorkflowBeta1 is PauseWorkflow.
func (a *API) PauseWorkflowBeta1(ctx context.Context, in *runtimev1.PauseWorkflowRequest) (*emptypb.Empty, error) {
	return a.PauseWorkflow(ctx, in)
}

// ResumeWorkflowBeta1 is ResumeWorkflow.
func (a *API) ResumeWorkflowBeta1(ctx context.Context, in *runtimev1.ResumeWorkflowRequest) (*emptypb.Empty, error) {
	return a.ResumeWorkflow(ctx, in)
}

// PurgeWorkflowBeta1 is PurgeWorkflow.
func (a *API) PurgeWorkflowBeta1(ctx context.Context, in *runtimev1.PurgeWorkflowRequest) (*emptypb.Empty, error) {
	return a.PurgeWorkflow(ctx, in)
}

// StartWorkflowAlpha1 is StartWorkflow.
func (a *API) StartWorkflowAlpha1(ctx context.Context, in *runtimev1.StartWorkflowRequest) (*runtimev1.StartWorkflowResponse, error) {
	return a.StartWorkflow(ctx, in)
}

// GetWorkflowAlpha1 is GetWorkflow.
func (a *API) GetWorkflowAlpha1(ctx context.Context, in *runtimev1.GetWorkflowRequest) (*runtimev1.GetWorkflowResponse, error) {
	return a.GetWorkflow(ctx, in)
}

// TerminateWorkflowAlpha1 is TerminateWorkflow.
func (a *API) TerminateWorkflowAlpha1(ctx context.Context, in *runtimev1.TerminateWorkflowRequest) (*emptypb.Empty, error) {
	return a.TerminateWorkflow(ctx, in)
}

// RaiseEventWorkflowAlpha1 is RaiseEventWorkflow.
func (a *API) RaiseEventWorkflowAlpha1(ctx context.Context, in *runtimev1.RaiseEventWorkflowRequest) (*emptypb.Empty, error) {
	return a.RaiseEventWorkflow(ctx, in)
}

// PauseWorkflowAlpha1 is PauseWorkflow.
func (a *API) PauseWorkflowAlpha1(ctx context.Context, in *runtimev1.PauseWorkflowRequest) (*emptypb.Empty, error) {
	return a.PauseWorkflow(ctx, in)
}

// ResumeWorkflowAlpha1 is ResumeWorkflow.
func (a *API) ResumeWorkflowAlpha1(ctx context.Context, in *runtimev1.ResumeWorkflowRequest) (*emptypb.Empty, error) {
	return a.ResumeWorkflow(ctx, in)
}

// PurgeWorkflowAlpha1 is PurgeWorkflow.
func (a *API) PurgeWorkflowAlpha1(ctx context.Context, in *runtimev1.PurgeWorkflowRequest) (*emptypb.Empty, error) {
	return a.PurgeWorkflow(ctx, in)
}
