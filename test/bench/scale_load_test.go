package bench

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the registry file the sidecars share

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestScaleLoad is issue 16's scale benchmark, in one run:
//   - a fleet of idle sidecars on one machine (TANDEM_BENCH_SIDECARS, 50):
//     their total PSS, private memory, and the CPU each spends idle
//     (timers, heartbeats, name-resolution refreshes);
//   - invocation with few and then 500 app IDs in the name registry: the
//     resolution cost per call should not grow with the registry;
//   - one caller spreading load over 10 instances of one app ID: how even
//     the balance is.
//
// It writes results/scale.md.
func TestScaleLoad(t *testing.T) {
	if os.Getenv("TANDEM_BENCH") != "1" {
		t.Skip("load benchmark: run it with TANDEM_BENCH=1 go test ./test/bench -run TestScaleLoad -v -timeout 20m (see test/bench/README.md)")
	}
	set := settingsFromEnv(t)
	fleetSize := int(benchNum(t, "TANDEM_BENCH_SIDECARS", 50))
	idleWindow := benchSeconds(t, "TANDEM_BENCH_IDLE_SECONDS", 30)
	const registered, instances = 500, 10

	bins := benchBinaries(t)
	started := time.Now()
	loadBefore := loadavg()

	sentry := framework.StartSentry(t, bins, framework.SentryOptions{})
	registry := filepath.Join(t.TempDir(), "registry.db")
	args := []string{"--log-level", "info", "--config", writeConfig(t, registry)}

	// The idle fleet.
	t.Logf("starting %d idle sidecars", fleetSize)
	fleet := make([]*framework.Sidecar, fleetSize)
	for i := range fleet {
		fleet[i] = framework.StartSidecar(t, bins, framework.SidecarOptions{
			AppID: fmt.Sprintf("idle-%02d", i), Sentry: sentry, Args: args,
		})
	}
	time.Sleep(5 * time.Second) // let start-up work (certificates, first registrations) settle
	idle := measureIdle(t, fleet, idleWindow)

	// Invocation through a caller and a callee, with the fleet's app IDs
	// registered, then with ghosts added up to 500.
	cpu := NewProcCPU()
	h := &harness{t: t, set: set, cpu: cpu, payload: payload(set.PayloadBytes)}
	app := framework.StartApp(t, "echo app", buildEchoApp(t, bins), "APP_ID=callee")
	callee := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "callee", AppPort: app.Port, Sentry: sentry, Args: args})
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "caller", Sentry: sentry, Args: args})
	h.sidecarPIDs = []int{caller.PID(), callee.PID()}
	h.appPID = app.PID()
	via := caller.HTTPURL() + "/v1.0/invoke/callee/method/echo"
	h.waitEcho(via)
	h.load(via, -1, false, set.Warmup)
	few := countAppIDs(t, registry)
	resolution := []Run{h.measure(fmt.Sprintf("%d app IDs registered, staggered", few), via, true, set.FixedQPS, true, nil)}
	ghosts := startGhosts(t, registry, registered-few)
	many := countAppIDs(t, registry)
	h.load(via, -1, false, set.Warmup)
	resolution = append(resolution, h.measure(fmt.Sprintf("%d app IDs registered, staggered", many), via, true, set.FixedQPS, true, nil))
	ghosts()

	// One caller over 10 instances of one app ID.
	spread := make([]*framework.Sidecar, instances)
	spreadPIDs := []int{caller.PID()}
	for i := range spread {
		a := framework.StartApp(t, fmt.Sprintf("spread app %d", i), buildEchoApp(t, bins), "APP_ID=spread")
		spread[i] = framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "spread", AppPort: a.Port, Sentry: sentry, Args: args})
		spreadPIDs = append(spreadPIDs, spread[i].PID())
	}
	toSpread := caller.HTTPURL() + "/v1.0/invoke/spread/method/echo"
	waitInstances(t, registry, "spread", instances)
	h.waitEcho(toSpread)
	h.load(toSpread, -1, false, set.Warmup)
	before := invocationsReceived(t, spread)
	h.sidecarPIDs = spreadPIDs
	balanceRun := h.measure(fmt.Sprintf("1 caller → %d instances, staggered", instances), toSpread, true, set.FixedQPS, true, nil)
	after := invocationsReceived(t, spread)
	counts := make([]float64, instances)
	for i := range counts {
		counts[i] = after[i] - before[i]
	}

	md := scaleMarkdown(scaleReport{
		Started: started, LoadBefore: loadBefore, LoadAfter: loadavg(), Machine: machine(), Commit: commit(),
		Settings: set, Idle: idle, IdleWindow: idleWindow, Resolution: resolution, Balance: balanceRun, Counts: counts,
	})
	t.Logf("\n%s", md)
	writeBenchReport(t, "TANDEM_BENCH_OUT", filepath.Join("results", "scale.md"), md)
	for _, run := range append(resolution, balanceRun) {
		if run.Errors > 0 {
			t.Errorf("%s: %d of %d requests failed", run.Name, run.Errors, run.Requests)
		}
	}
}

