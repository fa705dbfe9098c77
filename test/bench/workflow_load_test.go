package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api"
	"github.com/dapr/durabletask-go/api/protos"
	"github.com/dapr/durabletask-go/backend"
	dtclient "github.com/dapr/durabletask-go/client"
	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// daprSuiteBin is where scripts/conformance.sh --build leaves Dapr
// 1.18.2's control-plane binaries (placement, scheduler).
const daprSuiteBin = "/var/tmp/tandem-dapr-suite/bin"

// TestWorkflowLoad is the workflow benchmark of issue 12. In one run, for
// tandemd and (when built) daprd 1.18.2, each with its own placement and
// scheduler and a Redis actor state store, and the Go SDK workflow worker
// of test/bench/wfapp, it measures: a chain of five activities run one
// workflow at a time (end-to-end latency, CPU per activity); the same
// chain started by 100 concurrent clients (workflows completed per
// second); and a 1,000-activity fan-out (completion time). The floor is
// the same activity bodies called as plain HTTP requests straight to the
// app, in the same shapes. It writes results/workflow.md and asserts no
// timing (a workflow that fails or returns a wrong output fails the test,
// after the report is written).
func TestWorkflowLoad(t *testing.T) {
	if os.Getenv("TANDEM_BENCH") != "1" {
		t.Skip("load benchmark: run it with TANDEM_BENCH=1 go test ./test/bench -run TestWorkflowLoad -v -timeout 30m (see test/bench/README.md)")
	}
	redisAddr := os.Getenv("TANDEM_BENCH_REDIS")
	if redisAddr == "" {
		redisAddr = "127.0.0.1:6379"
	}
	if err := reachable(redisAddr); err != nil {
		t.Skipf("redis at %s not reachable (set TANDEM_BENCH_REDIS): %v", redisAddr, err)
	}
	set := wfSettings{
		Run:         benchSeconds(t, "TANDEM_BENCH_SECONDS", 10),
		Warmup:      benchSeconds(t, "TANDEM_BENCH_WARMUP_SECONDS", 2),
		Concurrency: int(benchNum(t, "TANDEM_BENCH_WF_CONCURRENCY", 100)),
		FanOut:      int(benchNum(t, "TANDEM_BENCH_WF_FANOUT", 1000)),
		FanOutRuns:  int(benchNum(t, "TANDEM_BENCH_WF_FANOUT_RUNS", 3)),
		Redis:       redisAddr,
	}
	if set.Concurrency < 1 || set.FanOut < 1 || set.FanOutRuns < 1 {
		t.Fatal("TANDEM_BENCH_WF_CONCURRENCY, TANDEM_BENCH_WF_FANOUT and TANDEM_BENCH_WF_FANOUT_RUNS must be at least 1")
	}
	runtimes := wfRuntimesFromEnv(t)
	profile := os.Getenv("TANDEM_BENCH_WF_PPROF") == "1"
	bins := benchBinaries(t)
	app, err := framework.BuildApp("./test/bench/wfapp")
	if err != nil {
		t.Fatal(err)
	}
	rep := &wfReport{Machine: machine(), Commit: commit(), Date: time.Now(), Set: set, UptimeBefore: uptime()}
	h := &wfHarness{t: t, bins: bins, set: set, cpu: NewProcCPU(), redisPID: findPID("redis-server")}

	rep.Targets = append(rep.Targets, h.floor(app))
	if runtimes["tandemd"] {
		rep.Targets = append(rep.Targets, h.runtime(wfRuntime{
			Name: "tandemd", Binary: bins.Tandemd,
			Placement: bins.Placement, Scheduler: cmp.Or(os.Getenv("TANDEM_BENCH_SCHEDULER"), bins.Scheduler), ControlPlane: "Tandem's placement and scheduler (cmd/placement, cmd/scheduler)",
		}, app, profile))
	}
	if runtimes["daprd"] {
		rep.Targets = append(rep.Targets, h.runtime(daprRuntime(bins), app, profile))
	}
	rep.UptimeAfter = uptime()

	md := rep.markdown()
	t.Logf("\n%s", md)
	writeBenchReport(t, "TANDEM_BENCH_WF_OUT", filepath.Join("results", "workflow.md"), md)
	for _, tg := range rep.Targets {
		for _, ph := range tg.phases() {
			if ph.Stats.Errors > 0 {
				t.Errorf("%s, %s: %d of %d failed; first: %s", tg.Name, ph.Name, ph.Stats.Errors, ph.Stats.Ops, ph.Stats.FirstErr)
			}
		}
	}
}

