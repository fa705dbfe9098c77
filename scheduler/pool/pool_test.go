package pool

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sidecar is the sidecar's end of an in-process WatchJobs stream: it
// answers every tick with status and records the names it got.
type sidecar struct {
	ctx    context.Context
	cancel context.CancelFunc
	toSrv  chan *schedulerv1.WatchJobsRequest
	status Result
	mu     sync.Mutex
	got    []string
}

func newSidecar(status Result) *sidecar {
	ctx, cancel := context.WithCancel(context.Background())
	return &sidecar{ctx: ctx, cancel: cancel, toSrv: make(chan *schedulerv1.WatchJobsRequest, 16), status: status}
}

func (s *sidecar) Context() context.Context { return s.ctx }

func (s *sidecar) Send(r *schedulerv1.WatchJobsResponse) error {
	s.mu.Lock()
	s.got = append(s.got, r.GetName())
	s.mu.Unlock()
	s.toSrv <- &schedulerv1.WatchJobsRequest{WatchJobRequestType: &schedulerv1.WatchJobsRequest_Result{
		Result: &schedulerv1.WatchJobsRequestResult{Id: r.GetId(), Status: s.status}}}
	return nil
}

func (s *sidecar) Recv() (*schedulerv1.WatchJobsRequest, error) {
	select {
	case r := <-s.toSrv:
		return r, nil
	case <-s.ctx.Done():
		return nil, io.EOF
	}
}

func (s *sidecar) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func jobTick(ns, app, name string) Tick {
	return Tick{Name: name, Metadata: &schedulerv1.JobMetadata{Namespace: ns, AppId: app,
		Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Job{Job: new(schedulerv1.TargetJob)}}}}
}

func serve(t *testing.T, p *Pool, initial *schedulerv1.WatchJobsRequestInitial, s *sidecar) {
	t.Helper()
	done := make(chan struct{})
	go func() { _ = p.Serve(context.Background(), initial, s); close(done) }()
	t.Cleanup(func() { s.cancel(); <-done })
}

func TestDeliverSpreadsTicksOverTheAppsStreams(t *testing.T) {
	p := New(nil, Hooks{})
	a, b, other := newSidecar(0), newSidecar(0), newSidecar(0)
	serve(t, p, &schedulerv1.WatchJobsRequestInitial{Namespace: "ns", AppId: "app"}, a)
	serve(t, p, &schedulerv1.WatchJobsRequestInitial{Namespace: "ns", AppId: "app"}, b)
	serve(t, p, &schedulerv1.WatchJobsRequestInitial{Namespace: "ns", AppId: "other"}, other)
	waitConnected(t, p, 3)
	for i := range 10 {
		r, err := p.Deliver(context.Background(), jobTick("ns", "app", string(rune('a'+i))))
		if err != nil || r != schedulerv1.WatchJobsRequestResultStatus_SUCCESS {
			t.Fatalf("deliver: %v %v", r, err)
		}
	}
	if len(a.names()) != 5 || len(b.names()) != 5 || len(other.names()) != 0 {
		t.Fatalf("ticks: a %v, b %v, other %v", a.names(), b.names(), other.names())
	}
}

func TestDeliverWaitsForAStreamAndReturnsItsResult(t *testing.T) {
	p := New(nil, Hooks{})
	res := make(chan Result, 1)
	go func() {
		r, _ := p.Deliver(context.Background(), jobTick("ns", "app", "late"))
		res <- r
	}()
	select {
	case <-res:
		t.Fatal("delivered with no stream")
	case <-time.After(100 * time.Millisecond):
	}
	s := newSidecar(schedulerv1.WatchJobsRequestResultStatus_FAILED)
	serve(t, p, &schedulerv1.WatchJobsRequestInitial{Namespace: "ns", AppId: "app"}, s)
	if r := <-res; r != schedulerv1.WatchJobsRequestResultStatus_FAILED {
		t.Fatalf("result %v, want FAILED", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Deliver(ctx, jobTick("ns", "nobody", "x")); err == nil {
		t.Fatal("a cancelled delivery to no stream returned no error")
	}
}

func TestActorRemindersGoByActorTypeAndAcceptedTypes(t *testing.T) {
	p := New(nil, Hooks{})
	jobsOnly, actors := newSidecar(0), newSidecar(0)
	serve(t, p, &schedulerv1.WatchJobsRequestInitial{Namespace: "ns", AppId: "a", ActorTypes: []string{"cart"},
		AcceptJobTypes: []schedulerv1.JobTargetType{schedulerv1.JobTargetType_JOB_TARGET_TYPE_JOB}}, jobsOnly)
	serve(t, p, &schedulerv1.WatchJobsRequestInitial{Namespace: "ns", AppId: "b", ActorTypes: []string{"cart"}}, actors)
	waitConnected(t, p, 2)
	tick := Tick{Name: "r", Metadata: &schedulerv1.JobMetadata{Namespace: "ns", AppId: "a",
		Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Actor{Actor: &schedulerv1.TargetActorReminder{Type: "cart", Id: "1"}}}}}
	for range 3 {
		if _, err := p.Deliver(context.Background(), tick); err != nil {
			t.Fatal(err)
		}
	}
	if len(jobsOnly.names()) != 0 || len(actors.names()) != 3 {
		t.Fatalf("reminders: jobs-only stream %v, actor stream %v", jobsOnly.names(), actors.names())
	}
}

func waitConnected(t *testing.T, p *Pool, n int) {
	t.Helper()
	for range 200 {
		if p.Connected() == n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%d streams connected, want %d", p.Connected(), n)
}

func TestWaitStream(t *testing.T) {
	var undelivered atomic.Int32
	p := New(nil, Hooks{Undelivered: func(*schedulerv1.JobMetadata) { undelivered.Add(1) }})
	meta := &schedulerv1.JobMetadata{Namespace: "ns", AppId: "app",
		Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Job{Job: new(schedulerv1.TargetJob)}}}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.WaitStream(ctx, meta); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitStream without a stream: %v, want the context's end", err)
	}
	if n := undelivered.Load(); n != 1 {
		t.Errorf("undelivered counted %d times, want 1", n)
	}

	waited := make(chan error, 1)
	go func() { waited <- p.WaitStream(context.Background(), meta) }()
	time.Sleep(50 * time.Millisecond)
	serve(t, p, &schedulerv1.WatchJobsRequestInitial{Namespace: "ns", AppId: "app"}, newSidecar(0))
	select {
	case err := <-waited:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitStream did not return when a stream connected")
	}
	if err := p.WaitStream(context.Background(), meta); err != nil {
		t.Fatalf("WaitStream with a stream: %v", err)
	}
}
