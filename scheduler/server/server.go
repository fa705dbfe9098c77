// Package server is the scheduler's gRPC API,
// dapr.proto.scheduler.v1.Scheduler: jobs are written to and read from the
// store under Dapr's names, WatchJobs streams join the delivery pool, and
// WatchHosts tells sidecars the live replicas. With mTLS, a caller may only
// touch the jobs of its own app ID and namespace (Dapr's rule).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tandemrun/tandem/scheduler/pool"
	"github.com/tandemrun/tandem/scheduler/schedule"
	"github.com/tandemrun/tandem/scheduler/store"
)

// Hosts is the replica set as WatchHosts serves it (engine.Engine).
type Hosts interface {
	Hosts() (hosts []string, updates <-chan []string, cancel func())
}

// Options configure a Server.
type Options struct {
	Client *clientv3.Client
	Pool   *pool.Pool
	Hosts  Hosts
	// Authorize, when set, checks that the caller is the app ID and
	// namespace a request names (mTLS); nil lets every caller in.
	Authorize func(ctx context.Context, namespace, appID string) error
	Metrics   *Metrics
	// Claims, when set, delivers a job due at once straight from its
	// creation (engine.Engine): the job is stored with its first tick
	// claimed by this replica.
	Claims Claims
	Log    *slog.Logger
}

// Claims is the engine's fast path for jobs due at once (engine.Engine's
// Claim and DeliverClaimed).
type Claims interface {
	Claim(tick time.Time) (uid uint64, c store.Counter, ok bool)
	DeliverClaimed(name string, job *store.Job, rev int64, c store.Counter)
}

// Server implements dapr.proto.scheduler.v1.Scheduler.
type Server struct {
	schedulerv1.UnimplementedSchedulerServer
	o       Options
	log     *slog.Logger
	closing chan struct{}
}

var _ schedulerv1.SchedulerServer = (*Server)(nil)

// New returns a Server; Register it on a grpc.Server.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	return &Server{o: o, log: o.Log, closing: make(chan struct{})}
}

// Register adds the service to g.
func (s *Server) Register(g *grpc.Server) { schedulerv1.RegisterSchedulerServer(g, s) }

// Close ends the WatchJobs and WatchHosts streams.
func (s *Server) Close() {
	select {
	case <-s.closing:
	default:
		close(s.closing)
	}
}

func (s *Server) authorize(ctx context.Context, ns, appID string) error {
	if ns == "" || appID == "" {
		s.o.Metrics.sidecarErrors.WithLabelValues("auth_failed").Inc()
		return status.Error(codes.InvalidArgument, "missing namespace or appID in request")
	}
	if s.o.Authorize == nil {
		return nil
	}
	if err := s.o.Authorize(ctx, ns, appID); err != nil {
		s.o.Metrics.sidecarErrors.WithLabelValues("auth_failed").Inc()
		return err
	}
	return nil
}

// defaultFailurePolicy is Dapr's: a retry a second later, three times.
func defaultFailurePolicy() *commonv1.JobFailurePolicy {
	three := uint32(3)
	return &commonv1.JobFailurePolicy{Policy: &commonv1.JobFailurePolicy_Constant{
		Constant: &commonv1.JobFailurePolicyConstant{Interval: durationpb.New(time.Second), MaxRetries: &three}}}
}