// wfRuntimesFromEnv reads TANDEM_BENCH_WF_RUNTIMES, a comma-separated
// subset of tandemd and daprd (both when unset).
func wfRuntimesFromEnv(t *testing.T) map[string]bool {
	all := map[string]bool{"tandemd": true, "daprd": true}
	v := os.Getenv("TANDEM_BENCH_WF_RUNTIMES")
	if v == "" {
		return all
	}
	want := map[string]bool{}
	for _, r := range strings.Split(v, ",") {
		r = strings.TrimSpace(r)
		if !all[r] {
			t.Fatalf("TANDEM_BENCH_WF_RUNTIMES=%q: %q is not one of tandemd, daprd", v, r)
		}
		want[r] = true
	}
	return want
}

// wfRuntime is a sidecar binary and the control plane it runs with.
type wfRuntime struct {
	Name                 string
	Binary               string // "" when not available (Skip says why)
	Placement, Scheduler string
	// DaprPlacement and DaprScheduler: the binaries are Dapr's (their
	// flags differ a little from Tandem's).
	DaprPlacement, DaprScheduler bool
	ControlPlane                 string
	Skip                         string
}

// daprRuntime finds daprd 1.18.2 (TANDEM_DAPRD or scripts/build-daprd.sh's
// output) and Dapr's own placement and scheduler (TANDEM_DAPR_PLACEMENT,
// TANDEM_DAPR_SCHEDULER or scripts/conformance.sh --build's cache); where
// Dapr's control plane is not built, daprd runs with Tandem's, which
// speaks the same protocols, and the report says so.
func daprRuntime(bins *framework.Binaries) wfRuntime {
	r := wfRuntime{Name: "daprd 1.18.2", Placement: bins.Placement, Scheduler: bins.Scheduler}
	path, err := daprdPath()
	if err != nil {
		r.Skip = err.Error() + " to measure Dapr in the same run"
		return r
	}
	r.Binary = path
	find := func(env, name string) string {
		for _, p := range []string{os.Getenv(env), filepath.Join(daprSuiteBin, name)} {
			if p == "" {
				continue
			}
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		return ""
	}
	var parts []string
	if p := find("TANDEM_DAPR_PLACEMENT", "placement"); p != "" {
		r.Placement, r.DaprPlacement = p, true
		parts = append(parts, "Dapr 1.18.2's placement")
	} else {
		parts = append(parts, "Tandem's placement (Dapr's is not built: scripts/conformance.sh --build)")
	}
	if p := find("TANDEM_DAPR_SCHEDULER", "scheduler"); p != "" {
		r.Scheduler, r.DaprScheduler = p, true
		parts = append(parts, "Dapr 1.18.2's scheduler")
	} else {
		parts = append(parts, "Tandem's scheduler (Dapr's is not built: scripts/conformance.sh --build)")
	}
	r.ControlPlane = strings.Join(parts, " and ")
	return r
}

type wfSettings struct {
	Run, Warmup time.Duration
	Concurrency int // clients of the throughput run
	FanOut      int // activities of the fan-out
	FanOutRuns  int
	Redis       string
}

// chainLength is the number of activities of the wfapp's Chain workflow.
const chainLength = 5

type wfHarness struct {
	t        *testing.T
	bins     *framework.Binaries
	set      wfSettings
	cpu      ProcCPU
	redisPID int
}

// proc is a process whose CPU a phase reads, by role.
type proc struct {
	role string
	pid  int
}

// measure runs f and returns the CPU each process spent meanwhile; the
// test process itself is role "client".
func (h *wfHarness) measure(procs []proc, f func()) map[string]time.Duration {
	before := make([]time.Duration, len(procs))
	for i, p := range procs {
		before[i] = h.cpu.CPUOrUnknown(p.pid)
	}
	self := selfCPU()
	f()
	out := map[string]time.Duration{"client": selfCPU() - self}
	for i, p := range procs {
		if after := h.cpu.CPUOrUnknown(p.pid); after >= 0 && before[i] >= 0 {
			out[p.role] = after - before[i]
		}
	}
	return out
}

// floor runs the three shapes against the app's plain HTTP handlers: the
// same activity bodies, JSON in and out, with no sidecar and no workflow.
func (h *wfHarness) floor(app string) wfTarget {
	t := h.t
	port := framework.FreePort(t)
	p := framework.Start(t, "wfapp (plain)", app, []string{"--port", strconv.Itoa(port)})
	defer p.Stop()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := framework.WaitTCP(fmt.Sprintf("127.0.0.1:%d", port), 15*time.Second); err != nil {
		t.Fatalf("wfapp: %v\n%s", err, p.Output())
	}
	procs := []proc{{"app", p.PID()}, {"redis-server", h.redisPID}}
	tg := wfTarget{Name: "floor", Floor: true,
		ControlPlane: "none: the test process calls the app's plain HTTP handlers (POST /add1, POST /square) straight, one keep-alive connection per client"}
	c := newBenchClient(max(h.set.Concurrency, 64))
	chain := func(int, int) error {
		n := 10
		for range chainLength {
			v, err := postNumber(c, base+"/add1", n)
			if err != nil {
				return err
			}
			n = v
		}
		if n != 10+chainLength {
			return fmt.Errorf("chain of plain calls gave %d, want %d", n, 10+chainLength)
		}
		return nil
	}
	closedLoop(h.set.Concurrency, h.set.Warmup, chain)
	tg.Chain = h.phase("chain of 5, one at a time", procs, chainLength, func() opStats { return closedLoop(1, h.set.Run, chain) })
	tg.Throughput = h.phase(fmt.Sprintf("chain of 5, %d concurrent", h.set.Concurrency), procs, chainLength,
		func() opStats { return closedLoop(h.set.Concurrency, h.set.Run, chain) })
	// The fan-out: n calls at once (64 connections), summed.
	fan := func(context.Context, int) error {
		var mu sync.Mutex
		var wg sync.WaitGroup
		sum, want := 0, sumSquares(h.set.FanOut)
		var first error
		for i := range h.set.FanOut {
			wg.Go(func() {
				v, err := postNumber(c, base+"/square", i)
				mu.Lock()
				defer mu.Unlock()
				sum += v
				if err != nil && first == nil {
					first = err
				}
			})
		}
		wg.Wait()
		if first == nil && sum != want {
			first = fmt.Errorf("fan-out of plain calls summed to %d, want %d", sum, want)
		}
		return first
	}
	tg.FanOut = h.fanOut(procs, fan)
	return tg
}

// postNumber posts n as JSON and reads a JSON number back.
func postNumber(c *http.Client, url string, n int) (int, error) {
	resp, err := c.Post(url, "application/json", strings.NewReader(strconv.Itoa(n)))
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, b)
	}
	var v int
	if err := json.Unmarshal(b, &v); err != nil {
		return 0, fmt.Errorf("POST %s: %q is not a number: %w", url, b, err)
	}
	return v, nil
}

