package jobs

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
	"google.golang.org/grpc"
)

// targets is what the streams deliver to, as of one change.
type targets struct {
	conns   []*grpc.ClientConn
	app     Trigger
	actors  Trigger
	types   []string
	changed <-chan struct{}
}

func (s *Scheduler) targets() targets {
	s.mu.Lock()
	defer s.mu.Unlock()
	return targets{conns: s.conns, app: s.app, actors: s.actors, types: s.types, changed: s.changed}
}

// request is the stream's opening message: which jobs this sidecar takes.
func (s *Scheduler) request(t targets) *schedulerv1.WatchJobsRequest {
	in := &schedulerv1.WatchJobsRequestInitial{AppId: s.cfg.AppID, Namespace: s.cfg.Namespace, ConcurrencyLimits: s.cfg.ConcurrencyLimits}
	if t.app != nil {
		in.AcceptJobTypes = append(in.AcceptJobTypes, schedulerv1.JobTargetType_JOB_TARGET_TYPE_JOB)
	}
	if len(t.types) > 0 {
		in.AcceptJobTypes = append(in.AcceptJobTypes, schedulerv1.JobTargetType_JOB_TARGET_TYPE_ACTOR_REMINDER)
		in.ActorTypes = t.types
	}
	return &schedulerv1.WatchJobsRequest{WatchJobRequestType: &schedulerv1.WatchJobsRequest_Initial{Initial: in}}
}

// runStreams holds Streams WatchJobs streams per scheduler host while
// there is something to deliver to, and opens them again whenever the
// hosts or the targets change, until ctx ends.
func (s *Scheduler) runStreams(ctx context.Context) {
	for {
		t := s.targets()
		sctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		if len(t.conns) > 0 && (t.app != nil || len(t.types) > 0) {
			req := s.request(t)
			for _, conn := range t.conns {
				client := schedulerv1.NewSchedulerClient(conn)
				for range s.cfg.Streams {
					wg.Go(func() { s.keepStream(sctx, conn.Target(), client, req, t) })
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-t.changed:
		}
		cancel()
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
	}
}

// keepStream holds one WatchJobs stream, opening it again after a pause
// when it breaks, until ctx ends.
func (s *Scheduler) keepStream(ctx context.Context, host string, client schedulerv1.SchedulerClient, req *schedulerv1.WatchJobsRequest, t targets) {
	failures := 0
	for ctx.Err() == nil {
		connected, err := s.watchJobs(ctx, client, req, t)
		switch {
		case ctx.Err() != nil:
			return
		case connected:
			failures = 0
			s.log.Info("Scheduler stream disconnected", "host", host, "error", err)
		default:
			failures++
			if failures == 1 {
				s.log.Warn("cannot watch scheduler jobs; retrying", "host", host, "error", err)
			} else {
				s.log.Debug("cannot watch scheduler jobs; retrying", "host", host, "attempt", failures, "error", err)
			}
		}
		sleep(ctx, jitter(time.Second/2, time.Second/4))
	}
}

// watchJobs opens a stream, delivers what it triggers and acks each
// trigger, until the stream or ctx ends. connected reports whether the
// stream was opened.
func (s *Scheduler) watchJobs(ctx context.Context, client schedulerv1.SchedulerClient, req *schedulerv1.WatchJobsRequest, t targets) (connected bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.WatchJobs(sctx)
	if err != nil {
		return false, err
	}
	if err := stream.Send(req); err != nil {
		return false, err
	}
	s.log.Info("Scheduler stream connected", "accept_job_types", req.GetInitial().GetAcceptJobTypes(), "actor_types", req.GetInitial().GetActorTypes())

	// gRPC allows one sender at a time: acks go through results.
	results := make(chan *schedulerv1.WatchJobsRequest)
	sendErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-sctx.Done():
				sendErr <- nil
				return
			case r := <-results:
				if err := stream.Send(r); err != nil {
					sendErr <- err
					cancel()
					return
				}
			}
		}
	}()
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		job, err := stream.Recv()
		if err != nil {
			cancel()
			if serr := <-sendErr; serr != nil && !errors.Is(serr, io.EOF) {
				err = serr
			}
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return true, err
		}
		inflight.Go(func() {
			result := s.handle(ctx, job, t)
			ack := &schedulerv1.WatchJobsRequest{WatchJobRequestType: &schedulerv1.WatchJobsRequest_Result{
				Result: &schedulerv1.WatchJobsRequestResult{Id: job.GetId(), Status: result},
			}}
			select {
			case results <- ack:
			case <-sctx.Done():
			}
		})
	}
}

// handle delivers one trigger to its target.
func (s *Scheduler) handle(ctx context.Context, job *schedulerv1.WatchJobsResponse, t targets) schedulerv1.WatchJobsRequestResultStatus {
	switch job.GetMetadata().GetTarget().GetType().(type) {
	case *schedulerv1.JobTargetMetadata_Job:
		if t.app == nil {
			s.log.Error("received a job, but the app takes no jobs now", "job", job.GetName())
			return schedulerv1.WatchJobsRequestResultStatus_FAILED
		}
		return t.app(ctx, job)
	case *schedulerv1.JobTargetMetadata_Actor:
		if t.actors == nil {
			s.log.Error("received an actor reminder, but the actor runtime is not initialized", "job", job.GetName())
			return schedulerv1.WatchJobsRequestResultStatus_FAILED
		}
		return t.actors(ctx, job)
	default:
		s.log.Error("unknown job target type", "job", job.GetName())
		return schedulerv1.WatchJobsRequestResultStatus_FAILED
	}
}
