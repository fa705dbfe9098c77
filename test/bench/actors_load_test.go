package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestActorsLoad is the actor benchmark of issue 11: in one run it
// measures an actor method call through two sidecars (caller sidecar →
// owner sidecar → app) against a plain service invocation over the same
// two sidecars and app, at a fixed rate and at max rate; the activation
// of new actors; and the firing lag of 10,000 reminders. It reports and
// asserts no timing; it writes results/actors.md.
func TestActorsLoad(t *testing.T) {
	if os.Getenv("TANDEM_BENCH") != "1" {
		t.Skip("load benchmark: run it with TANDEM_BENCH=1 go test ./test/bench -run TestActorsLoad -v -timeout 30m (see test/bench/README.md)")
	}
	set := settingsFromEnv(t)
	reminders := int(envNum(t, "TANDEM_BENCH_REMINDERS", 10000))
	stateReminders := int(envNum(t, "TANDEM_BENCH_STATE_REMINDERS", 1000))
	bins := benchBinaries(t)
	rep := &actorReport{Machine: machine(), Commit: commit(), Date: time.Now(), Set: set, UptimeBefore: uptime()}
	parts := benchParts(t)

	sentry := framework.StartSentry(t, bins, framework.SentryOptions{})
	place := startBenchPlacement(t, bins, sentry)
	if parts["calls"] || parts["activation"] {
		actorCalls(t, bins, sentry, place, set, parts, rep)
	}
	if parts["reminders"] {
		// Reminders: the scheduler (what daprd 1.18 uses, and tandemd
		// with --scheduler-host-address) and the actor state store
		// (tandemd's default without a scheduler).
		sched := startBenchScheduler(t, bins, sentry)
		rep.Reminders = append(rep.Reminders, reminderLag(t, bins, sentry, place, "scheduler", reminders,
			[]string{"--scheduler-host-address", sched.addr}, "", sched, 0))
		if stateReminders > 0 {
			rep.Reminders = append(rep.Reminders,
				reminderLag(t, bins, sentry, place, "actor state store (sqlite, one key)", stateReminders, nil, framework.ActorStore(t), nil, 0),
				reminderLag(t, bins, sentry, place, "actor state store (sqlite, 32 partitions)", stateReminders, nil, framework.ActorStore(t), nil, 32))
		}
	}
	rep.UptimeAfter = uptime()

	md := rep.markdown()
	t.Logf("\n%s", md)
	out := os.Getenv("TANDEM_BENCH_OUT")
	if out == "" {
		out = filepath.Join("results", "actors.md")
	}
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		t.Fatalf("write %s: %v", out, err)
	}
	t.Logf("wrote %s", out)
}

// benchParts reads TANDEM_BENCH_ACTOR_PARTS, a comma-separated subset of
// calls, activation and reminders (all of them when unset).
func benchParts(t *testing.T) map[string]bool {
	parts := map[string]bool{"calls": true, "activation": true, "reminders": true}
	v := os.Getenv("TANDEM_BENCH_ACTOR_PARTS")
	if v == "" {
		return parts
	}
	want := map[string]bool{}
	for _, p := range strings.Split(v, ",") {
		if !parts[strings.TrimSpace(p)] {
			t.Fatalf("TANDEM_BENCH_ACTOR_PARTS=%q: %q is not one of calls, activation, reminders", v, p)
		}
		want[strings.TrimSpace(p)] = true
	}
	return want
}

