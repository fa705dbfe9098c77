package workflow

import (
	"context"
	"errors"
	"strconv"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tandemrun/tandem/actors"
)

// TaskHub is the durabletask TaskHubSidecarService the SDKs' workflow
// runtimes and clients speak, served on the sidecar's gRPC API port.
type TaskHub struct {
	protos.UnimplementedTaskHubSidecarServiceServer
	e *Engine
}

var _ protos.TaskHubSidecarServiceServer = (*TaskHub)(nil)

// TaskHub returns the engine's gRPC service.
func (e *Engine) TaskHub() *TaskHub { return &TaskHub{e: e} }

// Register adds the service to s.
func (t *TaskHub) Register(s *grpc.Server) { protos.RegisterTaskHubSidecarServiceServer(s, t) }

func grpcErr(err error) error {
	switch {
	case err == nil:
		return nil
	case isStatus(err):
		return err
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case isExists(err), idTaken(err):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, ErrRecreate):
		// The children's tree could not be asked: the caller may retry.
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, ErrNotCompleted):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrNoActors):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, actors.ErrNoStateStore) || containsText(err, actors.ErrNoStateStore):
		// As daprd: Internal, in the actor runtime's words.
		return status.Error(codes.Internal, actors.ErrNoStateStore.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Unknown, err.Error())
}

// isStatus reports whether err is a gRPC status error itself (not one
// wrapped in others' text).
func isStatus(err error) bool {
	_, ok := err.(interface{ GRPCStatus() *status.Status })
	return ok
}

// RerunWorkflowFromEvent starts a new instance from an ended one's history
// up to an event, which runs again; answered once the new instance left
// PENDING, as daprd's TaskHub answers.
func (t *TaskHub) RerunWorkflowFromEvent(ctx context.Context, req *protos.RerunWorkflowFromEventRequest) (*protos.RerunWorkflowFromEventResponse, error) {
	id, err := t.e.Rerun(ctx, req)
	if err != nil {
		return nil, grpcErr(err)
	}
	if _, err := t.WaitForInstanceStart(ctx, &protos.GetInstanceRequest{InstanceId: id}); err != nil {
		return nil, err
	}
	return &protos.RerunWorkflowFromEventResponse{NewInstanceID: id}, nil
}

