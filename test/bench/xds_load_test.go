package bench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/test/e2e/framework"
	"github.com/tandemrun/tandem/xds/svidfiles"
)

// proxylessPath is one way from the client to the gRPC app.
type proxylessPath struct {
	name   string
	target string // the client's dial target
	appID  string // dapr-app-id metadata, for a sidecar's gRPC port
	// sidecars are the PIDs of the sidecars on the path, in call order.
	sidecars []int
}

// proxylessRun is one measured load on one path.
type proxylessRun struct {
	Path       string
	TargetQPS  float64 // 0: max rate
	Result     loadAnswer
	SidecarCPU []time.Duration // per sidecar on the path, in call order
	ClientCPU  time.Duration
	AppCPU     time.Duration
}

// loadAnswer is test/apps/xdsclient's /load answer.
type loadAnswer struct {
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error"`
	Seconds    float64 `json:"seconds"`
	P50        int64   `json:"p50_ns"`
	P90        int64   `json:"p90_ns"`
	P99        int64   `json:"p99_ns"`
	Max        int64   `json:"max_ns"`
}

// perRequest is d divided over the run's requests.
func (r proxylessRun) perRequest(d time.Duration) time.Duration {
	if r.Result.Requests == 0 {
		return 0
	}
	return d / time.Duration(r.Result.Requests)
}

// sidecarsCPU is the CPU of every sidecar on the path.
func (r proxylessRun) sidecarsCPU() time.Duration {
	var sum time.Duration
	for _, d := range r.SidecarCPU {
		sum += d
	}
	return sum
}

// TestProxylessLoad is issue 14's benchmark: a proxyless gRPC client (grpc-go's
// xDS resolver and credentials, certificates from `tandem identity`,
// resources from `tandem xds`) calls the app through the callee's sidecar
// only, against the same client calling through the caller's sidecar and
// then the callee's (Dapr's gRPC proxying), and straight to the app (the
// floor). The client runs in its own process (test/apps/xdsclient), so the
// sidecars' CPU is read from their own /proc entries. Each path is
// measured at the fixed rate and at max rate, and the report goes to
// results/xds-proxyless.md.
func TestProxylessLoad(t *testing.T) {
	if os.Getenv("TANDEM_BENCH") != "1" {
		t.Skip("load benchmark: run it with TANDEM_BENCH=1 go test ./test/bench -run TestProxylessLoad -v -timeout 20m (see test/bench/README.md)")
	}
	set := settingsFromEnv(t)
	bins, err := framework.Build()
	if err != nil {
		t.Fatalf("build the binaries: %v", err)
	}
	t.Cleanup(framework.Cleanup)
	clientBin := filepath.Join(bins.Dir, "xdsclient")
	cmd := exec.Command("go", append(append([]string{"build"}, framework.ReleaseFlags...), "-o", clientBin, "./test/apps/xdsclient")...)
	cmd.Dir = framework.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build test/apps/xdsclient: %v\n%s", err, out)
	}

	sentry := framework.StartSentry(t, bins, framework.SentryOptions{})
	registry := filepath.Join(t.TempDir(), "registry.db")
	app := framework.StartApp(t, "grpc echo app", bins.GRPCEcho)
	args := []string{"--log-level", "info"}
	callee := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "callee", AppPort: app.Port, AppProtocol: "grpc", Sentry: sentry, Registry: registry, Args: args,
	})
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "caller", Sentry: sentry, Registry: registry, Args: args,
	})

	xdsAddr := fmt.Sprintf("127.0.0.1:%d", framework.FreePort(t))
	_, xdsPort, _ := strings.Cut(xdsAddr, ":")
	framework.Start(t, "tandem xds", bins.Tandem, []string{"xds", "--registry", registry, "--port", xdsPort,
		"--sentry-address", sentry.Addr, "--control-plane-trust-domain", sentry.TrustDomain,
	}, "DAPR_TRUST_ANCHORS="+sentry.TrustAnchors(t))
	if err := framework.WaitTCP(xdsAddr, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	idDir := filepath.Join(t.TempDir(), "id")
	id := framework.Start(t, "tandem identity", bins.Tandem, []string{"identity", "--app-id", "proxyless", "--out", idDir,
		"--xds-address", xdsAddr, "--sentry-address", sentry.Addr, "--control-plane-trust-domain", sentry.TrustDomain,
	}, "DAPR_TRUST_ANCHORS="+sentry.TrustAnchors(t))
	boot := filepath.Join(idDir, svidfiles.BootstrapFile)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(boot); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tandem identity wrote no bootstrap in 15 s:\n%s", id.Output())
		}
	}
	cport := framework.FreePort(t)
	client := framework.Start(t, "xds client", clientBin, []string{"--port", strconv.Itoa(cport)},
		"GRPC_XDS_BOOTSTRAP="+boot, "GRPC_EXPERIMENTAL_XDS_MTLS_SPIFFE=true")
	if err := framework.WaitTCP(fmt.Sprintf("127.0.0.1:%d", cport), 15*time.Second); err != nil {
		t.Fatal(err)
	}

	paths := []proxylessPath{
		{name: "direct (no sidecar)", target: fmt.Sprintf("127.0.0.1:%d", app.Port)},
		{name: "proxyless → callee sidecar", target: "xds:///callee", sidecars: []int{callee.PID()}},
		{name: "caller sidecar → callee sidecar", target: caller.GRPCAddr(), appID: "callee", sidecars: []int{caller.PID(), callee.PID()}},
	}
	var dapr *proxylessPath
	if daprd := daprdForBench(t); daprd != "" {
		dcaller, dcallee := startDaprdPair(t, bins, daprd, sentry, app.Port, "grpc")
		dapr = &proxylessPath{name: "Dapr 1.18.2: caller daprd → callee daprd", target: dcaller.GRPCAddr(), appID: "dcallee",
			sidecars: []int{dcaller.PID(), dcallee.PID()}}
		paths = append(paths, *dapr)
	}

	l := &proxylessLoad{t: t, port: cport, set: set, cpu: NewProcCPU(), app: app.PID(), client: client.PID()}
	for _, p := range paths {
		l.waitReady(p)
		l.load(p, 0, set.Warmup)
	}
	var runs []proxylessRun
	for _, qps := range []float64{set.FixedQPS, 0} {
		for _, p := range paths {
			runs = append(runs, l.measure(p, qps))
		}
	}
	md := proxylessMarkdown(set, runs, dapr != nil)
	t.Logf("\n%s", md)
	writeBenchReport(t, "TANDEM_BENCH_OUT", filepath.Join("results", "xds-proxyless.md"), md)
	for _, r := range runs {
		if r.Result.Errors > 0 {
			t.Errorf("%s at %s: %d of %d calls failed (first: %s)", r.Path, qpsLabel(r.TargetQPS), r.Result.Errors, r.Result.Requests, r.Result.FirstError)
		}
	}
}

