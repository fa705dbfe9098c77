package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// schedulerProc is one running Tandem scheduler.
type schedulerProc struct {
	*framework.Process
	Addr        string
	HealthzPort int
	EtcdPort    int // its embedded etcd's client port
}

// startTandemScheduler starts one scheduler replica with embedded etcd in
// dataDir and waits for its /healthz.
func startTandemScheduler(t *testing.T, dataDir string) *schedulerProc {
	t.Helper()
	port, hz, mp, cp, pp := framework.FreePort(t), framework.FreePort(t), framework.FreePort(t), framework.FreePort(t), framework.FreePort(t)
	s := &schedulerProc{Addr: fmt.Sprintf("127.0.0.1:%d", port), HealthzPort: hz, EtcdPort: cp}
	s.Process = framework.Start(t, "scheduler", bins.Scheduler, []string{
		"--id=s0", "--port=" + strconv.Itoa(port), "--listen-address=127.0.0.1",
		"--healthz-port=" + strconv.Itoa(hz), "--healthz-listen-address=127.0.0.1",
		"--metrics-port=" + strconv.Itoa(mp), "--metrics-listen-address=127.0.0.1",
		"--etcd-data-dir=" + dataDir, "--etcd-client-port=" + strconv.Itoa(cp),
		"--etcd-initial-cluster=s0=http://127.0.0.1:" + strconv.Itoa(pp),
	})
	s.waitHealthy(t)
	return s
}

func (s *schedulerProc) waitHealthy(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := framework.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", s.HealthzPort), 200, 30*time.Second); err != nil {
		t.Fatalf("scheduler: %v\n%s", err, s.Output())
	}
}

// delivery is one tick as a watcher saw it.
type delivery struct {
	name    string
	at      time.Time
	watcher int
}

// watchJobs is a sidecar's side of WatchJobs for app: it connects (again
// after each break, as a sidecar does), acknowledges every tick with
// SUCCESS and records it.
func watchJobs(ctx context.Context, watcher int, addr, ns, app string, got chan<- delivery, connected *atomic.Int32) {
	for ctx.Err() == nil {
		func() {
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return
			}
			defer conn.Close()
			st, err := schedulerv1.NewSchedulerClient(conn).WatchJobs(ctx)
			if err != nil {
				return
			}
			if err := st.Send(&schedulerv1.WatchJobsRequest{WatchJobRequestType: &schedulerv1.WatchJobsRequest_Initial{
				Initial: &schedulerv1.WatchJobsRequestInitial{AppId: app, Namespace: ns}}}); err != nil {
				return
			}
			connected.Add(1)
			defer connected.Add(-1)
			for {
				resp, err := st.Recv()
				if err != nil {
					return
				}
				at := time.Now()
				if err := st.Send(&schedulerv1.WatchJobsRequest{WatchJobRequestType: &schedulerv1.WatchJobsRequest_Result{
					Result: &schedulerv1.WatchJobsRequestResult{Id: resp.GetId(), Status: schedulerv1.WatchJobsRequestResultStatus_SUCCESS}}}); err != nil {
					return
				}
				got <- delivery{name: resp.GetName(), at: at, watcher: watcher}
			}
		}()
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestSchedulerEveryTickOnceAcrossRestart: 1,000 jobs "@every 1s" with 30
// repeats, two watchers of one app, and the scheduler restarted in the
// middle: every job is delivered exactly 30 times, to both watchers
// between them, and then deleted. The firing lag (receipt minus the
// scheduled whole second) is reported, not asserted.
func TestSchedulerEveryTickOnceAcrossRestart(t *testing.T) {
	const jobs, repeats = 1000, 30
	s := startTandemScheduler(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	got := make(chan delivery, 10000)
	var connected [2]atomic.Int32
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); watchJobs(ctx, i, s.Addr, "default", "bench", got, &connected[i]) }()
	}
	defer wg.Wait()
	defer cancel()

	var perWatcher [2]int
	counts := map[string]int{}
	var lags []time.Duration
	var restartFrom, restartTo time.Time
	var mu sync.Mutex
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for d := range got {
			mu.Lock()
			counts[d.name]++
			perWatcher[d.watcher]++
			if d.at.Before(restartFrom) || restartFrom.IsZero() || (!restartTo.IsZero() && d.at.After(restartTo.Add(5*time.Second))) {
				lags = append(lags, d.at.Sub(d.at.Truncate(time.Second)))
			}
			mu.Unlock()
		}
	}()

	conn, err := grpc.NewClient(s.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := schedulerv1.NewSchedulerClient(conn)
	meta := &schedulerv1.JobMetadata{AppId: "bench", Namespace: "default",
		Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Job{Job: new(schedulerv1.TargetJob)}}}
	every, n := "@every 1s", uint32(repeats)
	start := time.Now()
	sem := make(chan struct{}, 16)
	var swg sync.WaitGroup
	var schedErr atomic.Value
	for i := range jobs {
		sem <- struct{}{}
		swg.Add(1)
		go func() {
			defer func() { <-sem; swg.Done() }()
			_, err := client.ScheduleJob(ctx, &schedulerv1.ScheduleJobRequest{Name: fmt.Sprintf("job-%04d", i), Metadata: meta,
				Job: &schedulerv1.Job{Schedule: &every, Repeats: &n}})
			if err != nil {
				schedErr.Store(err)
			}
		}()
	}
	swg.Wait()
	if err := schedErr.Load(); err != nil {
		t.Fatalf("schedule: %v", err)
	}
	t.Logf("scheduled %d jobs in %v", jobs, time.Since(start).Round(time.Millisecond))

	time.Sleep(12 * time.Second)
	mu.Lock()
	restartFrom = time.Now()
	mu.Unlock()
	s.Restart()
	s.waitHealthy(t)
	mu.Lock()
	restartTo = time.Now()
	mu.Unlock()
	t.Logf("scheduler restarted (SIGTERM and start) in %v", restartTo.Sub(restartFrom).Round(time.Millisecond))

	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := client.ListJobs(ctx, &schedulerv1.ListJobsRequest{Metadata: meta})
		if err == nil && len(resp.GetJobs()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs left after 90 s: %d (err %v)", len(resp.GetJobs()), err)
		}
		time.Sleep(time.Second)
	}
	time.Sleep(2 * time.Second) // a doubled tick would arrive now
	cancel()
	wg.Wait()
	close(got)
	<-collected

	total, wrong := 0, 0
	for i := range jobs {
		c := counts[fmt.Sprintf("job-%04d", i)]
		total += c
		if c != repeats {
			wrong++
			if wrong <= 10 {
				t.Errorf("job-%04d delivered %d times, want %d", i, c, repeats)
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d jobs were not delivered exactly %d times", wrong, jobs, repeats)
	}
	if perWatcher[0] == 0 || perWatcher[1] == 0 {
		t.Errorf("ticks per watcher %v: both watchers of the app should get some", perWatcher)
	}
	slices.Sort(lags)
	pct := func(p float64) time.Duration {
		if len(lags) == 0 {
			return 0
		}
		return lags[min(len(lags)-1, int(p*float64(len(lags))))]
	}
	t.Logf("delivered %d ticks of %d jobs (%d and %d to the two watchers) in %v; firing lag (receipt minus the scheduled second, outside the restart) p50 %v p99 %v max %v",
		total, jobs, perWatcher[0], perWatcher[1], time.Since(start).Round(time.Second), pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), pct(1).Round(time.Millisecond))
}
