package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tandemrun/tandem/jobs"
	"github.com/tandemrun/tandem/proxy/apierr"
)

// jobsTimeout bounds each call to the scheduler, as daprd's.
const jobsTimeout = 30 * time.Second

// JobsConfig configures the jobs API.
type JobsConfig struct {
	// Scheduler is the connection to the schedulers; one that is not
	// Enabled fails every call (daprd without --scheduler-host-address).
	Scheduler *jobs.Scheduler
	AppID     string
	Namespace string
	// Metrics, if set, counts the triggers delivered to the app.
	Metrics JobsMetrics
	Log     *slog.Logger
}

// JobsMetrics counts job triggers delivered to the app (daprd's
// dapr_component_job_success_count and _failure_count); nil funcs count
// nothing.
type JobsMetrics struct {
	Success func(elapsed time.Duration)
	Failure func(elapsed time.Duration)
}

// Jobs is Dapr's jobs API (ScheduleJob, GetJob, DeleteJob, ListJobs,
// DeleteJobsByPrefix) over the scheduler, and the delivery of triggered
// jobs to the app.
type Jobs struct {
	cfg JobsConfig
	log *slog.Logger
}

// NewJobs builds the jobs API.
func NewJobs(cfg JobsConfig) *Jobs {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Jobs{cfg: cfg, log: cfg.Log.With("component", "jobs")}
}

func (j *Jobs) errMetadata() map[string]string {
	return map[string]string{"appID": j.cfg.AppID, "namespace": j.cfg.Namespace}
}

// jobMetadata addresses the app's own jobs.
func (j *Jobs) jobMetadata() *schedulerv1.JobMetadata {
	return &schedulerv1.JobMetadata{
		AppId: j.cfg.AppID, Namespace: j.cfg.Namespace,
		Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Job{Job: &schedulerv1.TargetJob{}}},
	}
}

// ScheduleHTTP schedules the job of POST /v1.0(-alpha1)/jobs/{name}: name
// is the URL's; the body must not name the job too.
func (j *Jobs) ScheduleHTTP(ctx context.Context, name string, in *internalsv1.JobHTTPRequest) error {
	if in.GetName() != "" {
		return apierr.JobNameInBody(map[string]string{"appID": j.cfg.AppID})
	}
	data, err := anypb.New(in.GetData())
	if err != nil {
		return apierr.Internal(fmt.Errorf("error creating storable job data from job: %w", err))
	}
	return j.Schedule(ctx, &runtimev1.ScheduleJobRequest{
		Job: &runtimev1.Job{
			Name: strings.TrimSpace(name), Schedule: in.Schedule, Repeats: in.Repeats, DueTime: in.DueTime, Ttl: in.Ttl,
			Data: data, FailurePolicy: in.GetFailurePolicy(),
		},
		Overwrite: in.GetOverwrite(),
	})
}

// Schedule creates (or with Overwrite replaces) a job of the app. The
// scheduler validates the schedule, due time and TTL: a bad one comes
// back InvalidArgument (400) naming the field.
func (j *Jobs) Schedule(ctx context.Context, in *runtimev1.ScheduleJobRequest) error {
	md := j.errMetadata()
	job := in.GetJob()
	switch {
	case job == nil:
		return apierr.JobEmpty("Job", apierr.CodeSchedulerEmpty, md)
	case job.GetName() == "":
		return apierr.JobEmpty("Name", apierr.CodeSchedulerJobNameEmpty, md)
	case job.Schedule == nil && job.DueTime == nil:
		return apierr.JobEmpty("Schedule", apierr.CodeSchedulerScheduleEmpty, md)
	}
	req := &schedulerv1.ScheduleJobRequest{
		Name: job.GetName(), Metadata: j.jobMetadata(), Overwrite: in.GetOverwrite(),
		Job: &schedulerv1.Job{
			Schedule: job.Schedule, Data: job.GetData(), Repeats: job.Repeats, DueTime: job.DueTime, Ttl: job.Ttl,
			FailurePolicy: job.GetFailurePolicy(),
		},
	}
	ctx, cancel := context.WithTimeout(ctx, jobsTimeout)
	defer cancel()
	_, err := jobs.Call(ctx, j.cfg.Scheduler, func(ctx context.Context, c schedulerv1.SchedulerClient) (*schedulerv1.ScheduleJobResponse, error) {
		return c.ScheduleJob(ctx, req, grpc.WaitForReady(true))
	})
	if err != nil {
		j.log.Error("Error scheduling job", "job", job.GetName(), "error", err)
		return apierr.ScheduleJob(err, md)
	}
	return nil
}