// actorCalls measures the calls and the activations.
func actorCalls(t *testing.T, bins *framework.Binaries, sentry *framework.Sentry, place string, set Settings, parts map[string]bool, rep *actorReport) {
	registry := filepath.Join(t.TempDir(), "registry.db")
	app := framework.Start(t, "echo app", buildEchoApp(t, bins), []string{"--actor-types", "bench"}, "APP_PORT="+strconv.Itoa(framework.FreePort(t)))
	appPort := appPortOf(t, app)
	args := []string{"--log-level", "info", "--config", writeConfig(t, registry), "--placement-host-address", place}
	callee := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "callee", AppPort: appPort, Sentry: sentry, Args: args})
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "caller", Sentry: sentry, Args: args})
	h := &harness{t: t, set: set, cpu: NewProcCPU(), payload: payload(set.PayloadBytes),
		sidecarPIDs: []int{caller.PID(), callee.PID()}, appPID: app.PID()}

	invokeURL := func(int) string { return caller.HTTPURL() + "/v1.0/invoke/callee/method/echo" }
	// Each connection calls its own actor: the figure is the call's cost,
	// not waiting for another caller's turn.
	actorURL := func(w int) string { return fmt.Sprintf("%s/v1.0/actors/bench/w-%d/method/echo", caller.HTTPURL(), w) }
	for _, u := range []string{invokeURL(0), actorURL(0)} {
		h.waitEcho(u)
	}
	if parts["calls"] {
		client := newBenchClient(set.Connections)
		h.paced(client, "warm-up", invokeURL, -1, set.Warmup)
		h.paced(client, "warm-up", actorURL, -1, set.Warmup)
		rep.Calls = append(rep.Calls,
			h.paced(client, "invocation, fixed rate", invokeURL, set.FixedQPS, set.Run),
			h.paced(client, "actor call, fixed rate", actorURL, set.FixedQPS, set.Run),
			h.paced(client, "invocation, max rate", invokeURL, -1, set.Run),
			h.paced(client, "actor call, max rate", actorURL, -1, set.Run),
		)
		for i, name := range []string{"caller", "callee"} {
			m, err := ReadMem(h.sidecarPIDs[i])
			if err != nil {
				t.Fatal(err)
			}
			rep.Memory = append(rep.Memory, SidecarMem{Name: name, AfterLoad: m.RSS, HWM: m.HWM})
		}
	}

	// Activation: one call at a time to actors never called before,
	// against one call at a time to an active actor.
	n := int(envNum(t, "TANDEM_BENCH_ACTIVATIONS", 2000))
	if !parts["activation"] {
		return
	}
	c1 := newBenchClient(1)
	rep.Activation = append(rep.Activation,
		sequential(t, c1, "call to an active actor", n, h.payload, func(int) string { return actorURL(0) }),
		sequential(t, c1, "call activating a new actor", n, h.payload, func(i int) string {
			return fmt.Sprintf("%s/v1.0/actors/bench/new-%d/method/echo", caller.HTTPURL(), i)
		}),
	)
}

func envNum(t *testing.T, name string, def float64) float64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		t.Fatalf("%s=%q: want a non-negative number", name, v)
	}
	return f
}

func uptime() string {
	out, err := exec.Command("uptime").Output()
	if err != nil {
		return "uptime failed: " + err.Error()
	}
	return strings.TrimSpace(string(out))
}

// appPortOf reads the echo app's port from its environment and waits for it.
func appPortOf(t *testing.T, p *framework.Process) int {
	t.Helper()
	for _, e := range p.Env {
		if v, ok := strings.CutPrefix(e, "APP_PORT="); ok {
			port, _ := strconv.Atoi(v)
			if err := framework.WaitTCP("127.0.0.1:"+v, 15*time.Second); err != nil {
				t.Fatalf("echo app: %v\n%s", err, p.Output())
			}
			return port
		}
	}
	t.Fatal("echo app started without APP_PORT")
	return 0
}

