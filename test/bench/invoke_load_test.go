package bench

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fortio.org/fortio/fhttp"
	"fortio.org/fortio/periodic"
	flog "fortio.org/log"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestInvokeLoad is the invocation load harness of issue 2: in one run it
// measures a direct call to the echo app against the same call through two
// sidecars with mTLS, and writes results/invoke.md.
func TestInvokeLoad(t *testing.T) {
	if os.Getenv("TANDEM_BENCH") != "1" {
		t.Skip("load benchmark: run it with TANDEM_BENCH=1 go test ./test/bench -run TestInvokeLoad -v -timeout 20m (see test/bench/README.md)")
	}
	set := settingsFromEnv(t)
	bins := benchBinaries(t)
	flog.SetLogLevelQuiet(flog.Warning)

	h := &harness{t: t, set: set, cpu: NewProcCPU(), payload: payload(set.PayloadBytes)}
	sentry := framework.StartSentry(t, bins, framework.SentryOptions{})
	registry := filepath.Join(t.TempDir(), "registry.db")
	app := framework.StartApp(t, "echo app", buildEchoApp(t, bins), "APP_ID=callee")
	// The framework starts sidecars at debug level; the last flag wins.
	args := []string{"--log-level", "info", "--config", writeConfig(t, registry)}
	callee := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "callee", AppPort: app.Port, Sentry: sentry, Args: args,
	})
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "caller", Sentry: sentry, Args: args,
	})
	h.sidecarPIDs = []int{caller.PID(), callee.PID()}
	h.appPID = app.PID()

	rep := &Report{Date: time.Now(), Commit: commit(), Machine: machine(), Settings: set}
	for i, name := range []string{"caller", "callee"} {
		m, err := ReadMem(h.sidecarPIDs[i])
		if err != nil {
			t.Fatal(err)
		}
		rep.Memory = append(rep.Memory, SidecarMem{Name: name, Idle: m.RSS, IdleFile: m.File, IdleAnon: m.Anon})
	}

	direct := fmt.Sprintf("http://127.0.0.1:%d/echo", app.Port)
	via := caller.HTTPURL() + "/v1.0/invoke/callee/method/echo"
	h.waitEcho(direct)
	h.waitEcho(via)

	// Warm-up, interleaved, then the measured runs, interleaved.
	h.load(direct, -1, false, set.Warmup)
	h.load(via, -1, false, set.Warmup)
	rep.Runs = append(rep.Runs,
		h.measure("direct, fixed rate", direct, false, set.FixedQPS, false, nil),
		h.measure("sidecars, fixed rate", via, true, set.FixedQPS, false, nil),
		h.measure("direct, fixed rate, staggered", direct, false, set.FixedQPS, true, nil),
		h.measure("sidecars, fixed rate, staggered", via, true, set.FixedQPS, true, nil),
		h.measure("direct, max rate", direct, false, -1, false, nil),
		h.measure("sidecars, max rate", via, true, -1, false, rep.Memory),
	)
	for i := range rep.Memory {
		m, err := ReadMem(h.sidecarPIDs[i])
		if err != nil {
			t.Fatal(err)
		}
		rep.Memory[i].HWM, rep.Memory[i].AfterLoad = m.HWM, m.RSS
	}
	if os.Getenv("TANDEM_BENCH_PERF") == "1" {
		rep.Profile = h.profile(via)
	}
	if os.Getenv("TANDEM_BENCH_FLOOR") != "0" {
		rep.Floor = h.floor(bins, app.Port)
	}
	if daprd := daprdForBench(t); daprd != "" {
		rep.Dapr = h.dapr(bins, daprd, sentry, app.Port)
	}

	rep.ColdOutbound, rep.ColdHealthz = coldStarts(t, bins, sentry, registry, app.Port, set.ColdStarts)
	rep.BinaryBytes, rep.PlainBytes = binarySizes(t, bins)

	md := rep.Markdown()
	t.Logf("\n%s", md)
	out := os.Getenv("TANDEM_BENCH_OUT")
	if out == "" {
		out = filepath.Join("results", "invoke.md")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		t.Fatalf("write %s: %v", out, err)
	}
	t.Logf("wrote %s", out)
	for _, run := range rep.Runs {
		if run.Errors > 0 {
			t.Errorf("%s: %d of %d requests failed", run.Name, run.Errors, run.Requests)
		}
	}
}

