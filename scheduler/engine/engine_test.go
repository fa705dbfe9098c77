package engine

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tandemrun/tandem/scheduler/pool"
	"github.com/tandemrun/tandem/scheduler/schedule"
	"github.com/tandemrun/tandem/scheduler/store"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startStore runs an embedded etcd for the test and returns a client.
func startStore(t *testing.T) *clientv3.Client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := store.StartEtcd(ctx, store.EtcdOptions{Name: "s0", DataDir: t.TempDir(), Namespace: "default",
		InitialCluster:      []string{fmt.Sprintf("s0=http://127.0.0.1:%d", freePort(t))},
		ClientListenAddress: "127.0.0.1", ClientPort: freePort(t), LogLevel: "error"})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	cli, err := store.NewClient(store.ClientOptions{Endpoints: []string{e.Endpoint()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close(); cancel(); <-done })
	return cli
}

// sidecar answers ticks with a fixed status and counts them by name.
type sidecar struct {
	ctx    context.Context
	cancel context.CancelFunc
	toSrv  chan *schedulerv1.WatchJobsRequest
	status pool.Result
	mu     sync.Mutex
	got    map[string]int
}

func (s *sidecar) Context() context.Context { return s.ctx }
func (s *sidecar) Send(r *schedulerv1.WatchJobsResponse) error {
	s.mu.Lock()
	s.got[r.GetName()]++
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
func (s *sidecar) count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[name]
}