// Get returns one of the app's jobs.
func (j *Jobs) Get(ctx context.Context, name string) (*runtimev1.Job, error) {
	md := j.errMetadata()
	if name == "" {
		return nil, apierr.JobEmpty("Name", apierr.CodeSchedulerJobNameEmpty, md)
	}
	ctx, cancel := context.WithTimeout(ctx, jobsTimeout)
	defer cancel()
	resp, err := jobs.Call(ctx, j.cfg.Scheduler, func(ctx context.Context, c schedulerv1.SchedulerClient) (*schedulerv1.GetJobResponse, error) {
		return c.GetJob(ctx, &schedulerv1.GetJobRequest{Name: name, Metadata: j.jobMetadata()}, grpc.WaitForReady(true))
	})
	if err != nil {
		j.log.Error("Error getting job", "job", name, "error", err)
		return nil, apierr.GetJob(err, md)
	}
	return runtimeJob(name, resp.GetJob()), nil
}

// Delete removes one of the app's jobs; a missing one is no error.
func (j *Jobs) Delete(ctx context.Context, name string) error {
	md := j.errMetadata()
	if name == "" {
		return apierr.JobEmpty("Name", apierr.CodeSchedulerJobNameEmpty, md)
	}
	ctx, cancel := context.WithTimeout(ctx, jobsTimeout)
	defer cancel()
	_, err := jobs.Call(ctx, j.cfg.Scheduler, func(ctx context.Context, c schedulerv1.SchedulerClient) (*schedulerv1.DeleteJobResponse, error) {
		return c.DeleteJob(ctx, &schedulerv1.DeleteJobRequest{Name: name, Metadata: j.jobMetadata()}, grpc.WaitForReady(true))
	})
	if err != nil {
		j.log.Error("Error deleting job", "job", name, "error", err)
		return apierr.DeleteJob(err, md)
	}
	return nil
}

// DeleteByPrefix removes the app's jobs whose names start with prefix
// (all of them for "").
func (j *Jobs) DeleteByPrefix(ctx context.Context, prefix string) error {
	ctx, cancel := context.WithTimeout(ctx, jobsTimeout)
	defer cancel()
	_, err := jobs.Call(ctx, j.cfg.Scheduler, func(ctx context.Context, c schedulerv1.SchedulerClient) (*schedulerv1.DeleteByNamePrefixResponse, error) {
		return c.DeleteByNamePrefix(ctx, &schedulerv1.DeleteByNamePrefixRequest{NamePrefix: prefix, Metadata: j.jobMetadata()}, grpc.WaitForReady(true))
	})
	if err != nil {
		j.log.Error("Error deleting jobs by prefix", "prefix", prefix, "error", err)
		return apierr.DeleteJob(err, j.errMetadata())
	}
	return nil
}

// List returns the app's jobs.
func (j *Jobs) List(ctx context.Context) ([]*runtimev1.Job, error) {
	ctx, cancel := context.WithTimeout(ctx, jobsTimeout)
	defer cancel()
	resp, err := jobs.Call(ctx, j.cfg.Scheduler, func(ctx context.Context, c schedulerv1.SchedulerClient) (*schedulerv1.ListJobsResponse, error) {
		return c.ListJobs(ctx, &schedulerv1.ListJobsRequest{Metadata: j.jobMetadata()}, grpc.WaitForReady(true))
	})
	if err != nil {
		j.log.Error("Error listing jobs", "error", err)
		return nil, apierr.ListJobs(err, j.errMetadata())
	}
	out := make([]*runtimev1.Job, 0, len(resp.GetJobs()))
	for _, nj := range resp.GetJobs() {
		out = append(out, runtimeJob(nj.GetName(), nj.GetJob()))
	}
	return out, nil
}

func runtimeJob(name string, job *schedulerv1.Job) *runtimev1.Job {
	return &runtimev1.Job{
		Name: name, Schedule: job.Schedule, Repeats: job.Repeats, DueTime: job.DueTime, Ttl: job.Ttl,
		Data: job.GetData(), FailurePolicy: job.GetFailurePolicy(),
	}
}

