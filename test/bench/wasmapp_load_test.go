package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fortio.org/fortio/fhttp"
	flog "fortio.org/log"

	"github.com/tandemrun/tandem/internal/wasmguest/wasmguesttest"
	"github.com/tandemrun/tandem/proxy/wasmhost"
	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestWasmAppLoad compares, in one run, test/apps/wasmapp's echo handler
// hosted in the sidecar (--app-wasm) with the same handler built natively
// as a process app behind its sidecar (--app-port), and the echo of
// test/apps/wasmlean, the same app on the lean ABI (wasmapp/lean), hosted
// in a third sidecar: p50 and CPU per request (app and sidecar together)
// at the fixed rate and at max rate. It then times each Wasm app's cold
// start (compile, compile from the folder cache, first request) and the
// memory of an idle instance, in this process. Report: results/wasm-app.md (TANDEM_BENCH_WASM_OUT).
//
//	TANDEM_BENCH=1 go test ./test/bench -run TestWasmAppLoad -v -timeout 20m
func TestWasmAppLoad(t *testing.T) {
	if os.Getenv("TANDEM_BENCH") != "1" {
		t.Skip("load benchmark: run it with TANDEM_BENCH=1 go test ./test/bench -run TestWasmAppLoad -v -timeout 20m (see test/bench/README.md)")
	}
	set := settingsFromEnv(t)
	bins := benchBinaries(t)
	flog.SetLogLevelQuiet(flog.Warning)
	module := wasmguesttest.Build(t, "github.com/tandemrun/tandem/test/apps/wasmapp", true)
	leanModule := wasmguesttest.Build(t, "github.com/tandemrun/tandem/test/apps/wasmlean", true)
	native := buildTestApp(t, bins.Dir)

	h := &harness{t: t, set: set, cpu: NewProcCPU(), payload: payload(set.PayloadBytes)}
	args := []string{"--log-level", "warn", "--app-wasm-cache-dir", t.TempDir()}
	procPort := framework.FreePort(t)
	app := framework.Start(t, "process app", native, nil, fmt.Sprintf("APP_PORT=%d", procPort))
	if err := framework.WaitTCP(fmt.Sprintf("127.0.0.1:%d", procPort), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	proc := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "proc", AppPort: procPort, Args: args})
	wasm := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "wasm", NoWait: true, Args: append(args, "--app-wasm", module)})
	lean := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "lean", NoWait: true, Args: append(args, "--app-wasm", leanModule)})
	for _, sc := range []*framework.Sidecar{wasm, lean} {
		if err := framework.WaitHTTP(context.Background(), sc.HTTPURL()+"/v1.0/healthz", 204, 5*time.Minute); err != nil {
			t.Fatalf("wasm sidecar: %v\n%s", err, sc.Output())
		}
	}
	direct := fmt.Sprintf("http://127.0.0.1:%d/echo", procPort)
	viaProc := proc.HTTPURL() + "/v1.0/invoke/proc/method/echo"
	viaWasm := wasm.HTTPURL() + "/v1.0/invoke/wasm/method/echo"
	viaLean := lean.HTTPURL() + "/v1.0/invoke/lean/method/echo"
	for _, u := range []string{direct, viaProc, viaWasm, viaLean} {
		h.waitEcho(u)
		h.load(u, -1, false, set.Warmup)
	}
	type row struct {
		name string
		qps  float64
		res  *fhttp.HTTPRunnerResults
		cpu  time.Duration // app and sidecar
	}
	var rows []row
	measure := func(name, url string, qps float64, pids ...int) {
		before := h.cpus(pids)
		res := h.load(url, qps, false, set.Run)
		after := h.cpus(pids)
		var cpu time.Duration
		for i := range pids {
			cpu += after[i] - before[i]
		}
		rows = append(rows, row{name: name, qps: qps, res: res, cpu: cpu})
	}
	for _, qps := range []float64{set.FixedQPS, -1} {
		measure("process app, direct (no sidecar)", direct, qps, app.PID())
		measure("process app behind its sidecar", viaProc, qps, app.PID(), proc.PID())
		measure("Wasm app in the sidecar, net/http guest (http-wasm ABI)", viaWasm, qps, wasm.PID())
		measure("Wasm app in the sidecar, lean guest (lean ABI)", viaLean, qps, lean.PID())
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# Wasm app in the sidecar vs a process app\n\n%s, commit %s, %d CPUs (load average %s). One run: `TANDEM_BENCH=1 go test ./test/bench -run TestWasmAppLoad -v`.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), commit(), runtime.NumCPU(), loadavg())
	fmt.Fprintf(&md, "The same handler (`test/apps/wasmapp`, POST /echo of %d bytes) as a Wasm module in tandemd (`--app-wasm`) and built natively as a process app behind tandemd (`--app-port`), and the same echo on the lean ABI (`test/apps/wasmlean` on `wasmapp/lean`) in a third tandemd; the client (fortio, %d connections) calls `/v1.0/invoke/<app>/method/echo` on the sidecar. CPU is the app's and the sidecar's processes together, per request. Each run %s.\n\n",
		set.PayloadBytes, set.Connections, set.Run)
	md.WriteString("| path | target | achieved qps | p50 | p99 | errors | CPU per request |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		target := "max"
		if r.qps > 0 {
			target = fmt.Sprintf("%.0f qps", r.qps)
		}
		var p50, p99 time.Duration
		for _, p := range r.res.DurationHistogram.Percentiles {
			switch p.Percentile {
			case 50:
				p50 = secs(p.Value)
			case 99:
				p99 = secs(p.Value)
			}
		}
		n := r.res.DurationHistogram.Count
		errs := n - r.res.RetCodes[http.StatusOK]
		per := time.Duration(0)
		if n > 0 {
			per = r.cpu / time.Duration(n)
		}
		fmt.Fprintf(&md, "| %s | %s | %.0f | %.3f ms | %.3f ms | %d | %.1f µs |\n", r.name, target, r.res.ActualQPS, ms(p50), ms(p99), errs, float64(per)/1e3)
		if errs > 0 {
			t.Errorf("%s at %s: %d of %d requests failed", r.name, target, errs, n)
		}
	}
	md.WriteString("\n## Cold start\n\nA sidecar's restart: the compiled code is in the folder cache (`--app-wasm-cache-dir`). Load is wasmhost.Load (read the module, compile it from the cache, start the first instance); CPU is this process's (user and system) over load and first request. Over 5 starts each.\n\n| guest | module | compile, empty cache | load p50 | load max | first request p50 | together p50 | CPU, load + first request, p50 |\n|---|---|---|---|---|---|---|---|\n")
	coldStart(t, &md, "net/http (http-wasm ABI)", module)
	coldStart(t, &md, "lean (lean ABI)", leanModule)
	md.WriteString("\n## Memory per idle instance\n\n20 instances made at once (their requests wait in the API handler for each other), then idle; RSS and Go heap in use of this process before and after.\n\n| guest | live, idle | RSS grown | RSS per instance | Go heap per instance |\n|---|---|---|---|---|\n")
	idleInstance(t, &md, "net/http (http-wasm ABI)", module)
	idleInstance(t, &md, "lean (lean ABI)", leanModule)
	out := os.Getenv("TANDEM_BENCH_WASM_OUT")
	if out == "" {
		out = filepath.Join("results", "wasm-app.md")
	}
	t.Logf("\n%s", md.String())
	writeBenchReport(t, "TANDEM_BENCH_WASM_OUT", out, md.String())
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// buildTestApp builds test/apps/wasmapp as a native process app.
func buildTestApp(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "wasmapp-native")
	cmd := exec.Command("go", "build", "-o", out, "./test/apps/wasmapp")
	cmd.Dir = framework.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build test/apps/wasmapp: %v\n%s", err, b)
	}
	return out
}