// Hello answers the workers' connection check.
func (t *TaskHub) Hello(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// StartInstance creates an instance.
func (t *TaskHub) StartInstance(ctx context.Context, req *protos.CreateInstanceRequest) (*protos.CreateInstanceResponse, error) {
	id, err := t.e.Start(ctx, req)
	if err != nil {
		return nil, grpcErr(err)
	}
	// As daprd's TaskHub (durabletask's gRPC executor): an instance that
	// starts now is answered once it left PENDING.
	if req.GetScheduledStartTimestamp() == nil {
		if _, err := t.WaitForInstanceStart(ctx, &protos.GetInstanceRequest{InstanceId: id}); err != nil {
			return nil, err
		}
	}
	return &protos.CreateInstanceResponse{InstanceId: id}, nil
}

func (t *TaskHub) get(ctx context.Context, req *protos.GetInstanceRequest, done func(*protos.WorkflowState) bool) (*protos.GetInstanceResponse, error) {
	var st *protos.WorkflowState
	var err error
	if done == nil {
		st, err = t.e.Get(ctx, req.GetInstanceId(), req.GetGetInputsAndOutputs())
	} else {
		st, err = t.e.Wait(ctx, req.GetInstanceId(), req.GetGetInputsAndOutputs(), done)
	}
	if errors.Is(err, ErrNotFound) {
		return &protos.GetInstanceResponse{Exists: false}, nil
	}
	if err != nil {
		return nil, grpcErr(err)
	}
	return &protos.GetInstanceResponse{Exists: true, WorkflowState: st}, nil
}

// GetInstance returns an instance's state.
func (t *TaskHub) GetInstance(ctx context.Context, req *protos.GetInstanceRequest) (*protos.GetInstanceResponse, error) {
	return t.get(ctx, req, nil)
}

// WaitForInstanceStart returns once the instance left PENDING.
func (t *TaskHub) WaitForInstanceStart(ctx context.Context, req *protos.GetInstanceRequest) (*protos.GetInstanceResponse, error) {
	return t.get(ctx, req, func(s *protos.WorkflowState) bool {
		return s.GetWorkflowStatus() != protos.OrchestrationStatus_ORCHESTRATION_STATUS_PENDING
	})
}

// WaitForInstanceCompletion returns once the instance ended.
func (t *TaskHub) WaitForInstanceCompletion(ctx context.Context, req *protos.GetInstanceRequest) (*protos.GetInstanceResponse, error) {
	return t.get(ctx, req, func(s *protos.WorkflowState) bool { return Ended(s.GetWorkflowStatus()) })
}

// Ended reports whether a status is final.
func Ended(s protos.OrchestrationStatus) bool {
	switch s {
	case protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED, protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED,
		protos.OrchestrationStatus_ORCHESTRATION_STATUS_TERMINATED, protos.OrchestrationStatus_ORCHESTRATION_STATUS_CANCELED:
		return true
	}
	return false
}

// RaiseEvent delivers an external event.
func (t *TaskHub) RaiseEvent(ctx context.Context, req *protos.RaiseEventRequest) (*protos.RaiseEventResponse, error) {
	if err := t.e.RaiseEvent(ctx, req.GetInstanceId(), req.GetName(), req.GetInput()); err != nil {
		return nil, grpcErr(err)
	}
	return &protos.RaiseEventResponse{}, nil
}

// TerminateInstance terminates an instance.
func (t *TaskHub) TerminateInstance(ctx context.Context, req *protos.TerminateRequest) (*protos.TerminateResponse, error) {
	if err := t.e.Terminate(ctx, req.GetInstanceId(), req.GetOutput(), req.GetRecursive()); err != nil {
		return nil, grpcErr(err)
	}
	// daprd's TaskHub answers once the instance ended.
	_, err := t.WaitForInstanceCompletion(ctx, &protos.GetInstanceRequest{InstanceId: req.GetInstanceId()})
	return &protos.TerminateResponse{}, err
}

// SuspendInstance suspends an instance.
func (t *TaskHub) SuspendInstance(ctx context.Context, req *protos.SuspendRequest) (*protos.SuspendResponse, error) {
	if err := t.e.Suspend(ctx, req.GetInstanceId(), req.GetReason()); err != nil {
		return nil, grpcErr(err)
	}
	// daprd's TaskHub answers once the instance is suspended (or ended).
	_, err := t.get(ctx, &protos.GetInstanceRequest{InstanceId: req.GetInstanceId()}, func(s *protos.WorkflowState) bool {
		return s.GetWorkflowStatus() == protos.OrchestrationStatus_ORCHESTRATION_STATUS_SUSPENDED || Ended(s.GetWorkflowStatus())
	})
	return &protos.SuspendResponse{}, err
}

// ResumeInstance resumes an instance.
func (t *TaskHub) ResumeInstance(ctx context.Context, req *protos.ResumeRequest) (*protos.ResumeResponse, error) {
	if err := t.e.Resume(ctx, req.GetInstanceId(), req.GetReason()); err != nil {
		return nil, grpcErr(err)
	}
	// daprd's TaskHub answers once the instance runs again (or ended).
	_, err := t.get(ctx, &protos.GetInstanceRequest{InstanceId: req.GetInstanceId()}, func(s *protos.WorkflowState) bool {
		return s.GetWorkflowStatus() == protos.OrchestrationStatus_ORCHESTRATION_STATUS_RUNNING || Ended(s.GetWorkflowStatus())
	})
	return &protos.ResumeResponse{}, err
}

// PurgeInstances deletes an ended instance, or with force any instance
// (purging by filter is not supported: the engine keeps no index of
// instances).
func (t *TaskHub) PurgeInstances(ctx context.Context, req *protos.PurgeInstancesRequest) (*protos.PurgeInstancesResponse, error) {
	id := req.GetInstanceId()
	if id == "" {
		return nil, status.Error(codes.Unimplemented, "purging workflow instances by filter is not supported; purge by instance ID")
	}
	purge := t.e.Purge
	if req.GetForce() {
		purge = t.e.ForcePurge
	}
	deleted, err := purge(ctx, id, req.GetRecursive())
	if err != nil {
		return nil, grpcErr(err)
	}
	n := int32(0)
	if deleted {
		n = 1
	}
	return &protos.PurgeInstancesResponse{DeletedInstanceCount: n}, nil
}

// GetInstanceHistory returns an instance's history (NotFound if none).
func (t *TaskHub) GetInstanceHistory(ctx context.Context, req *protos.GetInstanceHistoryRequest) (*protos.GetInstanceHistoryResponse, error) {
	events, err := t.e.History(ctx, req.GetInstanceId())
	if errors.Is(err, ErrNotFound) {
		return nil, status.Errorf(codes.NotFound, "workflow instance '%s' not found", req.GetInstanceId())
	}
	if err != nil {
		return nil, grpcErr(err)
	}
	return &protos.GetInstanceHistoryResponse{Events: events}, nil
}

// ListInstanceIDs pages through the app's instance IDs.
func (t *TaskHub) ListInstanceIDs(ctx context.Context, req *protos.ListInstanceIDsRequest) (*protos.ListInstanceIDsResponse, error) {
	ids, next, err := t.e.List(ctx, req.ContinuationToken, req.GetPageSize())
	if err != nil {
		return nil, grpcErr(err)
	}
	return &protos.ListInstanceIDsResponse{InstanceIds: ids, ContinuationToken: next}, nil
}

// errShuttingDown ends the work-item streams of a stopping sidecar, in
// daprd's words and code: the SDKs take Canceled as a cue to reconnect.
var errShuttingDown = status.Error(codes.Canceled, "shutting down")

// CloseStreams ends the open GetWorkItems streams, and refuses those
// opened later, so that the gRPC server they are on can stop gracefully
// (a stream lasts as long as its worker otherwise: a SIGHUP's restart, or
// a shutdown, would wait out its grace). The workers reconnect, to the
// next server on a restart. Work items the streams had taken and not
// answered wait for a worker again, as when a worker disconnects.
func (e *Engine) CloseStreams() { e.workers.closeStreams() }

// GetWorkItems streams orchestrator and activity work items to a worker
// until it disconnects or the sidecar stops (CloseStreams).
func (t *TaskHub) GetWorkItems(_ *protos.GetWorkItemsRequest, stream protos.TaskHubSidecarService_GetWorkItemsServer) error {
	select {
	case <-t.e.workers.closing:
		return errShuttingDown
	default:
	}
	w, remove := t.e.workers.add()
	defer func() {
		remove()
		t.e.unhost(context.WithoutCancel(stream.Context()))
	}()
	t.e.host()
	t.e.log.Info("workflow worker connected", "workers", t.e.workers.count())
	t.e.kickStalled()
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			t.e.log.Info("workflow worker disconnected")
			return nil
		case <-t.e.workers.closing:
			t.e.log.Info("workflow worker stream closed: the sidecar is stopping")
			return errShuttingDown
		case item := <-w.items:
			if err := stream.Send(item); err != nil {
				t.e.log.Warn("send workflow work item", "error", err)
				return err
			}
		}
	}
}