// AppTrigger delivers a triggered job to the app (POST /job/{name} for an
// HTTP app, OnJobEvent or OnJobEventAlpha1 for a gRPC one) and answers
// the scheduler as daprd does: SUCCESS for a 2xx or OK, and for NotFound
// too (not retried, counted as a failure); FAILED otherwise, which the
// job's failure policy retries.
func (j *Jobs) AppTrigger(app App) jobs.Trigger {
	return func(ctx context.Context, job *schedulerv1.WatchJobsResponse) schedulerv1.WatchJobsRequestResultStatus {
		start := time.Now()
		code, err := j.deliver(ctx, app, job.GetName(), job.GetData())
		elapsed := time.Since(start)
		switch {
		case err != nil:
			j.log.Error("failed to invoke scheduled app job", "job", job.GetName(), "error", err)
		case code == codes.OK:
			j.log.Debug("Sent job to app", "job", job.GetName())
			if f := j.cfg.Metrics.Success; f != nil {
				f(elapsed)
			}
			return schedulerv1.WatchJobsRequestResultStatus_SUCCESS
		case code == codes.NotFound:
			j.log.Error("non-retriable error returned from app while processing triggered job", "job", job.GetName(), "status_code", int(code))
			if f := j.cfg.Metrics.Failure; f != nil {
				f(elapsed)
			}
			return schedulerv1.WatchJobsRequestResultStatus_SUCCESS
		default:
			j.log.Error("unexpected status code returned from app while processing triggered job", "job", job.GetName(), "status_code", int(code))
		}
		if f := j.cfg.Metrics.Failure; f != nil {
			f(elapsed)
		}
		return schedulerv1.WatchJobsRequestResultStatus_FAILED
	}
}

// deliver calls the app and returns its answer as a gRPC code (an HTTP
// status mapped as daprd maps it).
func (j *Jobs) deliver(ctx context.Context, app App, name string, data *anypb.Any) (codes.Code, error) {
	switch {
	case app.GRPC != nil:
		req := &runtimev1.JobEventRequest{
			Name: name, Data: data, Method: "job/" + name, ContentType: data.GetTypeUrl(),
			HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_POST},
		}
		_, err := runtimev1.NewAppCallbackClient(app.GRPC.Conn()).OnJobEvent(ctx, req)
		if status.Code(err) == codes.Unimplemented {
			//lint:ignore SA1019 daprd falls back to the alpha callback
			_, err = runtimev1.NewAppCallbackAlphaClient(app.GRPC.Conn()).OnJobEventAlpha1(ctx, req)
		}
		return status.Code(err), nil
	case app.HTTP != nil:
		body, err := jobBody(data)
		if err != nil {
			return codes.Unknown, err
		}
		resp, err := app.HTTP.Invoke(ctx, appRequest("job/"+strings.TrimPrefix(name, "/"), commonv1.HTTPExtension_POST, body, nil))
		if err != nil {
			return codes.Unknown, fmt.Errorf("error returned from app channel while sending triggered job to app: %w", err)
		}
		if resp.Body != nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		return codeFromHTTPStatus(int(resp.Message.GetStatus().GetCode())), nil
	default:
		return codes.Unknown, errors.New("received job, but app channel not initialized")
	}
}

// jobBody is the HTTP body of a job trigger: the JSON of a
// google.protobuf.Value (what the HTTP API stores), else the raw bytes.
func jobBody(data *anypb.Any) ([]byte, error) {
	if data.GetTypeUrl() == "type.googleapis.com/google.protobuf.Value" {
		var v structpb.Value
		if err := data.UnmarshalTo(&v); err != nil {
			return nil, err
		}
		return v.MarshalJSON()
	}
	return []byte(strings.TrimSpace(string(data.GetValue()))), nil
}

// codeFromHTTPStatus is daprd's mapping of an app's HTTP answer.
func codeFromHTTPStatus(s int) codes.Code {
	if s >= 200 && s < 300 {
		return codes.OK
	}
	switch s {
	case http.StatusRequestTimeout:
		return codes.Canceled
	case http.StatusBadRequest:
		return codes.Internal
	case http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusConflict:
		return codes.AlreadyExists
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusNotImplemented:
		return codes.Unimplemented
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	}
	return codes.Unknown
}

// Deliver makes the app take its triggered jobs until ctx ends (the
// sidecar runs it while the app is reachable and healthy, as daprd starts
// and stops its job streams with the app's health).
func (j *Jobs) Deliver(ctx context.Context, app App) error {
	if app.HTTP == nil && app.GRPC == nil {
		return nil
	}
	j.cfg.Scheduler.SetApp(j.AppTrigger(app))
	<-ctx.Done()
	j.cfg.Scheduler.SetApp(nil)
	return nil
}

// Enabled reports whether a scheduler is configured.
func (j *Jobs) Enabled() bool { return j != nil && j.cfg.Scheduler.Enabled() }

// Ready reports whether the scheduler hosts are known, or no scheduler
// is configured: daprd is not healthy before.
func (j *Jobs) Ready() bool { return j == nil || j.cfg.Scheduler.Ready() }

// ConnectedAddresses are the scheduler hosts connected to, for the
// metadata API; nil without a scheduler.
func (j *Jobs) ConnectedAddresses() []string {
	if !j.Enabled() {
		return nil
	}
	return j.cfg.Scheduler.ConnectedAddresses()
}