// coldStart times wasmhost.Load with an empty folder cache (compile), then
// several times with the cache filled, each followed by a first request.
func coldStart(t *testing.T, md *strings.Builder, name, module string) {
	cache := t.TempDir()
	start := time.Now()
	a, err := wasmhost.Load(context.Background(), wasmhost.Config{Path: module, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	compile := time.Since(start)
	_ = a.Close()
	var loads, firsts, cpus []time.Duration
	for range 5 {
		cpu := processCPU()
		start := time.Now()
		a, err := wasmhost.Load(context.Background(), wasmhost.Config{Path: module, CacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		loaded := time.Now()
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/echo", strings.NewReader("first")))
		if rec.Code != 200 || rec.Body.String() != "first" {
			t.Fatalf("first request: %d %q", rec.Code, rec.Body.String())
		}
		loads, firsts = append(loads, loaded.Sub(start)), append(firsts, time.Since(loaded))
		cpus = append(cpus, processCPU()-cpu)
		_ = a.Close()
	}
	st, fi, cp := summarize(loads), summarize(firsts), summarize(cpus)
	info, _ := os.Stat(module)
	fmt.Fprintf(md, "| %s | %.1f MiB | %.0f ms | %.1f ms | %.1f ms | %.2f ms | %.1f ms | %.1f ms |\n",
		name, float64(info.Size())/(1<<20), ms(compile), ms(st.P50), ms(st.Max), ms(fi.P50), ms(st.P50+fi.P50), ms(cp.P50))
}

// processCPU is this process's CPU time, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// idleInstance forces n instances into being at once (their requests wait
// in the API handler for each other), lets them go idle and reports the
// heap and RSS growth per instance.
func idleInstance(t *testing.T, md *strings.Builder, name, module string) {
	const n = 20
	a, err := wasmhost.Load(context.Background(), wasmhost.Config{Path: module, MaxInstances: n})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var arrived sync.WaitGroup
	arrived.Add(n)
	a.UseAPI(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		arrived.Done()
		arrived.Wait()
		w.WriteHeader(http.StatusNoContent)
	}))
	before := memNow(t)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, fmt.Sprintf("/state/k%d", i), strings.NewReader("1")))
		}()
	}
	wg.Wait()
	after := memNow(t)
	st := a.Stats()
	grown := st.Live - 1
	if grown <= 0 {
		t.Fatalf("instances %+v: the pool did not grow", st)
	}
	fmt.Fprintf(md, "| %s | %d, %d | %.1f MiB | %.2f MiB | %.2f MiB |\n",
		name, st.Live, st.Idle, float64(after.rss-before.rss)/(1<<20), float64(after.rss-before.rss)/float64(grown)/(1<<20),
		float64(after.heap-before.heap)/float64(grown)/(1<<20))
}

type memSample struct{ rss, heap uint64 }

func memNow(t *testing.T) memSample {
	runtime.GC()
	debug.FreeOSMemory()
	m, err := ReadMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{rss: m.RSS, heap: ms.HeapInuse}
}