// startBenchPlacement starts one replica of Tandem's placement with mTLS
// (the sidecars use mTLS with sentry, placement included).
func startBenchPlacement(t *testing.T, bins *framework.Binaries, sentry *framework.Sentry) string {
	t.Helper()
	port, hz := framework.FreePort(t), framework.FreePort(t)
	p := framework.Start(t, "placement", bins.Placement, []string{
		"--id=p0", "--port=" + strconv.Itoa(port), "--listen-address=127.0.0.1",
		"--healthz-port=" + strconv.Itoa(hz), "--healthz-listen-address=127.0.0.1",
		"--metrics-port=" + strconv.Itoa(framework.FreePort(t)), "--metrics-listen-address=127.0.0.1",
		"--initial-cluster=p0=127.0.0.1:" + strconv.Itoa(framework.FreePort(t)),
		"--tls-enabled", "--sentry-address=" + sentry.Addr, "--trust-anchors-file=" + filepath.Join(sentry.CredsDir, "ca.crt"),
		"--trust-domain=" + sentry.TrustDomain,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := framework.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", hz), 200, 30*time.Second); err != nil {
		t.Fatalf("placement: %v\n%s", err, p.Output())
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// benchScheduler is a running scheduler: its API, its embedded etcd's
// client endpoint and its process.
type benchScheduler struct {
	addr, etcd string
	pid        int
}

// startBenchScheduler starts one replica of Tandem's scheduler with mTLS
// from sentry: a sidecar with mTLS dials its scheduler with mTLS (as
// daprd), so a plaintext scheduler is never reached.
func startBenchScheduler(t *testing.T, bins *framework.Binaries, sentry *framework.Sentry) *benchScheduler {
	t.Helper()
	port, hz, pp, cp := framework.FreePort(t), framework.FreePort(t), framework.FreePort(t), framework.FreePort(t)
	s := framework.Start(t, "scheduler", bins.Scheduler, []string{
		"--id=s0", "--port=" + strconv.Itoa(port), "--listen-address=127.0.0.1",
		"--healthz-port=" + strconv.Itoa(hz), "--healthz-listen-address=127.0.0.1",
		"--metrics-port=" + strconv.Itoa(framework.FreePort(t)), "--metrics-listen-address=127.0.0.1",
		"--etcd-data-dir=" + t.TempDir(), "--etcd-client-port=" + strconv.Itoa(cp), "--etcd-client-listen-address=127.0.0.1",
		"--etcd-initial-cluster=s0=http://127.0.0.1:" + strconv.Itoa(pp),
		"--tls-enabled", "--sentry-address=" + sentry.Addr, "--trust-anchors-file=" + filepath.Join(sentry.CredsDir, "ca.crt"),
		"--trust-domain=" + sentry.TrustDomain,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := framework.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", hz), 200, 30*time.Second); err != nil {
		t.Fatalf("scheduler: %v\n%s", err, s.Output())
	}
	return &benchScheduler{addr: fmt.Sprintf("127.0.0.1:%d", port), etcd: fmt.Sprintf("127.0.0.1:%d", cp), pid: s.PID()}
}

// newBenchClient is a keep-alive HTTP/1.1 client with one connection per
// worker.
func newBenchClient(workers int) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: workers, MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers, DisableCompression: true,
	}}
}

// callRun is one measured load of a path.
type callRun struct {
	Name       string
	TargetQPS  float64
	Stats      opStats
	SidecarCPU [2]time.Duration // caller, callee
	AppCPU     time.Duration
}

func (r callRun) perCall(d time.Duration) time.Duration {
	if r.Stats.Ops == 0 {
		return 0
	}
	return d / time.Duration(r.Stats.Ops)
}

// paced runs set.Connections workers for d, each posting the payload to
// url(worker) and checking the echo; qps > 0 spreads the total rate over
// the workers (each sends on its own schedule and skips no slot: a slow
// answer delays its next requests, as fortio's default does), qps <= 0 is
// max rate. The processes' CPU is read around the run.
func (h *harness) paced(c *http.Client, name string, url func(int) string, qps float64, d time.Duration) callRun {
	h.t.Helper()
	pids := append([]int{h.appPID}, h.sidecarPIDs...)
	before := h.cpus(pids)
	workers := h.set.Connections
	var interval time.Duration
	if qps > 0 {
		interval = time.Duration(float64(workers) / qps * float64(time.Second))
	}
	start := time.Now()
	deadline := start.Add(d)
	lat := make([][]time.Duration, workers)
	errs := make([]int64, workers)
	var first atomic.Value
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			l := make([]time.Duration, 0, 1<<14)
			for i := 0; ; i++ {
				if interval > 0 {
					// Worker w's i-th slot; the workers start staggered.
					due := start.Add(time.Duration(i)*interval + time.Duration(w)*interval/time.Duration(workers))
					if wait := time.Until(due); wait > 0 {
						time.Sleep(wait)
					}
				}
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				err := postEcho(c, url(w), h.payload)
				l = append(l, time.Since(t0))
				if err != nil {
					errs[w]++
					first.CompareAndSwap(nil, err.Error())
				}
			}
			lat[w] = l
		})
	}
	wg.Wait()
	st := summarize(slices.Concat(lat...))
	st.Duration = time.Since(start)
	for _, e := range errs {
		st.Errors += e
	}
	if v := first.Load(); v != nil {
		st.FirstErr = v.(string)
	}
	after := h.cpus(pids)
	run := callRun{Name: name, TargetQPS: qps, Stats: st, AppCPU: after[0] - before[0],
		SidecarCPU: [2]time.Duration{after[1] - before[1], after[2] - before[2]}}
	h.t.Logf("%s: %.0f calls/s, %d calls, %d errors (%s), p50 %.3f ms, p99 %.3f ms", name, st.Rate(), st.Ops, st.Errors, st.FirstErr, ms(st.P50), ms(st.P99))
	return run
}

