package jobs

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// fakeScheduler is a small real scheduler server: WatchHosts names itself,
// WatchJobs records each stream's opening and triggers one job per
// stream, recording the acks.
type fakeScheduler struct {
	schedulerv1.UnimplementedSchedulerServer
	addr string

	mu       sync.Mutex
	initials []*schedulerv1.WatchJobsRequestInitial
	acks     []schedulerv1.WatchJobsRequestResultStatus
	changed  chan struct{}
}

func (f *fakeScheduler) note(fn func()) {
	f.mu.Lock()
	fn()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeScheduler) WatchHosts(_ *schedulerv1.WatchHostsRequest, s schedulerv1.Scheduler_WatchHostsServer) error {
	if err := s.Send(&schedulerv1.WatchHostsResponse{Hosts: []*schedulerv1.Host{{Address: f.addr}}}); err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func (f *fakeScheduler) WatchJobs(s schedulerv1.Scheduler_WatchJobsServer) error {
	first, err := s.Recv()
	if err != nil {
		return err
	}
	f.note(func() { f.initials = append(f.initials, first.GetInitial()) })
	err = s.Send(&schedulerv1.WatchJobsResponse{Id: 7, Name: "job-1", Metadata: &schedulerv1.JobMetadata{
		Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Job{Job: &schedulerv1.TargetJob{}}},
	}})
	if err != nil {
		return err
	}
	for {
		r, err := s.Recv()
		if err != nil {
			return nil
		}
		if r.GetResult().GetId() == 7 {
			f.note(func() { f.acks = append(f.acks, r.GetResult().GetStatus()) })
		}
	}
}

func (f *fakeScheduler) GetJob(_ context.Context, req *schedulerv1.GetJobRequest) (*schedulerv1.GetJobResponse, error) {
	every := "@every 1s"
	return &schedulerv1.GetJobResponse{Job: &schedulerv1.Job{Schedule: &every}}, nil
}

// wait waits until cond holds on the fake's records.
func (f *fakeScheduler) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func startFake(t *testing.T) *fakeScheduler {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeScheduler{addr: lis.Addr().String(), changed: make(chan struct{})}
	srv := grpc.NewServer()
	schedulerv1.RegisterSchedulerServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return f
}