// phase runs one measured load and scales its CPU by the activities of
// the workflows (or plain chains) that completed.
func (h *wfHarness) phase(name string, procs []proc, perOp int, run func() opStats) wfPhase {
	var st opStats
	cpu := h.measure(procs, func() { st = run() })
	ph := wfPhase{Name: name, Stats: st, Activities: (st.Ops - st.Errors) * int64(perOp), CPU: cpu}
	h.t.Logf("%s: %d ops (%.1f/s), %d errors (%s), p50 %.2f ms, p99 %.2f ms", name, st.Ops, st.Rate(), st.Errors, st.FirstErr, ms(st.P50), ms(st.P99))
	return ph
}

// fanOut runs fan FanOutRuns times, one after another; each run's
// completion time is one sample.
func (h *wfHarness) fanOut(procs []proc, fan func(ctx context.Context, run int) error) wfPhase {
	var lat []time.Duration
	var errs int64
	var first string
	start := time.Now()
	cpu := h.measure(procs, func() {
		for i := range h.set.FanOutRuns {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			t0 := time.Now()
			err := fan(ctx, i)
			lat = append(lat, time.Since(t0))
			cancel()
			if err != nil {
				errs++
				if first == "" {
					first = err.Error()
				}
			}
			h.t.Logf("fan-out of %d, run %d: %s (%v)", h.set.FanOut, i+1, lat[len(lat)-1].Round(time.Millisecond), err)
		}
	})
	st := summarize(slices.Clone(lat))
	st.Duration, st.Errors, st.FirstErr = time.Since(start), errs, first
	return wfPhase{Name: fmt.Sprintf("fan-out of %d", h.set.FanOut), Stats: st, Activities: (st.Ops - st.Errors) * int64(h.set.FanOut), CPU: cpu, Runs: lat}
}