// benchBinaries builds the binaries (stopped and removed when the test
// ends, after its processes) and, for A/B comparisons, puts
// TANDEM_BENCH_TANDEMD (a tandemd built elsewhere, another commit, or a
// wrapper script that sets GOGC or GOMAXPROCS and execs one) in the place
// of the tandemd built from the tree.
func benchBinaries(t *testing.T) *framework.Binaries {
	t.Helper()
	bins, err := framework.Build()
	if err != nil {
		t.Fatalf("build the binaries: %v", err)
	}
	t.Cleanup(framework.Cleanup) // runs last: processes are stopped first
	if alt := os.Getenv("TANDEM_BENCH_TANDEMD"); alt != "" {
		if _, err := os.Stat(alt); err != nil {
			t.Fatalf("TANDEM_BENCH_TANDEMD: %v", err)
		}
		b := *bins
		b.Tandemd = alt
		bins = &b
	}
	return bins
}

// floor measures the same load (staggered fixed rate, then max rate)
// through two minimal relays in series (test/bench/relay), first copying
// TCP bytes, then as net/http reverse proxies: what two extra hops cost
// here before any sidecar work. Their CPU is reported in the sidecars'
// column.
func (h *harness) floor(bins *framework.Binaries, appPort int) []Run {
	h.t.Helper()
	saved := h.sidecarPIDs
	defer func() { h.sidecarPIDs = saved }()
	var runs []Run
	for _, mode := range []string{"tcp", "http"} {
		to, pids := startRelays(h.t, bins, mode, fmt.Sprintf("127.0.0.1:%d", appPort))
		url := "http://" + to + "/echo"
		h.waitEcho(url)
		h.load(url, -1, false, h.set.Warmup)
		h.sidecarPIDs = pids
		runs = append(runs,
			h.measure("floor: 2 "+mode+" relays, fixed rate, staggered", url, true, h.set.FixedQPS, true, nil),
			h.measure("floor: 2 "+mode+" relays, max rate", url, true, -1, false, nil))
	}
	return runs
}

// startRelays builds test/bench/relay (once per set of binaries) and
// starts two of it in series in mode (tcp or http) in front of to; it
// returns the first relay's address and both relays' process IDs (first,
// second).
func startRelays(t *testing.T, bins *framework.Binaries, mode, to string) (string, []int) {
	t.Helper()
	relayBin := filepath.Join(bins.Dir, "benchrelay")
	if _, err := os.Stat(relayBin); err != nil {
		cmd := exec.Command("go", "build", "-o", relayBin, "./test/bench/relay")
		cmd.Dir = framework.RepoRoot()
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build test/bench/relay: %v\n%s", err, b)
		}
	}
	var pids []int
	for _, hop := range []string{"second", "first"} {
		port := framework.FreePort(t)
		p := framework.Start(t, mode+" relay "+hop, relayBin,
			[]string{"-mode", mode, "-listen", fmt.Sprintf("127.0.0.1:%d", port), "-to", to})
		if err := framework.WaitTCP(fmt.Sprintf("127.0.0.1:%d", port), 15*time.Second); err != nil {
			t.Fatalf("%s relay: %v\n%s", mode, err, p.Output())
		}
		pids = append([]int{p.PID()}, pids...)
		to = fmt.Sprintf("127.0.0.1:%d", port)
	}
	return to, pids
}

// daprdForBench is the daprd 1.18.2 that scripts/build-daprd.sh builds
// (or TANDEM_DAPRD), or "" with a note in the log when there is none: the
// comparison with Dapr is then left out of the report.
func daprdForBench(t *testing.T) string {
	path, err := daprdPath()
	if err != nil {
		t.Logf("%v: the report has no Dapr rows", err)
		return ""
	}
	return path
}