// proxylessLoad drives test/apps/xdsclient's /load.
type proxylessLoad struct {
	t           *testing.T
	port        int
	set         Settings
	cpu         ProcCPU
	app, client int
}

// load asks the client for one run; qps 0 is max rate.
func (l *proxylessLoad) load(p proxylessPath, qps float64, d time.Duration) loadAnswer {
	l.t.Helper()
	q := url.Values{
		"target": {p.target}, "app_id": {p.appID}, "qps": {strconv.FormatFloat(qps, 'f', -1, 64)},
		"duration": {d.String()}, "workers": {strconv.Itoa(l.set.Connections)}, "size": {strconv.Itoa(l.set.PayloadBytes)},
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/load?%s", l.port, q.Encode()))
	if err != nil {
		l.t.Fatalf("xds client /load: %v", err)
	}
	defer resp.Body.Close()
	var a loadAnswer
	if resp.StatusCode != http.StatusOK {
		l.t.Fatalf("xds client /load: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		l.t.Fatalf("xds client /load answer: %v", err)
	}
	return a
}

// waitReady retries a short load until every call of it succeeds (the
// callee may take a moment to reach the registry and the xDS server).
func (l *proxylessLoad) waitReady(p proxylessPath) {
	l.t.Helper()
	var a loadAnswer
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if a = l.load(p, 0, 200*time.Millisecond); a.Errors == 0 && a.Requests > 0 {
			return
		}
	}
	l.t.Fatalf("%s: calls still fail after 30 s: %d of %d (first: %s)", p.name, a.Errors, a.Requests, a.FirstError)
}

func (l *proxylessLoad) cpuOf(pids []int) []time.Duration {
	out := make([]time.Duration, len(pids))
	for i, pid := range pids {
		d, err := l.cpu.CPU(pid)
		if err != nil {
			l.t.Fatal(err)
		}
		out[i] = d
	}
	return out
}

// measure runs one measured load and reads the processes' CPU around it.
func (l *proxylessLoad) measure(p proxylessPath, qps float64) proxylessRun {
	l.t.Helper()
	pids := append([]int{l.app, l.client}, p.sidecars...)
	before := l.cpuOf(pids)
	a := l.load(p, qps, l.set.Run)
	after := l.cpuOf(pids)
	r := proxylessRun{Path: p.name, TargetQPS: qps, Result: a, AppCPU: after[0] - before[0], ClientCPU: after[1] - before[1]}
	for i := range p.sidecars {
		r.SidecarCPU = append(r.SidecarCPU, after[2+i]-before[2+i])
	}
	l.t.Logf("%s at %s: %d calls (%.0f/s), %d errors, p50 %.3f ms, p99 %.3f ms, sidecars %.0f µs/call",
		p.name, qpsLabel(qps), a.Requests, float64(a.Requests)/a.Seconds, a.Errors, ms(time.Duration(a.P50)), ms(time.Duration(a.P99)),
		us(r.perRequest(r.sidecarsCPU())))
	return r
}

// proxylessMarkdown is the report: one table per rate, then the issue's
// target (the proxyless path's sidecar CPU per call ≤ 0.6× the two
// sidecars').
func proxylessMarkdown(set Settings, runs []proxylessRun, withDapr bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Proxyless gRPC over xDS against two sidecars\n\n")
	fmt.Fprintf(&b, "`TANDEM_BENCH=1 go test ./test/bench -run TestProxylessLoad -v` (test/bench/xds_load_test.go), %s, commit %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), commit())
	fmt.Fprintf(&b, "One client process (test/apps/xdsclient: grpc-go, one connection per path, %d workers, %d B echoed by "+
		"AppCallback OnInvoke of test/apps/grpcecho) calls each path for %s; the sidecars' CPU is read from /proc. "+
		"Added p50 is the path's p50 minus the direct call's at the same rate.\n\n", set.Connections, set.PayloadBytes, set.Run)
	m := machine()
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, %s, load average at the start %s.\n\n", m.CPUModel, m.NProc, m.GoVersion, m.LoadAvg)
	direct := map[float64]proxylessRun{}
	for _, r := range runs {
		if len(r.SidecarCPU) == 0 {
			direct[r.TargetQPS] = r
		}
	}
	for _, qps := range []float64{set.FixedQPS, 0} {
		fmt.Fprintf(&b, "## %s\n\n", map[bool]string{true: "Max rate", false: fmt.Sprintf("Fixed rate, %s", qpsLabel(qps))}[qps == 0])
		b.WriteString("| path | calls/s | errors | p50 | p90 | p99 | added p50 | sidecars' CPU per call | per sidecar | client CPU per call | app CPU per call |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range runs {
			if r.TargetQPS != qps {
				continue
			}
			a := r.Result
			added, per := "–", "–"
			if len(r.SidecarCPU) > 0 {
				added = fmt.Sprintf("%.3f ms", ms(time.Duration(a.P50-direct[qps].Result.P50)))
				var parts []string
				for _, d := range r.SidecarCPU {
					parts = append(parts, fmt.Sprintf("%.0f", us(r.perRequest(d))))
				}
				per = strings.Join(parts, " + ") + " µs"
			}
			fmt.Fprintf(&b, "| %s | %.0f | %d | %.3f ms | %.3f ms | %.3f ms | %s | %.0f µs | %s | %.0f µs | %.0f µs |\n",
				r.Path, float64(a.Requests)/a.Seconds, a.Errors, ms(time.Duration(a.P50)), ms(time.Duration(a.P90)), ms(time.Duration(a.P99)),
				added, us(r.perRequest(r.sidecarsCPU())), per, us(r.perRequest(r.ClientCPU)), us(r.perRequest(r.AppCPU)))
		}
		b.WriteString("\n")
	}
	b.WriteString("## Target\n\n| rate | proxyless ÷ two sidecars, sidecars' CPU per call | target | met |\n|---|---|---|---|\n")
	for _, qps := range []float64{set.FixedQPS, 0} {
		var px, two proxylessRun
		for _, r := range runs {
			if r.TargetQPS != qps {
				continue
			}
			switch {
			case strings.HasPrefix(r.Path, "proxyless"):
				px = r
			case strings.HasPrefix(r.Path, "caller sidecar"):
				two = r
			}
		}
		if c := two.perRequest(two.sidecarsCPU()); c > 0 {
			ratio := float64(px.perRequest(px.sidecarsCPU())) / float64(c)
			fmt.Fprintf(&b, "| %s | %.2f× | ≤ 0.60× | %s |\n", qpsLabel(qps), ratio, map[bool]string{true: "yes", false: "no"}[ratio <= 0.6])
		}
	}
	if !withDapr {
		b.WriteString("\nNo daprd was built (scripts/build-daprd.sh), so there is no Dapr row.\n")
	}
	return b.String()
}