func postEcho(c *http.Client, url string, body []byte) error {
	resp, err := c.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		return err
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		return fmt.Errorf("status %d, %d bytes: %.200s", resp.StatusCode, len(got), got)
	}
	return nil
}

// sequential makes n calls one after another and summarises them. The
// time a closed loop measures for a call starts before it, so the
// sleeping of the paced runs is not in these figures.
func sequential(t *testing.T, c *http.Client, name string, n int, body []byte, url func(int) string) namedStats {
	t.Helper()
	lat := make([]time.Duration, 0, n)
	var errs int64
	var first string
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		if err := postEcho(c, url(i), body); err != nil {
			errs++
			if first == "" {
				first = err.Error()
			}
		}
		lat = append(lat, time.Since(t0))
	}
	s := summarize(lat)
	s.Duration, s.Errors, s.FirstErr = time.Since(start), errs, first
	t.Logf("%s: %d calls, %d errors, p50 %.3f ms, p99 %.3f ms", name, s.Ops, s.Errors, ms(s.P50), ms(s.P99))
	return namedStats{Name: name, opStats: s}
}

type namedStats struct {
	Name string
	opStats
}

// reminderApp hosts type "timed" and records, per reminder, when its
// callback arrived; the reminder's data is its due time.
type reminderApp struct {
	partitions int // remindersStoragePartitions in /dapr/config
	mu         sync.Mutex
	lags       []time.Duration
	seen       map[string]int
	dupes      atomic.Int64
}

func (a *reminderApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	if r.URL.Path == "/dapr/config" {
		fmt.Fprintf(w, `{"entities":["timed"],"actorIdleTimeout":"1h","remindersStoragePartitions":%d}`, a.partitions)
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if r.Method != http.MethodPut || len(parts) != 6 || parts[0] != "actors" || parts[4] != "remind" {
		return // deactivations and anything else: 200
	}
	var body struct{ Data string }
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	due, err := time.Parse(time.RFC3339Nano, body.Data)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen[parts[2]]++
	if a.seen[parts[2]] > 1 {
		a.dupes.Add(1)
		return
	}
	a.lags = append(a.lags, now.Sub(due))
}

func (a *reminderApp) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.lags)
}

// reminderRun is the firing lag of one reminder store.
type reminderRun struct {
	Store      string
	N          int
	Register   time.Duration // creating all N reminders
	CreateErrs int64
	FirstErr   string
	Fired      int
	Dupes      int64
	Lag        opStats // due time → callback received
	SidecarCPU time.Duration
	Window     time.Duration
	// For the scheduler: its process's CPU over the test, and the floor
	// of the first creation, n puts of a job-sized value straight into
	// its etcd from 16 clients (the least a creation can cost).
	SchedulerCPU time.Duration
	Floor        time.Duration
	FloorErr     string
}