// daprdPath is TANDEM_DAPRD, or the daprd 1.18.2 that
// scripts/build-daprd.sh builds; an error says how to get one.
func daprdPath() (string, error) {
	path := os.Getenv("TANDEM_DAPRD")
	if path == "" {
		home, _ := os.UserHomeDir()
		path = filepath.Join(home, ".cache", "tandem", "daprd-1.18.2")
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("no daprd at %s: run scripts/build-daprd.sh (or set TANDEM_DAPRD)", path)
	}
	return path, nil
}

// dapr measures the same load (staggered fixed rate, max rate) through two
// real daprd with certificates from our sentry: client → caller daprd →
// mTLS gRPC → callee daprd → the same echo app. They find each other over
// mDNS, daprd's default name resolution.
func (h *harness) dapr(bins *framework.Binaries, daprd string, sentry *framework.Sentry, appPort int) []Run {
	h.t.Helper()
	caller, callee := startDaprdPair(h.t, bins, daprd, sentry, appPort, "http")
	saved := h.sidecarPIDs
	defer func() { h.sidecarPIDs = saved }()
	h.sidecarPIDs = []int{caller.PID(), callee.PID()}
	url := caller.HTTPURL() + "/v1.0/invoke/dcallee/method/echo"
	h.waitEcho(url)
	h.load(url, -1, false, h.set.Warmup)
	runs := []Run{
		h.measure("dapr: 2 daprd, fixed rate, staggered", url, true, h.set.FixedQPS, true, nil),
		h.measure("dapr: 2 daprd, max rate", url, true, -1, false, nil),
	}
	caller.Stop()
	callee.Stop()
	return runs
}

// startDaprdPair starts two daprd (no placement or scheduler) with
// certificates from sentry: dcallee in front of the app at appPort
// speaking appProtocol, and dcaller with no app. They find each other
// over mDNS, daprd's default name resolution.
func startDaprdPair(t *testing.T, bins *framework.Binaries, daprd string, sentry *framework.Sentry, appPort int, appProtocol string) (caller, callee *framework.Sidecar) {
	t.Helper()
	args := []string{"--log-level", "warn", "--placement-host-address", "", "--scheduler-host-address", ""}
	callee = framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "dcallee", AppPort: appPort, AppProtocol: appProtocol, Sentry: sentry, Binary: daprd, Args: args,
	})
	caller = framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "dcaller", Sentry: sentry, Binary: daprd, Args: args,
	})
	return caller, callee
}

// buildEchoApp builds test/bench/echoapp next to the other binaries.
func buildEchoApp(t *testing.T, bins *framework.Binaries) string {
	t.Helper()
	out := filepath.Join(bins.Dir, "benchecho")
	cmd := exec.Command("go", "build", "-o", out, "./test/bench/echoapp")
	cmd.Dir = framework.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build test/bench/echoapp: %v\n%s", err, b)
	}
	return out
}

