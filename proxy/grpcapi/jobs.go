package grpcapi

import (
	"context"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/tandemrun/tandem/proxy/apierr"
)

// ScheduleJob schedules a job of the app (ScheduleJobAlpha1 is the same).
func (a *API) ScheduleJob(ctx context.Context, in *runtimev1.ScheduleJobRequest) (*runtimev1.ScheduleJobResponse, error) {
	if a.cfg.Jobs == nil {
		return a.UnimplementedDaprServer.ScheduleJob(ctx, in)
	}
	return &runtimev1.ScheduleJobResponse{}, apierr.GRPC(a.cfg.Jobs.Schedule(ctx, in))
}

// ScheduleJobAlpha1 is ScheduleJob.
func (a *API) ScheduleJobAlpha1(ctx context.Context, in *runtimev1.ScheduleJobRequest) (*runtimev1.ScheduleJobResponse, error) {
	return a.ScheduleJob(ctx, in)
}

// GetJob returns a job of the app.
func (a *API) GetJob(ctx context.Context, in *runtimev1.GetJobRequest) (*runtimev1.GetJobResponse, error) {
	if a.cfg.Jobs == nil {
		return a.UnimplementedDaprServer.GetJob(ctx, in)
	}
	job, err := a.cfg.Jobs.Get(ctx, in.GetName())
	if err != nil {
		return nil, apierr.GRPC(err)
	}
	return &runtimev1.GetJobResponse{Job: job}, nil
}

// GetJobAlpha1 is GetJob.
func (a *API) GetJobAlpha1(ctx context.Context, in *runtimev1.GetJobRequest) (*runtimev1.GetJobResponse, error) {
	return a.GetJob(ctx, in)
}

// DeleteJob deletes a job of the app.
func (a *API) DeleteJob(ctx context.Context, in *runtimev1.DeleteJobRequest) (*runtimev1.DeleteJobResponse, error) {
	if a.cfg.Jobs == nil {
		return a.UnimplementedDaprServer.DeleteJob(ctx, in)
	}
	return &runtimev1.DeleteJobResponse{}, apierr.GRPC(a.cfg.Jobs.Delete(ctx, in.GetName()))
}

// DeleteJobAlpha1 is DeleteJob.
func (a *API) DeleteJobAlpha1(ctx context.Context, in *runtimev1.DeleteJobRequest) (*runtimev1.DeleteJobResponse, error) {
	return a.DeleteJob(ctx, in)
}

// DeleteJobsByPrefix deletes the app's jobs whose names start with a
// prefix.
func (a *API) DeleteJobsByPrefix(ctx context.Context, in *runtimev1.DeleteJobsByPrefixRequest) (*runtimev1.DeleteJobsByPrefixResponse, error) {
	if a.cfg.Jobs == nil {
		return a.UnimplementedDaprServer.DeleteJobsByPrefix(ctx, in)
	}
	if err := a.cfg.Jobs.DeleteByPrefix(ctx, in.GetNamePrefix()); err != nil {
		return nil, apierr.GRPC(err)
	}
	return &runtimev1.DeleteJobsByPrefixResponse{}, nil
}

// DeleteJobsByPrefixAlpha1 is DeleteJobsByPrefix.
func (a *API) DeleteJobsByPrefixAlpha1(ctx context.Context, in *runtimev1.DeleteJobsByPrefixRequestAlpha1) (*runtimev1.DeleteJobsByPrefixResponseAlpha1, error) {
	if _, err := a.DeleteJobsByPrefix(ctx, &runtimev1.DeleteJobsByPrefixRequest{NamePrefix: in.NamePrefix}); err != nil {
		return nil, err
	}
	return &runtimev1.DeleteJobsByPrefixResponseAlpha1{}, nil
}

// ListJobs lists the app's jobs.
func (a *API) ListJobs(ctx context.Context, in *runtimev1.ListJobsRequest) (*runtimev1.ListJobsResponse, error) {
	if a.cfg.Jobs == nil {
		return a.UnimplementedDaprServer.ListJobs(ctx, in)
	}
	list, err := a.cfg.Jobs.List(ctx)
	if err != nil {
		return nil, apierr.GRPC(err)
	}
	return &runtimev1.ListJobsResponse{Jobs: list}, nil
}

// ListJobsAlpha1 is ListJobs.
func (a *API) ListJobsAlpha1(ctx context.Context, _ *runtimev1.ListJobsRequestAlpha1) (*runtimev1.ListJobsResponseAlpha1, error) {
	resp, err := a.ListJobs(ctx, &runtimev1.ListJobsRequest{})
	if err != nil {
		return nil, err
	}
	return &runtimev1.ListJobsResponseAlpha1{Jobs: resp.GetJobs()}, nil
}