// reminderLag starts one host sidecar of type "timed" (args and resources
// select the reminder store), creates n one-shot reminders on n actors
// whose due times are spread evenly over a window starting after they are
// all created (each carries its due time as data), and measures when the
// app receives each.
func reminderLag(t *testing.T, bins *framework.Binaries, sentry *framework.Sentry, place, store string, n int, args []string, resources string, sched *benchScheduler, partitions int) reminderRun {
	t.Helper()
	app := &reminderApp{seen: map[string]int{}, partitions: partitions}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	host := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "timed-" + strings.Fields(store)[0], AppPort: ln.Addr().(*net.TCPAddr).Port,
		Sentry: sentry, ResourcesDir: resources,
		Args: append([]string{"--log-level", "info", "--placement-host-address", place}, args...)})
	defer host.Stop()
	waitHostReady(t, host)

	// Due times: a window of n/1000 s (1,000 reminders a second) that
	// begins once the creations are expected to be over; creations are
	// timed first on a probe so the window is not reached while creating.
	const workers = 16
	c := newBenchClient(workers)
	create := func(id string, due time.Time) error {
		body := fmt.Sprintf(`{"dueTime":%q,"data":%q}`, due.UTC().Format(time.RFC3339Nano), due.UTC().Format(time.RFC3339Nano))
		resp, err := c.Post(fmt.Sprintf("%s/v1.0/actors/timed/%s/reminders/r", host.HTTPURL(), id), "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("create reminder: %d %s", resp.StatusCode, b)
		}
		return nil
	}
	window := time.Duration(n) * time.Millisecond
	// Creating all of them must end before the first is due: allow 5
	// minutes, generously, and start the window after the last creation.
	far := time.Now().Add(time.Hour)
	cpu := NewProcCPU()
	var floor time.Duration
	var floorErr error
	if sched != nil {
		floor, floorErr = etcdFloor(sched.etcd, n, workers)
		t.Logf("%s: floor: %d puts into the scheduler's etcd in %s (%v)", store, n, floor.Round(time.Millisecond), floorErr)
	}
	cpuBefore, _ := cpu.CPU(host.PID())
	var schedBefore time.Duration
	if sched != nil {
		schedBefore, _ = cpu.CPU(sched.pid)
	}
	regStart := time.Now()
	var next atomic.Int64
	var errs atomic.Int64
	var firstErr atomic.Value
	ids := make([]string, n)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ids[i] = fmt.Sprintf("a-%d", i)
				// Created far in the future first; moved into the window
				// below, once all exist (an update is a re-creation).
				if err := create(ids[i], far.Add(time.Duration(i)*time.Millisecond)); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	wg.Wait()
	run := reminderRun{Store: store, N: n, Register: time.Since(regStart), CreateErrs: errs.Load(), Window: window, Floor: floor}
	if floorErr != nil {
		run.FloorErr = floorErr.Error()
	}
	t.Logf("%s: %d reminders created in %s (%d errors)", store, n, run.Register.Round(time.Millisecond), run.CreateErrs)
	// Now the measured part: re-create each due in the window, the
	// window starting after the re-creation is expected to finish (the
	// first creation's pace, plus 5 s).
	begin := time.Now().Add(run.Register + 5*time.Second)
	next.Store(0)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				due := begin.Add(window * time.Duration(i) / time.Duration(n))
				if err := create(ids[i], due); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		})
	}
	wg.Wait()
	if late := time.Since(begin); late > 0 {
		t.Logf("%s: re-creating ended %s after the window began: the first reminders were created late", store, late.Round(time.Millisecond))
	}
	deadline := begin.Add(window + 60*time.Second)
	for app.count() < n && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // duplicates arriving late
	cpuAfter, _ := cpu.CPU(host.PID())
	app.mu.Lock()
	run.Lag = summarize(slices.Clone(app.lags))
	run.Fired = len(app.lags)
	app.mu.Unlock()
	run.Dupes = app.dupes.Load()
	run.CreateErrs = errs.Load()
	if v := firstErr.Load(); v != nil {
		run.FirstErr = v.(string)
	}
	run.SidecarCPU = cpuAfter - cpuBefore
	if sched != nil {
		schedAfter, _ := cpu.CPU(sched.pid)
		run.SchedulerCPU = schedAfter - schedBefore
	}
	t.Logf("%s: %d of %d fired (%d twice), lag p50 %.1f ms p99 %.1f ms max %.1f ms", store, run.Fired, n, run.Dupes, ms(run.Lag.P50), ms(run.Lag.P99), ms(run.Lag.Max))
	return run
}

// etcdFloor puts n values of a reminder job's size into etcd at addr
// from workers clients, one key each, and returns how long it took.
func etcdFloor(addr string, n, workers int) (time.Duration, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	val := strings.Repeat("x", 400)
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if _, err := cli.Put(ctx, fmt.Sprintf("bench/floor/%d", i), val); err != nil {
					first.CompareAndSwap(nil, err)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	if v := first.Load(); v != nil {
		return d, v.(error)
	}
	// Leave the scheduler's etcd as it was.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = cli.Delete(ctx, "bench/floor/", clientv3.WithPrefix())
	return d, err
}

// waitHostReady waits for the sidecar's placement connection.
func waitHostReady(t *testing.T, s *framework.Sidecar) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.HTTPURL() + "/v1.0/metadata")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `"hostReady":true`) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("sidecar %s: actor host not ready\n%s", s.AppID, s.Output())
}