// writeConfig writes a Configuration with sqlite name resolution on
// registry and the resolver's default timings.
func writeConfig(t *testing.T, registry string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: bench
spec:
  nameResolution:
    component: sqlite
    configuration:
      connectionString: %q
`, registry)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// settingsFromEnv reads the TANDEM_BENCH_* knobs.
func settingsFromEnv(t *testing.T) Settings {
	num := func(name string, def float64) float64 {
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
	secs := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	return Settings{
		Run:          secs(num("TANDEM_BENCH_SECONDS", 10)),
		Warmup:       secs(num("TANDEM_BENCH_WARMUP_SECONDS", 3)),
		Connections:  int(num("TANDEM_BENCH_CONNECTIONS", 16)),
		PayloadBytes: int(num("TANDEM_BENCH_PAYLOAD_BYTES", 1024)),
		FixedQPS:     num("TANDEM_BENCH_QPS", 1000),
		ColdStarts:   int(num("TANDEM_BENCH_COLD_STARTS", 10)),
	}
}

func payload(n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[i%len(alphabet)]
	}
	return b
}

type harness struct {
	t           *testing.T
	set         Settings
	cpu         ProcCPU
	payload     []byte
	sidecarPIDs []int // caller, callee
	appPID      int
}

// waitEcho retries one call until it echoes the payload (the callee may
// take a moment to appear in the name registry).
func (h *harness) waitEcho(url string) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Post(url, "application/octet-stream", bytes.NewReader(h.payload))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Equal(body, h.payload) {
				return
			}
			last = fmt.Sprintf("status %d, %d bytes: %.200s", resp.StatusCode, len(body), body)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.t.Fatalf("POST %s does not echo the body (last: %s)", url, last)
}

// load runs fortio against url; qps <= 0 is max rate. staggered spreads the
// connections' requests evenly (fortio -uniform).
func (h *harness) load(url string, qps float64, staggered bool, d time.Duration) *fhttp.HTTPRunnerResults {
	h.t.Helper()
	res, err := h.run(url, qps, staggered, d)
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

// run is load without the test: it may be called from any goroutine.
func (h *harness) run(url string, qps float64, staggered bool, d time.Duration) (*fhttp.HTTPRunnerResults, error) {
	if qps <= 0 {
		qps = -1
	}
	o := &fhttp.HTTPRunnerOptions{
		RunnerOptions: periodic.RunnerOptions{
			QPS:         qps,
			Duration:    d,
			NumThreads:  h.set.Connections,
			Percentiles: []float64{50, 90, 99},
			// 10 µs buckets at the low end: the default 1 ms would blur
			// sub-millisecond latencies.
			Resolution: 0.00001,
			// fortio's default (what Dapr's perf tests use) lets the 16
			// connections fire together, so a fixed rate arrives in bursts.
			Uniform: staggered,
			Out:     io.Discard,
		},
		HTTPOptions: fhttp.HTTPOptions{
			URL:            url,
			Payload:        h.payload,
			ContentType:    "application/octet-stream",
			HTTPReqTimeOut: 10 * time.Second,
		},
	}
	res, err := fhttp.RunHTTPTest(o)
	if err != nil {
		return nil, fmt.Errorf("fortio %s: %w", url, err)
	}
	return res, nil
}

// measure runs one measured load and reads the processes' CPU around it.
// With mem set, it also samples the sidecars' VmRSS into mem[i].LoadPeak.
func (h *harness) measure(name, url string, sidecars bool, qps float64, staggered bool, mem []SidecarMem) Run {
	h.t.Helper()
	pids := append([]int{h.appPID}, h.sidecarPIDs...)
	before := h.cpus(pids)
	clientBefore := selfCPU()
	var sampler *RSSSampler
	if mem != nil {
		sampler = StartRSSSampler(50*time.Millisecond, h.sidecarPIDs...)
	}
	res := h.load(url, qps, staggered, h.set.Run)
	clientAfter := selfCPU()
	after := h.cpus(pids)
	if sampler != nil {
		for i, v := range sampler.Stop() {
			mem[i].LoadPeak = v
		}
		for i, v := range sampler.AnonPeaks() {
			mem[i].LoadAnon = v
		}
	}
	hist := res.DurationHistogram
	run := Run{
		Name:      name,
		Sidecars:  sidecars,
		TargetQPS: qps,
		Staggered: staggered,
		Duration:  res.ActualDuration,
		Requests:  hist.Count,
		Errors:    hist.Count - res.RetCodes[http.StatusOK],
		QPS:       res.ActualQPS,
		Max:       secs(hist.Max),
		AppCPU:    after[0] - before[0],
		ClientCPU: clientAfter - clientBefore,
	}
	for _, p := range hist.Percentiles {
		switch p.Percentile {
		case 50:
			run.P50 = secs(p.Value)
		case 90:
			run.P90 = secs(p.Value)
		case 99:
			run.P99 = secs(p.Value)
		}
	}
	if sidecars {
		for i := range h.sidecarPIDs {
			run.SidecarCPU = append(run.SidecarCPU, after[i+1]-before[i+1])
		}
	}
	h.t.Logf("%s: %.0f qps, %d requests, %d errors, p50 %.3f ms, p99 %.3f ms",
		name, run.QPS, run.Requests, run.Errors, ms(run.P50), ms(run.P99))
	return run
}

func (h *harness) cpus(pids []int) []time.Duration {
	h.t.Helper()
	out := make([]time.Duration, len(pids))
	for i, pid := range pids {
		d, err := h.cpu.CPU(pid)
		if err != nil {
			h.t.Fatal(err)
		}
		out[i] = d
	}
	return out
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// profile runs an extra max-rate load through the sidecars under perf and
// returns the top functions of both sidecars. It is not part of the
// measured runs, so perf's overhead does not touch the figures.
func (h *harness) profile(url string) string {
	h.t.Helper()
	if _, err := exec.LookPath("perf"); err != nil {
		return "perf is not installed: " + err.Error()
	}
	// TANDEM_BENCH_PERF_DATA keeps perf's data for perf report.
	data := cmp.Or(os.Getenv("TANDEM_BENCH_PERF_DATA"), filepath.Join(h.t.TempDir(), "perf.data"))
	// TANDEM_BENCH_PERF_QPS profiles a staggered fixed rate instead.
	qps, _ := strconv.ParseFloat(os.Getenv("TANDEM_BENCH_PERF_QPS"), 64)
	pids := make([]string, len(h.sidecarPIDs))
	for i, pid := range h.sidecarPIDs {
		pids[i] = strconv.Itoa(pid)
	}
	d := h.set.Run
	window := strconv.FormatFloat(d.Seconds(), 'f', 1, 64)
	var wg sync.WaitGroup
	var res *fhttp.HTTPRunnerResults
	var loadErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		res, loadErr = h.run(url, qps, qps > 0, d+time.Second)
	}()
	time.Sleep(500 * time.Millisecond)
	// perf stat per sidecar counts syscalls and context switches in the
	// same window as the CPU profile.
	stats := make([]*exec.Cmd, len(pids))
	statOut := make([]*bytes.Buffer, len(pids))
	for i, pid := range pids {
		statOut[i] = new(bytes.Buffer)
		stats[i] = exec.Command("perf", "stat", "-x", ",", "-e", "context-switches,raw_syscalls:sys_enter", "-p", pid, "--", "sleep", window)
		stats[i].Stdout, stats[i].Stderr = statOut[i], statOut[i]
		if err := stats[i].Start(); err != nil {
			stats[i] = nil
		}
	}
	rec := exec.Command("perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-p", strings.Join(pids, ","),
		"-o", data, "--", "sleep", window)
	recOut, recErr := rec.CombinedOutput()
	for _, c := range stats {
		if c != nil {
			_ = c.Wait()
		}
	}
	wg.Wait()
	if loadErr != nil {
		return "load for the profile failed: " + loadErr.Error()
	}
	if recErr != nil {
		return fmt.Sprintf("perf record failed: %v\n%s", recErr, recOut)
	}
	var counts strings.Builder
	requests := res.ActualQPS * d.Seconds()
	fmt.Fprintf(&counts, "# per request (perf stat over %s at ~%.0f qps, ~%.0f requests; perf's own overhead included)\n", d, res.ActualQPS, requests)
	for i, name := range []string{"caller", "callee"} {
		fmt.Fprintf(&counts, "%s:", name)
		for _, line := range strings.Split(statOut[i].String(), "\n") {
			f := strings.Split(line, ",")
			if len(f) < 3 {
				continue
			}
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil || requests == 0 {
				continue
			}
			fmt.Fprintf(&counts, " %.1f %s", v/requests, f[2])
		}
		counts.WriteString("\n")
	}
	report := func(top int, args ...string) string {
		cmd := exec.Command("perf", append([]string{"report", "-i", data, "--stdio", "-g", "none"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			return fmt.Sprintf("perf report %v failed: %v", args, err)
		}
		var keep []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue
			}
			if keep = append(keep, line); len(keep) == top {
				break
			}
		}
		return strings.Join(keep, "\n")
	}
	return counts.String() + "\n# kernel vs sidecar code (self time)\n" + report(5, "--no-children", "--sort", "dso") +
		"\n\n# top functions, self time\n" + report(30, "--no-children", "--sort", "sym") +
		"\n\n# top functions including callees (children, self)\n" + report(60, "--children", "--sort", "sym") + "\n"
}

// coldStarts starts tandemd n times (mTLS with sentry, sqlite registry, the
// echo app already listening) and times exec → first 204 of
// /v1.0/healthz/outbound and of /v1.0/healthz.
func coldStarts(t *testing.T, bins *framework.Binaries, sentry *framework.Sentry, registry string, appPort, n int) (outbound, healthz []time.Duration) {
	t.Helper()
	if n == 0 {
		return nil, nil
	}
	cfg := writeConfig(t, registry)
	env := append(os.Environ(), "DAPR_HOST_IP=127.0.0.1", "DAPR_TRUST_ANCHORS="+sentry.TrustAnchors(t))
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	// One unmeasured start first, so every measured start finds the binary
	// in the page cache.
	for i := -1; i < n; i++ {
		port := framework.FreePort(t)
		args := []string{
			"--app-id", "coldstart", "--app-port", strconv.Itoa(appPort),
			"--dapr-http-port", strconv.Itoa(port),
			"--dapr-grpc-port", strconv.Itoa(framework.FreePort(t)),
			"--dapr-internal-grpc-port", strconv.Itoa(framework.FreePort(t)),
			"--metrics-port", strconv.Itoa(framework.FreePort(t)),
			"--dapr-listen-addresses", "127.0.0.1",
			"--config", cfg,
			"--enable-mtls", "--sentry-address", sentry.Addr, "--control-plane-trust-domain", sentry.TrustDomain,
		}
		var out bytes.Buffer
		cmd := exec.Command(bins.Tandemd, args...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		base := fmt.Sprintf("http://127.0.0.1:%d/v1.0/healthz", port)
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatalf("start tandemd: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var tOut, tHealth time.Duration
		deadline := start.Add(15 * time.Second)
		for (tOut == 0 || tHealth == 0) && time.Now().Before(deadline) {
			select {
			case err := <-exited:
				t.Fatalf("tandemd exited during a cold start: %v\n%s", err, out.String())
			default:
			}
			if tOut == 0 && status(client, base+"/outbound") == http.StatusNoContent {
				tOut = time.Since(start)
			}
			if tHealth == 0 && status(client, base) == http.StatusNoContent {
				tHealth = time.Since(start)
			}
			time.Sleep(500 * time.Microsecond)
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if tOut == 0 || tHealth == 0 {
			t.Fatalf("cold start %d: tandemd not healthy after 15 s (outbound %v, healthz %v)\n%s", i, tOut, tHealth, out.String())
		}
		if os.Getenv("TANDEM_BENCH_COLD_LOG") == "1" {
			// Phase timings: the log's timestamps against exec time.
			t.Logf("cold start %d: exec at %s, outbound after %v, healthz after %v; log:\n%s",
				i, start.Format("15:04:05.000"), tOut, tHealth, out.String())
		}
		if i >= 0 {
			outbound = append(outbound, tOut)
			healthz = append(healthz, tHealth)
		}
	}
	return outbound, healthz
}

func status(c *http.Client, url string) int {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// binarySizes returns the size of the tandemd the harness ran (a release
// build: framework.ReleaseFlags) and of one built by a bare `go build`
// (0 if that build fails).
func binarySizes(t *testing.T, bins *framework.Binaries) (release, plain int64) {
	t.Helper()
	fi, err := os.Stat(bins.Tandemd)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "tandemd-plain")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/tandemd")
	cmd.Dir = framework.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Logf("plain build failed (size left out): %v\n%s", err, b)
		return fi.Size(), 0
	}
	sfi, err := os.Stat(out)
	if err != nil {
		return fi.Size(), 0
	}
	return fi.Size(), sfi.Size()
}

func machine() Machine {
	m := Machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPUModel: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func commit() string {
	root := framework.RepoRoot()
	head, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(head))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += " (working tree has uncommitted changes)"
	}
	return c
}