func connect(t *testing.T, p *pool.Pool, app string, status pool.Result) *sidecar {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &sidecar{ctx: ctx, cancel: cancel, toSrv: make(chan *schedulerv1.WatchJobsRequest, 1024), status: status, got: map[string]int{}}
	done := make(chan struct{})
	go func() {
		_ = p.Serve(context.Background(), &schedulerv1.WatchJobsRequestInitial{Namespace: "ns", AppId: app}, s)
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// runEngine runs a replica until the returned stop is called (or the
// test ends).
func runEngine(t *testing.T, cli *clientv3.Client, id string, p *pool.Pool) (stop func()) {
	t.Helper()
	_, stop = startEngine(t, cli, id, p)
	return stop
}

// startEngine runs a replica until stop is called (or the test ends) and
// returns it once it is ready.
func startEngine(t *testing.T, cli *clientv3.Client, id string, p *pool.Pool) (e *Engine, stop func()) {
	t.Helper()
	e = New(Options{Client: cli, ID: id, Address: id + ":1", Pool: p, LeaseTTL: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	for !e.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("replica %s not ready", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e, stop
}

// putJob writes a job as the server does.
func putJob(t *testing.T, cli *clientv3.Client, app, name string, job *schedulerv1.Job) {
	t.Helper()
	p, err := schedule.Make(schedule.Spec{Schedule: job.Schedule, DueTime: job.DueTime, TTL: job.Ttl, Repeats: job.Repeats}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	meta := &schedulerv1.JobMetadata{Namespace: "ns", AppId: app,
		Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Job{Job: new(schedulerv1.TargetJob)}}}
	rec, err := store.NewJob(rand.Uint64(), p, job, meta)
	if err != nil {
		t.Fatal(err)
	}
	val, _ := store.EncodeJob(rec)
	full, _ := store.JobName(name, meta)
	if _, err := cli.Put(context.Background(), store.JobKey(full), val); err != nil {
		t.Fatal(err)
	}
}

func jobsLeft(t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), store.JobsPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

func waitNoJobs(t *testing.T, cli *clientv3.Client, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for jobsLeft(t, cli) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs left after %v", jobsLeft(t, cli), within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ptr[T any](v T) *T { return &v }

func TestTicksAreDeliveredOnceThenTheJobIsDeleted(t *testing.T) {
	cli := startStore(t)
	p := pool.New(nil, pool.Hooks{})
	sc := connect(t, p, "app", schedulerv1.WatchJobsRequestResultStatus_SUCCESS)
	runEngine(t, cli, "s0", p)
	putJob(t, cli, "app", "once", &schedulerv1.Job{DueTime: ptr("0s")})
	putJob(t, cli, "app", "thrice", &schedulerv1.Job{Schedule: ptr("@every 1s"), Repeats: ptr(uint32(3))})
	waitNoJobs(t, cli, 15*time.Second)
	time.Sleep(1500 * time.Millisecond)
	if sc.count("once") != 1 || sc.count("thrice") != 3 {
		t.Fatalf("deliveries: once %d (want 1), thrice %d (want 3)", sc.count("once"), sc.count("thrice"))
	}
}

func TestFailedTicksFollowTheFailurePolicy(t *testing.T) {
	cli := startStore(t)
	p := pool.New(nil, pool.Hooks{})
	sc := connect(t, p, "app", schedulerv1.WatchJobsRequestResultStatus_FAILED)
	runEngine(t, cli, "s0", p)
	putJob(t, cli, "app", "retried", &schedulerv1.Job{DueTime: ptr("0s"), FailurePolicy: &commonv1.JobFailurePolicy{
		Policy: &commonv1.JobFailurePolicy_Constant{Constant: &commonv1.JobFailurePolicyConstant{
			Interval: durationpb.New(100 * time.Millisecond), MaxRetries: ptr(uint32(2))}}}})
	putJob(t, cli, "app", "dropped", &schedulerv1.Job{DueTime: ptr("0s"), FailurePolicy: &commonv1.JobFailurePolicy{
		Policy: &commonv1.JobFailurePolicy_Drop{Drop: new(commonv1.JobFailurePolicyDrop)}}})
	waitNoJobs(t, cli, 15*time.Second)
	if sc.count("retried") != 3 || sc.count("dropped") != 1 {
		t.Fatalf("deliveries: retried %d (want 1 + 2 retries), dropped %d (want 1)", sc.count("retried"), sc.count("dropped"))
	}
}

// TestReplicasShareJobsAndOneStoppingLosesNoTick: two replicas on one
// store, one stopped in the middle; every tick is delivered once.
func TestReplicasShareJobsAndOneStoppingLosesNoTick(t *testing.T) {
	cli := startStore(t)
	p0, p1 := pool.New(nil, pool.Hooks{}), pool.New(nil, pool.Hooks{})
	sc0 := connect(t, p0, "app", schedulerv1.WatchJobsRequestResultStatus_SUCCESS)
	sc1 := connect(t, p1, "app", schedulerv1.WatchJobsRequestResultStatus_SUCCESS)
	stop0 := runEngine(t, cli, "s0", p0)
	runEngine(t, cli, "s1", p1)
	const jobs, repeats = 40, 4
	for i := range jobs {
		putJob(t, cli, "app", fmt.Sprintf("j%d", i), &schedulerv1.Job{Schedule: ptr("@every 1s"), Repeats: ptr(uint32(repeats))})
	}
	time.Sleep(1500 * time.Millisecond)
	stop0()
	waitNoJobs(t, cli, 30*time.Second)
	time.Sleep(1500 * time.Millisecond)
	by0 := 0
	for i := range jobs {
		name := fmt.Sprintf("j%d", i)
		by0 += sc0.count(name)
		if n := sc0.count(name) + sc1.count(name); n != repeats {
			t.Errorf("%s delivered %d times, want %d", name, n, repeats)
		}
	}
	if by0 == 0 {
		t.Error("replica s0 delivered nothing before it stopped: the jobs were not shared")
	}
}

// mute is a sidecar that takes ticks and never answers.
type mute struct {
	ctx  context.Context
	sent chan string
}

func (m *mute) Context() context.Context                    { return m.ctx }
func (m *mute) Send(r *schedulerv1.WatchJobsResponse) error { m.sent <- r.GetName(); return nil }
func (m *mute) Recv() (*schedulerv1.WatchJobsRequest, error) {
	<-m.ctx.Done()
	return nil, io.EOF
}

// TestARejoiningReplicaHasUnansweredTicksDeliveredAgain: a replica that
// comes back on a new lease makes the deliveries under way start over, so
// a sidecar that never answered gets the tick again.
func TestARejoiningReplicaHasUnansweredTicksDeliveredAgain(t *testing.T) {
	cli := startStore(t)
	p := pool.New(nil, pool.Hooks{})
	ctx, cancel := context.WithCancel(context.Background())
	m := &mute{ctx: ctx, sent: make(chan string, 16)}
	done := make(chan struct{})
	go func() {
		_ = p.Serve(context.Background(), &schedulerv1.WatchJobsRequestInitial{Namespace: "ns", AppId: "app"}, m)
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	runEngine(t, cli, "s0", p)
	putJob(t, cli, "app", "stalled", &schedulerv1.Job{DueTime: ptr("0s")})
	next := func() string {
		select {
		case name := <-m.sent:
			return name
		case <-time.After(10 * time.Second):
			return ""
		}
	}
	if got := next(); got != "stalled" {
		t.Fatalf("first delivery: %q", got)
	}
	select {
	case name := <-m.sent:
		t.Fatalf("%s delivered again with nothing changed", name)
	case <-time.After(500 * time.Millisecond):
	}
	resp, err := cli.Get(context.Background(), store.LeadershipKey("s0"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("leadership key: %v %v", resp, err)
	}
	if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "stalled" {
		t.Fatalf("after the replica came back on a new lease: %q, want the tick again", got)
	}
}

// TestTicksOfAnAbsentAppHoldNoWorker: the ticks of an app with no stream
// wait without a delivery worker, so another app's ticks go on (Dapr's
// integration suite fills its 128 workers with such ticks); once the app
// connects, its ticks are delivered.
func TestTicksOfAnAbsentAppHoldNoWorker(t *testing.T) {
	cli := startStore(t)
	p := pool.New(nil, pool.Hooks{})
	sc := connect(t, p, "app", schedulerv1.WatchJobsRequestResultStatus_SUCCESS)
	e := New(Options{Client: cli, ID: "s0", Address: "s0:1", Pool: p, LeaseTTL: 2 * time.Second, Workers: 2})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for i := range 5 {
		putJob(t, cli, "absent", fmt.Sprintf("waiting%d", i), &schedulerv1.Job{DueTime: ptr("0s")})
	}
	time.Sleep(500 * time.Millisecond) // the absent app's ticks are due and wait
	putJob(t, cli, "app", "served", &schedulerv1.Job{DueTime: ptr("0s")})
	deadline := time.Now().Add(10 * time.Second)
	for sc.count("served") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a connected app's tick waited behind the ticks of an app with no stream")
		}
		time.Sleep(20 * time.Millisecond)
	}
	late := connect(t, p, "absent", schedulerv1.WatchJobsRequestResultStatus_SUCCESS)
	waitNoJobs(t, cli, 15*time.Second)
	for i := range 5 {
		if n := late.count(fmt.Sprintf("waiting%d", i)); n != 1 {
			t.Errorf("waiting%d delivered %d times once its app connected, want 1", i, n)
		}
	}
}

// claimedJob is a job due at once with its first tick claimed by e, as
// the server's fast path makes it (Claim).
type claimedJob struct {
	name string // full job name
	rec  *store.Job
	c    store.Counter
	rev  int64 // its write's revision, once stored
}

// claimJob makes a claimed job for app; false when e owns no job now.
func claimJob(t *testing.T, e *Engine, app, name string) (claimedJob, bool) {
	t.Helper()
	p, err := schedule.Make(schedule.Spec{DueTime: ptr("0s")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	first, _ := p.Next(0, time.Time{})
	uid, c, ok := e.Claim(first)
	if !ok {
		return claimedJob{}, false
	}
	meta := &schedulerv1.JobMetadata{Namespace: "ns", AppId: app,
		Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Job{Job: new(schedulerv1.TargetJob)}}}
	rec, err := store.NewJob(uid, p, &schedulerv1.Job{DueTime: ptr("0s")}, meta)
	if err != nil {
		t.Fatal(err)
	}
	full, _ := store.JobName(name, meta)
	return claimedJob{name: full, rec: rec, c: c}, true
}

// put writes the job and its claimed counter in one write, as the
// server does, and records the write's revision.
func (j *claimedJob) put(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	val, _ := store.EncodeJob(j.rec)
	cval, _ := store.Encode(j.c)
	resp, err := cli.Txn(context.Background()).Then(clientv3.OpPut(store.JobKey(j.name), val), clientv3.OpPut(store.CounterKey(j.name), cval)).Commit()
	if err != nil {
		t.Fatal(err)
	}
	j.rev = resp.Header.Revision
}

// TestClaimedTicksAreDeliveredOnce: jobs stored with their first tick
// claimed (the server's path for jobs due at once) are delivered once each,
// whether DeliverClaimed hands them over at once, or is not called (the
// claim is found in the store, as after a crash), or is called after a
// second replica joined and owns some of them (those claims are given up
// and their new owner delivers them); then the jobs are deleted.
func TestClaimedTicksAreDeliveredOnce(t *testing.T) {
	cli := startStore(t)
	p0, p1 := pool.New(nil, pool.Hooks{}), pool.New(nil, pool.Hooks{})
	sc0 := connect(t, p0, "app", schedulerv1.WatchJobsRequestResultStatus_SUCCESS)
	sc1 := connect(t, p1, "app", schedulerv1.WatchJobsRequestResultStatus_SUCCESS)
	e0, _ := startEngine(t, cli, "s0", p0)
	const n = 40
	for i := range n {
		j, ok := claimJob(t, e0, "app", fmt.Sprintf("fast-%d", i))
		if !ok {
			t.Fatal("the only replica owns no job")
		}
		j.put(t, cli)
		if i%4 != 0 {
			e0.DeliverClaimed(j.name, j.rec, j.rev, j.c)
		}
	}
	waitNoJobs(t, cli, 15*time.Second)
	for i := range n {
		if got := sc0.count(fmt.Sprintf("fast-%d", i)); got != 1 {
			t.Fatalf("fast-%d delivered %d times, want once", i, got)
		}
	}

	// Claimed while s0 is alone; s1 joins before the hand-over.
	var held []claimedJob
	for i := range n {
		j, ok := claimJob(t, e0, "app", fmt.Sprintf("late-%d", i))
		if !ok {
			t.Fatal("the only replica owns no job")
		}
		held = append(held, j)
	}
	startEngine(t, cli, "s1", p1)
	// A replica joining sends the ticks under way again (at least once):
	// the hand-over starts once s0 counts s1.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		hosts, _, cancel := e0.Hosts()
		cancel()
		if len(hosts) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("s0 does not see s1: hosts %v", hosts)
		}
	}
	for i := range held {
		held[i].put(t, cli)
	}
	for _, h := range held {
		e0.DeliverClaimed(h.name, h.rec, h.rev, h.c)
	}
	waitNoJobs(t, cli, 15*time.Second)
	moved := 0
	for i := range n {
		name := fmt.Sprintf("late-%d", i)
		if got := sc0.count(name) + sc1.count(name); got != 1 {
			t.Fatalf("%s delivered %d times (s0 %d, s1 %d), want once", name, got, sc0.count(name), sc1.count(name))
		}
		moved += sc1.count(name)
	}
	if moved == 0 {
		t.Fatalf("no claimed job moved to the replica that joined: the test did not cover giving claims up")
	}
}