type actorReport struct {
	Machine                   Machine
	Commit                    string
	Date                      time.Time
	Set                       Settings
	UptimeBefore, UptimeAfter string
	Calls                     []callRun
	Memory                    []SidecarMem
	Activation                []namedStats
	Reminders                 []reminderRun
}

func (r *actorReport) find(name string) (callRun, bool) {
	for _, c := range r.Calls {
		if c.Name == name {
			return c, true
		}
	}
	return callRun{}, false
}

func (r *actorReport) markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# Actor benchmark\n\n")
	fmt.Fprintf(&b, "```sh\nTANDEM_BENCH=1 go test ./test/bench -run TestActorsLoad -v -timeout 30m\n```\n\n")
	fmt.Fprintf(&b, "- date: %s\n- commit: %s\n", r.Date.UTC().Format("2006-01-02 15:04 UTC"), r.Commit)
	fmt.Fprintf(&b, "- machine: %d CPUs (%s), GOMAXPROCS %d, kernel %s, %s\n", m.NProc, m.CPUModel, m.GOMAXPROCS, m.Kernel, m.GoVersion)
	fmt.Fprintf(&b, "- `uptime` before: %s\n- `uptime` after: %s\n", r.UptimeBefore, r.UptimeAfter)
	fmt.Fprintf(&b, "- the load generator, both sidecars, sentry, placement, the scheduler and the app share these CPUs; the `uptime` lines say whether other work shared them too (with a load average before the run above the CPU count, every figure is inflated by waiting for a CPU, latencies most of all)\n")
	fmt.Fprintf(&b, "- load: %d workers, one keep-alive HTTP/1.1 connection each, %d-byte bodies echoed; fixed rate %.0f calls/s spread over the workers (a late answer delays that worker's next calls), max rate = each worker sends its next call when the previous one returned; %s per run after %s warm-up of each path\n",
		r.Set.Connections, r.Set.PayloadBytes, r.Set.FixedQPS, r.Set.Run, r.Set.Warmup)
	fmt.Fprintf(&b, "- processes: sentry, Tandem's placement (one replica), the echo app (`test/bench/echoapp --actor-types bench`), **callee** tandemd (the app, hosts type `bench`) and **caller** tandemd (no app), both with mTLS from sentry, log level info\n")
	fmt.Fprintf(&b, "- paths: **invocation** = `POST caller/v1.0/invoke/callee/method/echo` (caller → CallLocal over mTLS → callee → app); **actor call** = `POST caller/v1.0/actors/bench/w-<worker>/method/echo` (caller → placement table lookup → CallActor over mTLS → callee → turn lock → `PUT /actors/bench/w-<worker>/method/echo` on the app); each worker calls its own actor, so no call waits for another's turn\n\n")

	fmt.Fprintf(&b, "## Targets (issue 11)\n\n| figure | Tandem | target | met |\n|---|---|---|---|\n")
	met := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	for _, rate := range []string{"fixed rate", "max rate"} {
		inv, ok1 := r.find("invocation, " + rate)
		act, ok2 := r.find("actor call, " + rate)
		if !ok1 || !ok2 {
			continue
		}
		ic, ac := inv.perCall(inv.SidecarCPU[0]+inv.SidecarCPU[1]), act.perCall(act.SidecarCPU[0]+act.SidecarCPU[1])
		ratio := float64(ac) / float64(ic)
		fmt.Fprintf(&b, "| sidecar CPU per actor call ÷ per invocation (%s) | %.2f× (%.1f / %.1f µs) | ≤ 1.2× | %s |\n", rate, ratio, us(ac), us(ic), met(ratio <= 1.2))
		if rate == "fixed rate" {
			fmt.Fprintf(&b, "| actor call p99 at %.0f calls/s | %.3f ms | ≤ 2 ms | %s |\n", r.Set.FixedQPS, ms(act.Stats.P99), met(act.Stats.P99 <= 2*time.Millisecond))
		}
	}
	for _, rr := range r.Reminders {
		fmt.Fprintf(&b, "| reminder lag p99, %d reminders, %s | %.1f ms | ≤ 100 ms (10,000) | %s |\n", rr.N, rr.Store, ms(rr.Lag.P99),
			met(rr.N >= 10000 && rr.Lag.P99 <= 100*time.Millisecond && rr.Fired == rr.N && rr.Dupes == 0))
	}

	fmt.Fprintf(&b, "\n## Calls\n\n| path | target rate | calls/s | calls | errors | p50 ms | p90 ms | p99 ms | max ms | caller CPU µs/call | callee CPU µs/call | both sidecars µs/call | app µs/call |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.Calls {
		fmt.Fprintf(&b, "| %s | %s | %.0f | %d | %d | %.3f | %.3f | %.3f | %.3f | %.1f | %.1f | %.1f | %.1f |\n", c.Name, qpsLabel(c.TargetQPS), c.Stats.Rate(), c.Stats.Ops, c.Stats.Errors,
			ms(c.Stats.P50), ms(c.Stats.P90), ms(c.Stats.P99), ms(c.Stats.Max),
			us(c.perCall(c.SidecarCPU[0])), us(c.perCall(c.SidecarCPU[1])), us(c.perCall(c.SidecarCPU[0]+c.SidecarCPU[1])), us(c.perCall(c.AppCPU)))
	}
	for _, c := range r.Calls {
		if c.Stats.FirstErr != "" {
			fmt.Fprintf(&b, "\nfirst error of %s: `%s`\n", c.Name, c.Stats.FirstErr)
		}
	}
	fmt.Fprintf(&b, "\nSidecar memory after the call runs: ")
	for _, mm := range r.Memory {
		fmt.Fprintf(&b, "%s VmRSS %s (peak %s); ", mm.Name, mib(mm.AfterLoad), mib(mm.HWM))
	}
	fmt.Fprintf(&b, "\n\n## Activation\n\nOne call at a time from the caller sidecar; \"activating\" calls each go to an actor ID never called before (the owner creates its turn lock and calls the app; the app keeps no state, so this is the sidecars' cost of a new actor).\n\n| calls | n | errors | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|\n")
	for _, a := range r.Activation {
		fmt.Fprintf(&b, "| %s | %d | %d | %.3f | %.3f | %.3f | %.3f |\n", a.Name, a.Ops, a.Errors, ms(a.P50), ms(a.P90), ms(a.P99), ms(a.Max))
	}
	fmt.Fprintf(&b, "\n## Reminder firing lag\n\nOne host sidecar (type `timed`, mTLS, placement) and an app in the test process that records when each callback arrives. N one-shot reminders on N actors are created with 16 concurrent clients, first due in an hour, then re-created with due times spread evenly over a window of N ms (1,000 due per second) that begins after the re-creation is over; each carries its due time as data. Lag = callback received − due time (one clock). \"twice\" counts callbacks of a reminder after its first.\n\n| store | reminders | first creation took | creations/s | floor: etcd puts/s | create errors | fired | twice | lag p50 ms | p90 ms | p99 ms | max ms | host sidecar CPU (whole test) | scheduler CPU (whole test) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, rr := range r.Reminders {
		floor, schedCPU := "–", "–"
		if rr.Floor > 0 {
			floor = fmt.Sprintf("%.0f", float64(rr.N)/rr.Floor.Seconds())
			schedCPU = rr.SchedulerCPU.Round(time.Millisecond).String()
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %.0f | %s | %d | %d | %d | %.1f | %.1f | %.1f | %.1f | %s | %s |\n", rr.Store, rr.N, rr.Register.Round(time.Millisecond),
			float64(rr.N)/rr.Register.Seconds(), floor, rr.CreateErrs, rr.Fired, rr.Dupes,
			ms(rr.Lag.P50), ms(rr.Lag.P90), ms(rr.Lag.P99), ms(rr.Lag.Max), rr.SidecarCPU.Round(time.Millisecond), schedCPU)
	}
	for _, rr := range r.Reminders {
		if rr.FloorErr != "" {
			fmt.Fprintf(&b, "\nfloor error (%s): `%s`\n", rr.Store, rr.FloorErr)
		}
	}
	for _, rr := range r.Reminders {
		if rr.FirstErr != "" {
			fmt.Fprintf(&b, "\nfirst creation error (%s): `%s`\n", rr.Store, rr.FirstErr)
		}
	}
	return b.String()
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