// idleSidecar is one idle sidecar's figures.
type idleSidecar struct {
	CPU  time.Duration // over the idle window
	PSS  PSS
	Anon uint64 // RssAnon
	RSS  uint64
}

// measureIdle reads every sidecar's CPU time over window, then its memory.
func measureIdle(t *testing.T, fleet []*framework.Sidecar, window time.Duration) []idleSidecar {
	t.Helper()
	cpu := NewProcCPU()
	out := make([]idleSidecar, len(fleet))
	before := make([]time.Duration, len(fleet))
	for i, s := range fleet {
		d, err := cpu.CPU(s.PID())
		if err != nil {
			t.Fatal(err)
		}
		before[i] = d
	}
	t.Logf("measuring %d idle sidecars for %s", len(fleet), window)
	time.Sleep(window)
	for i, s := range fleet {
		d, err := cpu.CPU(s.PID())
		if err != nil {
			t.Fatal(err)
		}
		p, err := ReadPSS(s.PID())
		if err != nil {
			t.Fatal(err)
		}
		m, err := ReadMem(s.PID())
		if err != nil {
			t.Fatal(err)
		}
		out[i] = idleSidecar{CPU: d - before[i], PSS: p, Anon: m.Anon, RSS: m.RSS}
	}
	return out
}

