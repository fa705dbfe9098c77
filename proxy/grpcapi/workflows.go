package grpcapi

import (
	"context"
	"errors"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"github.com/dapr/durabletask-go/api/protos"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/workflow"
)

// The workflow RPCs of the Dapr service (StartWorkflowBeta1…, and the Alpha1
// names daprd still serves), on the engine the durabletask TaskHub
// also serves. Errors are daprd's: ERR_ACTOR_RUNTIME_NOT_FOUND without an
// engine, ERR_INSTANCE_ID_* for a bad ID, and per-operation codes.

// startWorkflow starts an instance; an empty instance ID gets a random one.
func (a *API) startWorkflow(ctx context.Context, in *runtimev1.StartWorkflowRequest) (*runtimev1.StartWorkflowResponse, error) {
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

// getWorkflow returns an instance's state; as in daprd, an unknown
// instance is an answer with only the ID, not an error.
func (a *API) getWorkflow(ctx context.Context, in *runtimev1.GetWorkflowRequest) (*runtimev1.GetWorkflowResponse, error) {
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

// terminateWorkflow terminates an instance and its children.
func (a *API) terminateWorkflow(ctx context.Context, in *runtimev1.TerminateWorkflowRequest) (*emptypb.Empty, error) {
	return a.workflowOp(ctx, apierr.WorkflowTerminate, in.GetInstanceId(), func(e *workflow.Engine) error {
		return e.Terminate(ctx, in.GetInstanceId(), nil, true)
	})
}

// raiseEventWorkflow delivers an external event to an instance.
func (a *API) raiseEventWorkflow(ctx context.Context, in *runtimev1.RaiseEventWorkflowRequest) (*emptypb.Empty, error) {
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

// pauseWorkflow suspends an instance.
func (a *API) pauseWorkflow(ctx context.Context, in *runtimev1.PauseWorkflowRequest) (*emptypb.Empty, error) {
	return a.workflowOp(ctx, apierr.WorkflowPause, in.GetInstanceId(), func(e *workflow.Engine) error {
		return e.Suspend(ctx, in.GetInstanceId(), nil)
	})
}

// resumeWorkflow resumes a suspended instance.
func (a *API) resumeWorkflow(ctx context.Context, in *runtimev1.ResumeWorkflowRequest) (*emptypb.Empty, error) {
	return a.workflowOp(ctx, apierr.WorkflowResume, in.GetInstanceId(), func(e *workflow.Engine) error {
		return e.Resume(ctx, in.GetInstanceId(), nil)
	})
}

// purgeWorkflow deletes an ended instance and its children.
func (a *API) purgeWorkflow(ctx context.Context, in *runtimev1.PurgeWorkflowRequest) (*emptypb.Empty, error) {
	return a.workflowOp(ctx, apierr.WorkflowPurge, in.GetInstanceId(), func(e *workflow.Engine) error {
		deleted, err := e.Purge(ctx, in.GetInstanceId(), true)
		if err == nil && !deleted {
			err = workflow.ErrNotFound
		}
		return err
	})
}

// StartWorkflowBeta1 is startWorkflow.
func (a *API) StartWorkflowBeta1(ctx context.Context, in *runtimev1.StartWorkflowRequest) (*runtimev1.StartWorkflowResponse, error) {
	return a.startWorkflow(ctx, in)
}

// GetWorkflowBeta1 is getWorkflow.
func (a *API) GetWorkflowBeta1(ctx context.Context, in *runtimev1.GetWorkflowRequest) (*runtimev1.GetWorkflowResponse, error) {
	return a.getWorkflow(ctx, in)
}

// TerminateWorkflowBeta1 is terminateWorkflow.
func (a *API) TerminateWorkflowBeta1(ctx context.Context, in *runtimev1.TerminateWorkflowRequest) (*emptypb.Empty, error) {
	return a.terminateWorkflow(ctx, in)
}

// RaiseEventWorkflowBeta1 is raiseEventWorkflow.
func (a *API) RaiseEventWorkflowBeta1(ctx context.Context, in *runtimev1.RaiseEventWorkflowRequest) (*emptypb.Empty, error) {
	return a.raiseEventWorkflow(ctx, in)
}

// PauseWorkflowBeta1 is pauseWorkflow.
func (a *API) PauseWorkflowBeta1(ctx context.Context, in *runtimev1.PauseWorkflowRequest) (*emptypb.Empty, error) {
	return a.pauseWorkflow(ctx, in)
}

// ResumeWorkflowBeta1 is resumeWorkflow.
func (a *API) ResumeWorkflowBeta1(ctx context.Context, in *runtimev1.ResumeWorkflowRequest) (*emptypb.Empty, error) {
	return a.resumeWorkflow(ctx, in)
}

// PurgeWorkflowBeta1 is purgeWorkflow.
func (a *API) PurgeWorkflowBeta1(ctx context.Context, in *runtimev1.PurgeWorkflowRequest) (*emptypb.Empty, error) {
	return a.purgeWorkflow(ctx, in)
}

// StartWorkflowAlpha1 is startWorkflow.
func (a *API) StartWorkflowAlpha1(ctx context.Context, in *runtimev1.StartWorkflowRequest) (*runtimev1.StartWorkflowResponse, error) {
	return a.startWorkflow(ctx, in)
}

// GetWorkflowAlpha1 is getWorkflow.
func (a *API) GetWorkflowAlpha1(ctx context.Context, in *runtimev1.GetWorkflowRequest) (*runtimev1.GetWorkflowResponse, error) {
	return a.getWorkflow(ctx, in)
}

// TerminateWorkflowAlpha1 is terminateWorkflow.
func (a *API) TerminateWorkflowAlpha1(ctx context.Context, in *runtimev1.TerminateWorkflowRequest) (*emptypb.Empty, error) {
	return a.terminateWorkflow(ctx, in)
}

// RaiseEventWorkflowAlpha1 is raiseEventWorkflow.
func (a *API) RaiseEventWorkflowAlpha1(ctx context.Context, in *runtimev1.RaiseEventWorkflowRequest) (*emptypb.Empty, error) {
	return a.raiseEventWorkflow(ctx, in)
}

// PauseWorkflowAlpha1 is pauseWorkflow.
func (a *API) PauseWorkflowAlpha1(ctx context.Context, in *runtimev1.PauseWorkflowRequest) (*emptypb.Empty, error) {
	return a.pauseWorkflow(ctx, in)
}

// ResumeWorkflowAlpha1 is resumeWorkflow.
func (a *API) ResumeWorkflowAlpha1(ctx context.Context, in *runtimev1.ResumeWorkflowRequest) (*emptypb.Empty, error) {
	return a.resumeWorkflow(ctx, in)
}

// PurgeWorkflowAlpha1 is purgeWorkflow.
func (a *API) PurgeWorkflowAlpha1(ctx context.Context, in *runtimev1.PurgeWorkflowRequest) (*emptypb.Empty, error) {
	return a.purgeWorkflow(ctx, in)
}