func TestAddresses(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{nil, nil},
		{[]string{""}, nil},
		{[]string{"   "}, nil},
		{[]string{"''"}, nil},
		{[]string{"'      '"}, nil},
		{[]string{`""`}, nil},
		{[]string{`"   "`}, nil},
		{[]string{"a:1", " b:2 ", ""}, []string{"a:1", "b:2"}},
	} {
		if got := Addresses(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Addresses(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzAddresses(f *testing.F) {
	for _, s := range []string{"", "''", `"  "`, "a:1,b:2", " 'x' "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, a := range Addresses(strings.Split(s, ",")) {
			if a == "" || strings.TrimSpace(a) != a {
				t.Fatalf("Addresses kept %q", a)
			}
		}
	})
}

func TestDisabled(t *testing.T) {
	s := New(Config{Addresses: []string{"''"}})
	if s.Enabled() {
		t.Fatal("enabled without an address")
	}
	if _, err := s.Client(context.Background()); err != ErrDisabled {
		t.Fatalf("Client error = %v, want ErrDisabled", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for !s.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	if s.ConnectedAddresses() != nil {
		t.Fatal("connected addresses while disabled")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestTriggersAndAcks(t *testing.T) {
	f := startFake(t)
	s := New(Config{
		Addresses: []string{f.addr}, AppID: "app", Namespace: "ns", Streams: 2,
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
	defer ccancel()
	c, err := s.Client(cctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.GetJob(cctx, &schedulerv1.GetJobRequest{Name: "x"}); err != nil || got.GetJob().GetSchedule() != "@every 1s" {
		t.Fatalf("GetJob = %v, %v", got, err)
	}
	if got := s.ConnectedAddresses(); !slices.Equal(got, []string{f.addr}) {
		t.Fatalf("connected = %q", got)
	}

	// No target: no stream. The app and an actor type: two streams per
	// host, each opened with both job types, each trigger acked.
	s.SetApp(func(context.Context, *schedulerv1.WatchJobsResponse) schedulerv1.WatchJobsRequestResultStatus {
		return schedulerv1.WatchJobsRequestResultStatus_SUCCESS
	})
	f.wait(t, "two acks", func() bool { return len(f.acks) >= 2 })
	for _, a := range f.acks {
		if a != schedulerv1.WatchJobsRequestResultStatus_SUCCESS {
			t.Fatalf("ack = %v", a)
		}
	}
	f.mu.Lock()
	in := f.initials[0]
	f.mu.Unlock()
	if in.GetAppId() != "app" || in.GetNamespace() != "ns" ||
		!slices.Equal(in.GetAcceptJobTypes(), []schedulerv1.JobTargetType{schedulerv1.JobTargetType_JOB_TARGET_TYPE_JOB}) {
		t.Fatalf("initial = %v", in)
	}

	// A new actor type reopens the streams with reminders accepted; a job
	// reaching a sidecar whose app takes none is FAILED.
	s.SetApp(nil)
	s.SetActorTypes([]string{"b", "a", "a"}, func(context.Context, *schedulerv1.WatchJobsResponse) schedulerv1.WatchJobsRequestResultStatus {
		return schedulerv1.WatchJobsRequestResultStatus_SUCCESS
	})
	f.wait(t, "streams for actor reminders", func() bool {
		last := f.initials[len(f.initials)-1]
		return slices.Equal(last.GetActorTypes(), []string{"a", "b"}) && slices.Contains(f.acks, schedulerv1.WatchJobsRequestResultStatus_FAILED)
	})
}

// A scheduler that cannot be reached fails the calls after ReadyTimeout,
// naming it, instead of holding them until their callers give up.
func TestUnreachableSchedulerFailsCallsAfterReadyTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s := New(Config{Addresses: []string{addr}, AppID: "app", Namespace: "default", ReadyTimeout: 300 * time.Millisecond,
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	callCtx, callCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer callCancel()
	start := time.Now()
	_, err = s.Client(callCtx)
	if err == nil || callCtx.Err() != nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("after %s: err = %v, want a prompt error naming %s", time.Since(start), err, addr)
	}
}

// The streams open with the configured concurrency limits, whatever they
// deliver.
func TestStreamsCarryConcurrencyLimits(t *testing.T) {
	f := startFake(t)
	name := "slow"
	limits := []*schedulerv1.ConcurrencyLimit{
		{MaxConcurrent: 2, Target: &schedulerv1.ConcurrencyLimit_Actor{Actor: &schedulerv1.ConcurrencyLimitActor{Type: "wf"}}},
		{MaxConcurrent: 1, Name: &name, Target: &schedulerv1.ConcurrencyLimit_Actor{Actor: &schedulerv1.ConcurrencyLimitActor{Type: "act"}}},
	}
	s := New(Config{
		Addresses: []string{f.addr}, AppID: "app", Namespace: "ns", ConcurrencyLimits: limits,
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	s.SetActorTypes([]string{"wf", "act"}, func(context.Context, *schedulerv1.WatchJobsResponse) schedulerv1.WatchJobsRequestResultStatus {
		return schedulerv1.WatchJobsRequestResultStatus_SUCCESS
	})
	f.wait(t, "a stream", func() bool { return len(f.initials) > 0 })
	f.mu.Lock()
	got := f.initials[0].GetConcurrencyLimits()
	f.mu.Unlock()
	if len(got) != 2 || got[0].GetActor().GetType() != "wf" || got[0].GetMaxConcurrent() != 2 || got[0].Name != nil ||
		got[1].GetActor().GetType() != "act" || got[1].GetName() != "slow" || got[1].GetMaxConcurrent() != 1 {
		t.Fatalf("limits = %v", got)
	}
}