// CompleteActivityTask delivers an activity's result.
func (t *TaskHub) CompleteActivityTask(_ context.Context, res *protos.ActivityResponse) (*protos.CompleteTaskResponse, error) {
	if !t.e.workers.complete("a|"+res.GetInstanceId()+"|"+strconv.Itoa(int(res.GetTaskId())), res) {
		return nil, status.Errorf(codes.NotFound, "no activity %d of workflow %s is waiting for a result", res.GetTaskId(), res.GetInstanceId())
	}
	return &protos.CompleteTaskResponse{}, nil
}

// CompleteOrchestratorTask delivers an orchestrator's actions.
func (t *TaskHub) CompleteOrchestratorTask(_ context.Context, res *protos.WorkflowResponse) (*protos.CompleteTaskResponse, error) {
	if !t.e.workers.complete("o|"+res.GetInstanceId(), res) {
		return nil, status.Errorf(codes.NotFound, "workflow %s is not waiting for actions", res.GetInstanceId())
	}
	return &protos.CompleteTaskResponse{}, nil
}

// CompleteWorkflowTask is CompleteOrchestratorTask's newer name.
func (t *TaskHub) CompleteWorkflowTask(ctx context.Context, res *protos.WorkflowResponse) (*protos.CompleteTaskResponse, error) {
	return t.CompleteOrchestratorTask(ctx, res)
}