// runtime starts rt's placement, scheduler and sidecar with a Redis actor
// state store, the wfapp worker on the sidecar, and measures the three
// shapes; everything it started is stopped when it returns.
func (h *wfHarness) runtime(rt wfRuntime, app string, profile bool) wfTarget {
	t := h.t
	tg := wfTarget{Name: rt.Name, ControlPlane: rt.ControlPlane, Skip: rt.Skip}
	if rt.Binary == "" {
		t.Logf("%s: skipped: %s", rt.Name, rt.Skip)
		return tg
	}
	var stops []func()
	defer func() {
		for _, s := range slices.Backward(stops) {
			s()
		}
	}()
	place, placeProc := startWfPlacement(t, rt.Placement, rt.DaprPlacement)
	stops = append(stops, placeProc.Stop)
	sched, schedProc := startWfScheduler(t, rt.Scheduler, rt.DaprScheduler)
	stops = append(stops, schedProc.Stop)

	// An app ID of its own keeps the run's keys apart from other users of
	// this Redis; they are deleted at the end.
	appID := randomName("wfbench")
	res := t.TempDir()
	comp := fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: actorstore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    value: %q
  - name: actorStateStore
    value: "true"
`, h.set.Redis)
	if err := os.WriteFile(filepath.Join(res, "actorstore.yaml"), []byte(comp), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteRedisKeys(t, h.set.Redis, appID+"||*") })
	args := []string{"--log-level", "info", "--placement-host-address", place, "--scheduler-host-address", sched}
	profilePort := 0
	if profile {
		profilePort = framework.FreePort(t)
		args = append(args, "--enable-profiling", "--profile-port", strconv.Itoa(profilePort))
	}
	sc := framework.StartSidecar(t, h.bins, framework.SidecarOptions{AppID: appID, ResourcesDir: res, Binary: rt.Binary, Args: args})
	stops = append(stops, sc.Stop)
	waitWorkflowHost(t, sc, `"placement: connected"`, `"hostReady":true`)
	idle, err := ReadMem(sc.PID())
	if err != nil {
		t.Fatal(err)
	}
	worker := framework.Start(t, "wfapp "+rt.Name, app, []string{"--dapr-grpc", sc.GRPCAddr()})
	stops = append(stops, worker.Stop)
	waitWorkflowHost(t, sc, `"connectedWorkers":1`)
	// The client: durabletask-go's gRPC client (Dapr's fork, the one daprd
	// is built with). The Go SDK's workflow.Client sends the same calls,
	// but its protos (microsoft/durabletask-go) clash with the fork's,
	// which this package links, in one process.
	conn, err := grpc.NewClient(sc.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wc := dtclient.NewTaskHubGrpcClient(conn, backend.DefaultLogger())
	procs := []proc{{"sidecar", sc.PID()}, {"app", worker.PID()}, {"scheduler", schedProc.PID()}, {"placement", placeProc.PID()}, {"redis-server", h.redisPID}}

	run := randomName("")
	chain := func(phase string) func(w, i int) error {
		return func(w, i int) error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			return runWorkflow(ctx, wc, "Chain", fmt.Sprintf("%s-%s-%d-%d", phase, run, w, i), i, strconv.Itoa(i+chainLength))
		}
	}
	// The first workflow may wait for the actor types to reach placement
	// and for the scheduler's stream: retry it for a while.
	var first error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if first = chain("ready")(0, int(time.Now().UnixNano()%1000)); first == nil {
			break
		}
	}
	if first != nil {
		t.Fatalf("%s: no workflow completed in 60 s: %v\n%s", rt.Name, first, sc.Output())
	}
	warm := closedLoop(h.set.Concurrency, h.set.Warmup, chain("warm"))
	t.Logf("%s: warm-up: %d chains, %d errors (%s)", rt.Name, warm.Ops, warm.Errors, warm.FirstErr)

	tg.Chain = h.phase("chain of 5, one at a time", procs, chainLength, func() opStats { return closedLoop(1, h.set.Run, chain("seq")) })
	var profCh chan string
	if profile {
		profCh = make(chan string, 1)
		go func() { profCh <- cpuProfile(profilePort, h.set.Run-time.Second, sc.Process.Args[0]) }()
	}
	rss := StartRSSSampler(50*time.Millisecond, sc.PID())
	tg.Throughput = h.phase(fmt.Sprintf("chain of 5, %d concurrent", h.set.Concurrency), procs, chainLength,
		func() opStats { return closedLoop(h.set.Concurrency, h.set.Run, chain("conc")) })
	peak := rss.Stop()[0]
	if profile {
		tg.Profile = <-profCh
	}
	want := strconv.Itoa(sumSquares(h.set.FanOut))
	tg.FanOut = h.fanOut(procs, func(ctx context.Context, i int) error {
		return runWorkflow(ctx, wc, "FanOut", fmt.Sprintf("fan-%s-%d", run, i), h.set.FanOut, want)
	})
	m, err := ReadMem(sc.PID())
	if err != nil {
		t.Fatal(err)
	}
	tg.Memory = SidecarMem{Name: rt.Name, Idle: idle.RSS, IdleFile: idle.File, LoadPeak: peak, HWM: m.HWM, AfterLoad: m.RSS}
	return tg
}

// runWorkflow starts workflow name with input as instance id and waits for
// it to complete with output want (its JSON).
func runWorkflow(ctx context.Context, c *dtclient.TaskHubGrpcClient, name, id string, input int, want string) error {
	if _, err := c.ScheduleNewWorkflow(ctx, name, api.WithInstanceID(api.InstanceID(id)), api.WithInput(input)); err != nil {
		return fmt.Errorf("start %s %s: %w", name, id, err)
	}
	md, err := c.WaitForWorkflowCompletion(ctx, api.InstanceID(id), api.WithFetchPayloads(true))
	if err != nil {
		return fmt.Errorf("wait for %s %s: %w", name, id, err)
	}
	if md.RuntimeStatus != protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED || md.GetOutput().GetValue() != want {
		return fmt.Errorf("%s %s: status %s, output %q, failure %v; want COMPLETED with %s", name, id, md.RuntimeStatus, md.GetOutput().GetValue(), md.FailureDetails, want)
	}
	return nil
}

// sumSquares is FanOut's output for n: the sum of i*i for i < n.
func sumSquares(n int) int {
	return (n - 1) * n * (2*n - 1) / 6
}

// waitWorkflowHost waits until the sidecar's metadata holds every one of
// marks.
func waitWorkflowHost(t *testing.T, s *framework.Sidecar, marks ...string) {
	t.Helper()
	var body string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(s.HTTPURL() + "/v1.0/metadata")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if !slices.ContainsFunc(marks, func(m string) bool { return !strings.Contains(body, m) }) {
			return
		}
	}
	t.Fatalf("sidecar %s: metadata never showed %q: %s\n%s", s.AppID, marks, body, s.Output())
}

// startWfPlacement starts one plaintext placement replica (the sidecars
// run without mTLS, as a self-hosted Dapr does by default).
func startWfPlacement(t *testing.T, bin string, daprs bool) (string, *framework.Process) {
	t.Helper()
	port := framework.FreePort(t)
	args := []string{
		"--id=p0", "--port=" + strconv.Itoa(port), "--listen-address=127.0.0.1",
		"--healthz-port=" + strconv.Itoa(framework.FreePort(t)), "--healthz-listen-address=127.0.0.1",
		"--metrics-port=" + strconv.Itoa(framework.FreePort(t)), "--metrics-listen-address=127.0.0.1",
		"--initial-cluster=p0=127.0.0.1:" + strconv.Itoa(framework.FreePort(t)),
	}
	if daprs {
		args = append(args, "--tls-enabled=false")
	}
	p := framework.Start(t, "placement", bin, args)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := framework.WaitTCP(addr, 30*time.Second); err != nil {
		t.Fatalf("placement %s: %v\n%s", bin, err, p.Output())
	}
	return addr, p
}

// startWfScheduler starts one plaintext scheduler with an embedded etcd
// in a new folder.
func startWfScheduler(t *testing.T, bin string, daprs bool) (string, *framework.Process) {
	t.Helper()
	port, hz := framework.FreePort(t), framework.FreePort(t)
	dataDir := t.TempDir()
	if parent := os.Getenv("TANDEM_BENCH_ETCD_PARENT"); parent != "" {
		// e.g. /dev/shm: etcd's commits without a disk's fsync, to see
		// what the durable writes cost on the critical path.
		d, err := os.MkdirTemp(parent, "wf-etcd-")
		if err != nil {
			t.Fatalf("TANDEM_BENCH_ETCD_PARENT: %v", err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(d) })
		dataDir = d
	}
	args := []string{
		"--id=s0", "--port=" + strconv.Itoa(port), "--listen-address=127.0.0.1",
		"--healthz-port=" + strconv.Itoa(hz), "--healthz-listen-address=127.0.0.1",
		"--metrics-port=" + strconv.Itoa(framework.FreePort(t)), "--metrics-listen-address=127.0.0.1",
		"--etcd-data-dir=" + dataDir, "--etcd-client-port=" + strconv.Itoa(framework.FreePort(t)),
		"--etcd-client-listen-address=127.0.0.1",
		"--etcd-initial-cluster=s0=http://127.0.0.1:" + strconv.Itoa(framework.FreePort(t)),
	}
	if daprs {
		args = append(args, "--identity-directory-write="+t.TempDir(), "--mode=standalone")
	}
	p := framework.Start(t, "scheduler", bin, args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := framework.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", hz), 200, 30*time.Second); err != nil {
		t.Fatalf("scheduler %s: %v\n%s", bin, err, p.Output())
	}
	return fmt.Sprintf("127.0.0.1:%d", port), p
}

// deleteRedisKeys removes the keys matching pattern.
func deleteRedisKeys(t *testing.T, addr, pattern string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc := goredis.NewClient(&goredis.Options{Addr: addr})
	defer rc.Close()
	var n int
	iter := rc.Scan(ctx, 0, pattern, 1000).Iterator()
	var batch []string
	flush := func() {
		if len(batch) > 0 {
			if err := rc.Unlink(ctx, batch...).Err(); err != nil {
				t.Logf("delete the run's Redis keys %s: %v", pattern, err)
			}
			n += len(batch)
			batch = batch[:0]
		}
	}
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 1000 {
			flush()
		}
	}
	flush()
	if err := iter.Err(); err != nil {
		t.Logf("scan the run's Redis keys %s: %v", pattern, err)
	}
	t.Logf("deleted %d Redis keys %s", n, pattern)
}

// cpuProfile takes a CPU profile of d from the sidecar's pprof port and
// returns `go tool pprof -top` of it, or why there is none.
func cpuProfile(port int, d time.Duration, bin string) string {
	secs := max(int(d.Seconds()), 1)
	c := &http.Client{Timeout: d + 30*time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", port, secs))
	if err != nil {
		return "no profile: " + err.Error()
	}
	defer resp.Body.Close()
	f, err := os.CreateTemp("", "wfbench-*.pprof")
	if err != nil {
		return "no profile: " + err.Error()
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return "no profile: " + err.Error()
	}
	f.Close()
	var out strings.Builder
	for _, mode := range []string{"-top", "-top -cum"} {
		args := append([]string{"tool", "pprof"}, strings.Fields(mode)...)
		args = append(args, "-nodecount=25", bin, f.Name())
		b, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("go tool pprof: %v\n%s", err, b)
		}
		fmt.Fprintf(&out, "$ go tool pprof %s -nodecount=25\n%s\n", mode, b)
	}
	return out.String()
}