// startGhosts registers n app IDs that no sidecar serves ("ghost-NNN", at
// unreachable addresses) in the sqlite registry, and keeps their rows fresh
// every second as a live sidecar would, until the returned stop is called.
func startGhosts(t *testing.T, registry string, n int) (stop func()) {
	t.Helper()
	db, err := sql.Open("sqlite", registry+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	for i := range max(n, 0) {
		if _, err := db.Exec(`INSERT INTO hosts (registration_id, address, app_id, namespace, last_update)
			VALUES (?, ?, ?, '', unixepoch(CURRENT_TIMESTAMP))`,
			fmt.Sprintf("ghost-%03d", i), fmt.Sprintf("127.0.0.2:%d", 20000+i), fmt.Sprintf("ghost-%03d", i)); err != nil {
			t.Fatalf("register ghost app IDs in %s: %v", registry, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_, _ = db.ExecContext(ctx, `UPDATE hosts SET last_update = unixepoch(CURRENT_TIMESTAMP) WHERE app_id LIKE 'ghost-%'`)
			}
		}
	}()
	return func() {
		cancel()
		<-done
		_ = db.Close()
	}
}

// countAppIDs is the number of distinct app IDs in the registry.
func countAppIDs(t *testing.T, registry string) int {
	t.Helper()
	db, err := sql.Open("sqlite", registry+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(DISTINCT app_id) FROM hosts`).Scan(&n); err != nil {
		t.Fatalf("count app IDs in %s: %v", registry, err)
	}
	return n
}

// waitInstances waits until appID has n rows in the registry.
func waitInstances(t *testing.T, registry, appID string, n int) {
	t.Helper()
	db, err := sql.Open("sqlite", registry+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err := db.QueryRow(`SELECT COUNT(*) FROM hosts WHERE app_id = ?`, appID).Scan(&got); err == nil && got >= n {
			return
		}
	}
	t.Fatalf("%s has %d instances in the registry after 30 s, want %d", appID, got, n)
}

// invocationsReceived reads dapr_runtime_service_invocation_req_recv_total
// (all label sets summed) from each sidecar's metrics endpoint.
func invocationsReceived(t *testing.T, sidecars []*framework.Sidecar) []float64 {
	t.Helper()
	out := make([]float64, len(sidecars))
	for i, s := range sidecars {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.MetricsPort))
		if err != nil {
			t.Fatalf("metrics of %s #%d: %v", s.AppID, i, err)
		}
		v, err := sumSeries(bufio.NewScanner(resp.Body), "dapr_runtime_service_invocation_req_recv_total")
		resp.Body.Close()
		if err != nil {
			t.Fatalf("metrics of %s #%d: %v", s.AppID, i, err)
		}
		out[i] = v
	}
	return out
}

// sumSeries adds the values of every series of metric in a Prometheus text
// exposition.
func sumSeries(sc *bufio.Scanner, metric string) (float64, error) {
	var sum float64
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric) {
			continue
		}
		rest := line[len(metric):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue // a longer name with the same prefix
		}
		f := strings.Fields(line[strings.LastIndexByte(line, '}')+1:])
		if rest[0] == ' ' {
			f = strings.Fields(rest)
		}
		if len(f) == 0 {
			return 0, fmt.Errorf("%s: no value in %q", metric, line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: value of %q: %w", metric, line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

type scaleReport struct {
	Started               time.Time
	LoadBefore, LoadAfter string
	Machine               Machine
	Commit                string
	Settings              Settings
	Idle                  []idleSidecar
	IdleWindow            time.Duration
	Resolution            []Run
	Balance               Run
	Counts                []float64 // calls each instance received
}

// balance summarises per-instance counts: the smallest and largest share
// relative to an even split, and the coefficient of variation.
func balance(counts []float64) (minShare, maxShare, cv float64) {
	if len(counts) == 0 {
		return 0, 0, 0
	}
	var sum float64
	for _, c := range counts {
		sum += c
	}
	if sum == 0 {
		return 0, 0, 0
	}
	mean := sum / float64(len(counts))
	var sq float64
	for _, c := range counts {
		sq += (c - mean) * (c - mean)
	}
	return slices.Min(counts) / mean, slices.Max(counts) / mean, math.Sqrt(sq/float64(len(counts))) / mean
}

func scaleMarkdown(r scaleReport) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# Scale benchmark (issue 16)\n\n")
	p("- date: %s\n- commit: %s\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Commit)
	p("- machine: %d CPUs (%s), GOMAXPROCS %d, kernel %s, Go %s\n", r.Machine.NProc, r.Machine.CPUModel, r.Machine.GOMAXPROCS, r.Machine.Kernel, r.Machine.GoVersion)
	p("- load average (1, 5, 15 min) before the run: %s; after: %s\n", r.LoadBefore, r.LoadAfter)
	p("- command: `TANDEM_BENCH=1 go test ./test/bench -run TestScaleLoad -v -timeout 20m`\n")
	p("- every sidecar has mTLS from one sentry and sqlite name resolution on one registry file, at log level info\n\n")

	n := len(r.Idle)
	cpus := make([]float64, n)
	var pss, pssAnon, pssFile, anon uint64
	anons := make([]float64, n)
	for i, s := range r.Idle {
		cpus[i] = 100 * float64(s.CPU) / float64(r.IdleWindow)
		pss += s.PSS.Total
		pssAnon += s.PSS.Anon
		pssFile += s.PSS.File
		anon += s.Anon
		anons[i] = float64(s.Anon)
	}
	p("## %d idle sidecars on one machine\n\n", n)
	if n > 0 {
		meanCPU := 0.0
		for _, c := range cpus {
			meanCPU += c
		}
		meanCPU /= float64(n)
		met := "yes"
		if slices.Max(cpus) > 0.1 {
			met = "**no**"
		}
		p("| figure | value | target | met |\n|---|---|---|---|\n")
		p("| idle CPU per sidecar, %% of one core over %s (mean / max) | %.3f %% / %.3f %% | ≤ 0.1 %% each | %s |\n", r.IdleWindow, meanCPU, slices.Max(cpus), met)
		p("| total PSS of the %d sidecars (private + their share of the binary's pages) | %s (anon %s, file %s) | – | – |\n", n, mib(pss), mib(pssAnon), mib(pssFile))
		p("| PSS per sidecar (total ÷ %d) | %s | – | – |\n", n, mib(pss/uint64(n)))
		met = "yes"
		if slices.Max(anons) > 8<<20 {
			met = "**no**"
		}
		p("| private memory (RssAnon) per sidecar, mean / max | %s / %s | ≤ 8 MiB | %s |\n\n", mib(anon/uint64(n)), mib(uint64(slices.Max(anons))), met)
	}

	header := func() {
		p("| run | achieved qps | requests | errors | p50 ms | p99 ms | sidecars CPU ms / 1000 req (caller + callee) |\n|---|---|---|---|---|---|---|\n")
	}
	row := func(run Run) {
		parts := make([]string, len(run.SidecarCPU))
		for i, d := range run.SidecarCPU {
			parts[i] = fmt.Sprintf("%.1f", ms(run.PerK(d)))
		}
		p("| %s | %.0f | %d | %d | %.3f | %.3f | %.1f (%s) |\n", run.Name, run.QPS, run.Requests, run.Errors, ms(run.P50), ms(run.P99), ms(run.PerK(run.SidecarsCPU())), strings.Join(parts, " + "))
	}
	p("## Invocation with few and with 500 app IDs registered\n\n")
	p("The same load (fortio, %d connections, %d-byte bodies, %.0f qps staggered, %s) through a caller and a callee sidecar, first with the fleet's app IDs in the registry, then with app IDs that no sidecar serves added up to 500 (their rows kept fresh every second, as live sidecars do).\n\n",
		r.Settings.Connections, r.Settings.PayloadBytes, r.Settings.FixedQPS, r.Settings.Run)
	header()
	for _, run := range r.Resolution {
		row(run)
	}
	if len(r.Resolution) == 2 && r.Resolution[0].Requests > 0 {
		a, z := cpuPerRequest(r.Resolution[0]), cpuPerRequest(r.Resolution[1])
		p("\nCPU per request with many app IDs ÷ with few: **%.2f×** (%.3f / %.3f ms); p50 %.3f against %.3f ms.\n", z/a, z, a, ms(r.Resolution[1].P50), ms(r.Resolution[0].P50))
	}

	p("\n## One caller over %d instances of one app ID\n\n", len(r.Counts))
	header()
	row(r.Balance)
	minShare, maxShare, cv := balance(r.Counts)
	parts := make([]string, len(r.Counts))
	for i, c := range r.Counts {
		parts[i] = strconv.FormatFloat(c, 'f', 0, 64)
	}
	p("\n- calls received per instance (`dapr_runtime_service_invocation_req_recv_total`): %s\n", strings.Join(parts, ", "))
	p("- smallest / largest share ÷ an even split: %.2f / %.2f; coefficient of variation %.3f\n", minShare, maxShare, cv)
	p("- the CPU column sums the caller and all %d callee sidecars\n", len(r.Counts))
	return b.String()
}