// ScheduleJob writes a job (replacing one of its name with overwrite).
func (s *Server) ScheduleJob(ctx context.Context, req *schedulerv1.ScheduleJobRequest) (*schedulerv1.ScheduleJobResponse, error) {
	meta := req.GetMetadata()
	if err := s.authorize(ctx, meta.GetNamespace(), meta.GetAppId()); err != nil {
		return nil, err
	}
	name, err := store.JobName(req.GetName(), meta)
	if err != nil {
		s.o.Metrics.createdFailed(meta)
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	job := proto.Clone(req.GetJob()).(*schedulerv1.Job)
	if job == nil {
		job = new(schedulerv1.Job)
	}
	p, err := schedule.Make(schedule.Spec{Schedule: job.Schedule, DueTime: job.DueTime, TTL: job.Ttl, Repeats: job.Repeats}, time.Now())
	if err != nil {
		s.o.Metrics.createdFailed(meta)
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if job.FailurePolicy == nil || job.FailurePolicy.GetPolicy() == nil {
		job.FailurePolicy = defaultFailurePolicy()
	}
	uid := rand.Uint64()
	var claim *store.Counter
	if first, ok := p.Next(0, time.Time{}); ok && s.o.Claims != nil && !first.After(time.Now()) {
		if owned, c, ok := s.o.Claims.Claim(first); ok {
			uid, claim = owned, &c
		}
	}
	rec, err := store.NewJob(uid, p, job, meta)
	if err != nil {
		s.o.Metrics.createdFailed(meta)
		return nil, status.Error(codes.Internal, err.Error())
	}
	val, err := store.EncodeJob(rec)
	if err != nil {
		s.o.Metrics.createdFailed(meta)
		return nil, status.Error(codes.Internal, err.Error())
	}
	key := store.JobKey(name)
	ops := []clientv3.Op{clientv3.OpPut(key, val)}
	if claim != nil {
		cval, err := store.Encode(*claim)
		if err != nil {
			s.o.Metrics.createdFailed(meta)
			return nil, status.Error(codes.Internal, err.Error())
		}
		ops = append(ops, clientv3.OpPut(store.CounterKey(name), cval))
	}
	txn := s.o.Client.Txn(ctx)
	if !req.GetOverwrite() {
		txn = txn.If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
	}
	resp, err := txn.Then(ops...).Commit()
	if err == nil && !resp.Succeeded {
		s.o.Metrics.createdFailed(meta)
		return nil, status.Errorf(codes.AlreadyExists, "job already exists: %s", name)
	}
	if err != nil {
		s.o.Metrics.createdFailed(meta)
		s.log.Error("scheduling a job failed", "job", name, "error", err)
		return nil, status.Errorf(codes.Unavailable, "store job %s: %v", req.GetName(), err)
	}
	if claim != nil {
		s.o.Claims.DeliverClaimed(name, rec, resp.Header.Revision, *claim)
	}
	s.o.Metrics.created(meta)
	s.log.Debug("job scheduled", "job", name, "overwrite", req.GetOverwrite())
	return &schedulerv1.ScheduleJobResponse{}, nil
}

// GetJob reads a job.
func (s *Server) GetJob(ctx context.Context, req *schedulerv1.GetJobRequest) (*schedulerv1.GetJobResponse, error) {
	meta := req.GetMetadata()
	if err := s.authorize(ctx, meta.GetNamespace(), meta.GetAppId()); err != nil {
		return nil, err
	}
	name, err := store.JobName(req.GetName(), meta)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	resp, err := s.o.Client.Get(ctx, store.JobKey(name))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read job %s: %v", req.GetName(), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, status.Error(codes.NotFound, "job not found: "+req.GetName())
	}
	rec, err := store.DecodeJob(resp.Kvs[0].Value)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	job, _, err := rec.Decode()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &schedulerv1.GetJobResponse{Job: job}, nil
}

// DeleteJob deletes a job and its counter; a job that is not there is no
// error.
func (s *Server) DeleteJob(ctx context.Context, req *schedulerv1.DeleteJobRequest) (*schedulerv1.DeleteJobResponse, error) {
	meta := req.GetMetadata()
	if err := s.authorize(ctx, meta.GetNamespace(), meta.GetAppId()); err != nil {
		return nil, err
	}
	name, err := store.JobName(req.GetName(), meta)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if _, err := s.o.Client.Txn(ctx).Then(clientv3.OpDelete(store.JobKey(name)), clientv3.OpDelete(store.CounterKey(name))).Commit(); err != nil {
		return nil, status.Errorf(codes.Unavailable, "delete job %s: %v", req.GetName(), err)
	}
	s.o.Metrics.deleted(meta)
	return &schedulerv1.DeleteJobResponse{}, nil
}

// ListJobs lists the jobs of a target.
func (s *Server) ListJobs(ctx context.Context, req *schedulerv1.ListJobsRequest) (*schedulerv1.ListJobsResponse, error) {
	meta := req.GetMetadata()
	if err := s.authorize(ctx, meta.GetNamespace(), meta.GetAppId()); err != nil {
		return nil, err
	}
	prefix, err := store.ListPrefix(meta, false)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	resp, err := s.o.Client.Get(ctx, store.JobKey(prefix), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("failed to query job list: %w", err)
	}
	out := &schedulerv1.ListJobsResponse{Jobs: make([]*schedulerv1.NamedJob, 0, len(resp.Kvs))}
	for _, kv := range resp.Kvs {
		rec, err := store.DecodeJob(kv.Value)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		job, jmeta, err := rec.Decode()
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		own, err := store.TargetPrefix(jmeta)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		full := string(kv.Key[len(store.JobsPrefix):])
		if !strings.HasPrefix(full, own) {
			return nil, status.Errorf(codes.Internal, "job key %q does not match expected prefix %q from its metadata", full, own)
		}
		out.Jobs = append(out.Jobs, &schedulerv1.NamedJob{Name: full[len(own):], Metadata: jmeta, Job: job})
	}
	return out, nil
}

// DeleteByMetadata deletes every job of a target (with id_prefix_match,
// of every actor ID that starts with the given one).
func (s *Server) DeleteByMetadata(ctx context.Context, req *schedulerv1.DeleteByMetadataRequest) (*schedulerv1.DeleteByMetadataResponse, error) {
	meta := req.GetMetadata()
	if err := s.authorize(ctx, meta.GetNamespace(), meta.GetAppId()); err != nil {
		return nil, err
	}
	prefix, err := store.ListPrefix(meta, req.GetIdPrefixMatch())
	if err != nil {
		return nil, fmt.Errorf("failed to parse metadata: %w", err)
	}
	if err := s.deletePrefix(ctx, prefix); err != nil {
		return nil, err
	}
	s.o.Metrics.bulkDeleted.Inc()
	return &schedulerv1.DeleteByMetadataResponse{}, nil
}

// DeleteByNamePrefix deletes the jobs of a target whose names start with
// a prefix (all of them with an empty one).
func (s *Server) DeleteByNamePrefix(ctx context.Context, req *schedulerv1.DeleteByNamePrefixRequest) (*schedulerv1.DeleteByNamePrefixResponse, error) {
	meta := req.GetMetadata()
	if err := s.authorize(ctx, meta.GetNamespace(), meta.GetAppId()); err != nil {
		return nil, err
	}
	prefix, err := store.ListPrefix(meta, false)
	if err != nil {
		return nil, fmt.Errorf("failed to parse metadata: %w", err)
	}
	if err := s.deletePrefix(ctx, prefix+req.GetNamePrefix()); err != nil {
		return nil, err
	}
	s.o.Metrics.bulkDeleted.Inc()
	return &schedulerv1.DeleteByNamePrefixResponse{}, nil
}

func (s *Server) deletePrefix(ctx context.Context, prefix string) error {
	_, err := s.o.Client.Txn(ctx).Then(
		clientv3.OpDelete(store.JobKey(prefix), clientv3.WithPrefix()),
		clientv3.OpDelete(store.CounterKey(prefix), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return status.Errorf(codes.Unavailable, "delete jobs %s*: %v", prefix, err)
	}
	return nil
}

// DeleteNamespace deletes every job of a namespace (when the namespace is
// deleted in Kubernetes).
func (s *Server) DeleteNamespace(ctx context.Context, namespace string) error {
	for _, p := range store.NamespacePrefixes(namespace) {
		if err := s.deletePrefix(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// WatchJobs adds a sidecar's stream to the pool.
func (s *Server) WatchJobs(stream schedulerv1.Scheduler_WatchJobsServer) error {
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	initial := req.GetInitial()
	if initial == nil {
		return status.Error(codes.InvalidArgument, "initial request is required on stream connection")
	}
	if err := s.authorize(stream.Context(), initial.GetNamespace(), initial.GetAppId()); err != nil {
		return err
	}
	seen := map[schedulerv1.JobTargetType]bool{}
	for _, t := range initial.GetAcceptJobTypes() {
		if seen[t] {
			return status.Errorf(codes.InvalidArgument, "duplicate target type specified: %s", t)
		}
		seen[t] = true
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	return s.o.Pool.Serve(ctx, initial, stream)
}

// WatchHosts sends the live replicas' addresses, and again on each change.
func (s *Server) WatchHosts(_ *schedulerv1.WatchHostsRequest, stream schedulerv1.Scheduler_WatchHostsServer) error {
	hosts, updates, cancel := s.o.Hosts.Hosts()
	defer cancel()
	send := func(hosts []string) error {
		resp := &schedulerv1.WatchHostsResponse{Hosts: make([]*schedulerv1.Host, 0, len(hosts))}
		for _, h := range hosts {
			resp.Hosts = append(resp.Hosts, &schedulerv1.Host{Address: h})
		}
		return stream.Send(resp)
	}
	last := hosts
	if len(hosts) > 0 {
		if err := send(hosts); err != nil {
			return err
		}
	}
	for {
		select {
		case h := <-updates:
			if len(h) == 0 || equal(h, last) {
				continue
			}
			last = h
			if err := send(h); err != nil {
				return err
			}
		case <-stream.Context().Done():
			return nil
		case <-s.closing:
			return errors.New("server is closing")
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
