package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Run is one fortio run, summarised, with the CPU the processes under test
// spent during it.
type Run struct {
	Name      string  // e.g. "direct, 1000 qps"
	Sidecars  bool    // through the two sidecars (false: straight to the app)
	TargetQPS float64 // requested rate; <= 0 means max rate
	// Staggered: fortio's -uniform, the connections spread their requests
	// evenly instead of firing together.
	Staggered bool
	Duration  time.Duration // measured wall time
	Requests  int64
	Errors    int64 // responses other than 200, and socket errors
	QPS       float64
	P50       time.Duration
	P90       time.Duration
	P99       time.Duration
	Max       time.Duration
	// SidecarCPU is the CPU time of each sidecar (caller, callee) during the
	// run; empty for direct runs.
	SidecarCPU []time.Duration
	AppCPU     time.Duration // the echo app
	ClientCPU  time.Duration // the load generator (this test process)
}

// SidecarsCPU is the CPU time of both sidecars together.
func (r Run) SidecarsCPU() time.Duration {
	var sum time.Duration
	for _, d := range r.SidecarCPU {
		sum += d
	}
	return sum
}

// PerK scales a CPU time to "per 1000 requests" of this run.
func (r Run) PerK(d time.Duration) time.Duration {
	if r.Requests == 0 {
		return 0
	}
	return time.Duration(float64(d) * 1000 / float64(r.Requests))
}

// SidecarMem is one sidecar's resident memory.
type SidecarMem struct {
	Name      string
	Idle      uint64 // VmRSS right after start, before any request
	IdleFile  uint64 // RssFile of Idle: mapped pages of the binary
	LoadPeak  uint64 // highest VmRSS sampled during the max-rate run
	HWM       uint64 // VmHWM after all runs
	AfterLoad uint64 // VmRSS after all runs
	// IdleAnon and LoadAnon are RssAnon (private memory) right after start
	// and the highest sampled during the max-rate run.
	IdleAnon uint64
	LoadAnon uint64
}

// Machine describes where the figures were taken.
type Machine struct {
	NProc      int
	CPUModel   string
	GoVersion  string
	GOMAXPROCS int
	Kernel     string
	// LoadAvg is /proc/loadavg when the harness started: other work on the
	// machine skews every figure.
	LoadAvg string
}

// Settings are the knobs of the harness.
type Settings struct {
	Run          time.Duration // each measured run
	Warmup       time.Duration
	Connections  int
	PayloadBytes int
	FixedQPS     float64
	ColdStarts   int
}

// Report is everything one harness run measured.
type Report struct {
	Date     time.Time
	Commit   string
	Machine  Machine
	Settings Settings
	Runs     []Run
	// Floor holds the max-rate runs through two minimal relays instead of
	// the sidecars (their CPU in SidecarCPU); optional.
	Floor []Run
	// Dapr holds the same runs through two real daprd 1.18.2 (optional:
	// only when scripts/build-daprd.sh has built one).
	Dapr   []Run
	Memory []SidecarMem
	// ColdOutbound and ColdHealthz are the times from exec to the first
	// 204 on /v1.0/healthz/outbound and /v1.0/healthz, one per start.
	ColdOutbound []time.Duration
	ColdHealthz  []time.Duration
	// BinaryBytes is the tandemd the harness ran: a release build
	// (framework.ReleaseFlags). PlainBytes is a bare `go build` (0 if not
	// measured), for context.
	BinaryBytes int64
	PlainBytes  int64
	// Profile is optional text (top functions of the sidecars under load).
	Profile string
}

// Target is one figure next to the goal and Dapr's value.
type Target struct {
	Figure string
	Value  string
	Goal   string
	Dapr   string
	Met    bool
}

func (r *Report) find(sidecars, max, staggered bool) (Run, bool) {
	for _, run := range r.Runs {
		if run.Sidecars == sidecars && (run.TargetQPS <= 0) == max && run.Staggered == staggered {
			return run, true
		}
	}
	return Run{}, false
}

// Targets compares the measured figures with the goals of issue 2.
func (r *Report) Targets() []Target {
	var ts []Target
	cpu := func(run Run) {
		v := ms(run.PerK(run.SidecarsCPU())) / 1000
		ts = append(ts, Target{"both sidecars' CPU per request, " + runLabel(run), fmt.Sprintf("%.3f ms", v), "≤ 0.15 ms", "~1.1 ms", v <= 0.15})
	}
	p50 := func(d, s Run) {
		v := ms(s.P50 - d.P50)
		ts = append(ts, Target{"added p50, " + runLabel(s), fmt.Sprintf("%.3f ms (%.3f − %.3f)", v, ms(s.P50), ms(d.P50)), "≤ 0.3 ms", "~2.1 ms", v <= 0.3})
	}
	for _, staggered := range []bool{false, true} {
		if run, ok := r.find(true, false, staggered); ok {
			cpu(run)
		}
	}
	if run, ok := r.find(true, true, false); ok {
		cpu(run)
	}
	d, okd := r.find(false, true, false)
	s, oks := r.find(true, true, false)
	if okd && oks && d.QPS > 0 {
		v := s.QPS / d.QPS
		ts = append(ts, Target{"max qps through the sidecars ÷ direct", fmt.Sprintf("%.2f× (%.0f / %.0f qps)", v, s.QPS, d.QPS), "≥ 0.4×", "~0.08×", v >= 0.4})
	}
	for _, staggered := range []bool{false, true} {
		d, okd := r.find(false, false, staggered)
		s, oks := r.find(true, false, staggered)
		if okd && oks {
			p50(d, s)
		}
	}
	for _, m := range r.Memory {
		ts = append(ts, Target{"RSS idle, " + m.Name, mib(m.Idle), "≤ 25 MiB", "140–180 MiB", m.Idle <= 25<<20})
	}
	for _, m := range r.Memory {
		peak := max(m.LoadPeak, m.HWM)
		ts = append(ts, Target{"RSS under load, " + m.Name + " (VmHWM / sampled VmRSS)", mib(m.HWM) + " / " + mib(m.LoadPeak), "≤ 40 MiB", "140–180 MiB", peak <= 40<<20})
	}
	if len(r.ColdOutbound) > 0 {
		v := median(r.ColdOutbound)
		ts = append(ts, Target{fmt.Sprintf("cold start to /v1.0/healthz/outbound 204 (median of %d)", len(r.ColdOutbound)), spread(r.ColdOutbound), "≤ 30 ms", "~125 ms", v <= 30*time.Millisecond})
	}
	if len(r.ColdHealthz) > 0 {
		v := median(r.ColdHealthz)
		ts = append(ts, Target{fmt.Sprintf("cold start to /v1.0/healthz 204, app listening (median of %d)", len(r.ColdHealthz)), spread(r.ColdHealthz), "≤ 30 ms", "~125 ms", v <= 30*time.Millisecond})
	}
	if r.BinaryBytes > 0 {
		ts = append(ts, Target{"tandemd binary (release build: scripts/build.sh)", mib(uint64(r.BinaryBytes)), "≤ 40 MiB", "218 MiB", r.BinaryBytes <= 40<<20})
	}
	if r.PlainBytes > 0 {
		ts = append(ts, Target{"tandemd binary, bare `go build` (with symbols, DWARF and x/net/trace)", mib(uint64(r.PlainBytes)), "≤ 40 MiB", "218 MiB", r.PlainBytes <= 40<<20})
	}
	return ts
}

// floorRun finds the run of the floor (TCP or HTTP relays) at max rate or
// at the staggered fixed rate.
func (r *Report) floorRun(mode string, maxRate bool) (Run, bool) {
	for _, run := range r.Floor {
		if strings.Contains(run.Name, " "+mode+" relays") && (run.TargetQPS <= 0) == maxRate {
			return run, true
		}
	}
	return Run{}, false
}

// daprRun finds the run through two daprd at max rate or at the staggered
// fixed rate.
func (r *Report) daprRun(maxRate bool) (Run, bool) {
	for _, run := range r.Dapr {
		if (run.TargetQPS <= 0) == maxRate && (maxRate || run.Staggered) {
			return run, true
		}
	}
	return Run{}, false
}

// cpuPerRequest is the CPU both sidecars (or relays) spent per request of run.
func cpuPerRequest(run Run) float64 { return ms(run.PerK(run.SidecarsCPU())) / 1000 }

// FloorTargets compares the figures with issue 16's goals: ratios to the
// TCP-relay pair measured in the same run, private memory, cold start, and
// Dapr in the same run.
func (r *Report) FloorTargets() []Target {
	var ts []Target
	ratio := func(figure string, a, b float64, unit, goal string, atMost bool, limit float64) {
		if b <= 0 {
			return
		}
		v := a / b
		met := v >= limit
		if atMost {
			met = v <= limit
		}
		prec := 3
		if unit == "qps" {
			prec = 0
		}
		ts = append(ts, Target{figure, fmt.Sprintf("%.2f× (%.*f / %.*f %s)", v, prec, a, prec, b, unit), goal, "", met})
	}
	tcpMax, okTM := r.floorRun("tcp", true)
	tcpStag, okTS := r.floorRun("tcp", false)
	sMax, okSM := r.find(true, true, false)
	sStag, okSS := r.find(true, false, true)
	dStag, okDS := r.find(false, false, true)
	if okTM && okSM {
		ratio("pair CPU per request, max rate, ÷ TCP-relay pair", cpuPerRequest(sMax), cpuPerRequest(tcpMax), "ms", "≤ 2×", true, 2)
		ratio("max qps through the pair ÷ TCP-relay pair's", sMax.QPS, tcpMax.QPS, "qps", "≥ 0.6×", false, 0.6)
	}
	if okTS && okSS {
		ratio("pair CPU per request, staggered 1000 qps, ÷ TCP-relay pair", cpuPerRequest(sStag), cpuPerRequest(tcpStag), "ms", "≤ 1.5×", true, 1.5)
		if okDS {
			ratio("added p50, staggered 1000 qps, ÷ TCP-relay pair's", ms(sStag.P50-dStag.P50), ms(tcpStag.P50-dStag.P50), "ms", "≤ 1.5×", true, 1.5)
		}
	}
	for _, m := range r.Memory {
		if m.IdleAnon > 0 {
			ts = append(ts, Target{"private memory (RssAnon) idle, " + m.Name, mib(m.IdleAnon), "≤ 8 MiB", "", m.IdleAnon <= 8<<20})
		}
	}
	for _, m := range r.Memory {
		if m.LoadAnon > 0 {
			ts = append(ts, Target{"private memory (RssAnon) under load, " + m.Name + " (sampled, max-rate run)", mib(m.LoadAnon), "≤ 16 MiB", "", m.LoadAnon <= 16<<20})
		}
	}
	if len(r.ColdOutbound) > 0 {
		v := median(r.ColdOutbound)
		ts = append(ts, Target{fmt.Sprintf("cold start to /v1.0/healthz/outbound 204 (median of %d)", len(r.ColdOutbound)), spread(r.ColdOutbound), "≤ 10 ms", "", v <= 10*time.Millisecond})
	}
	for _, maxRate := range []bool{true, false} {
		d, okD := r.daprRun(maxRate)
		s, okS := r.find(true, maxRate, !maxRate)
		if okD && okS && cpuPerRequest(s) > 0 {
			ratio("Dapr's CPU per request ÷ Tandem's, "+runLabel(s), cpuPerRequest(d), cpuPerRequest(s), "ms", "≥ 5×", false, 5)
		}
	}
	if d, okD := r.daprRun(true); okD && okSM && d.QPS > 0 {
		ratio("max qps, Tandem ÷ Dapr", sMax.QPS, d.QPS, "qps", "", false, 0)
	}
	return ts
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# Invocation load benchmark\n\n")
	p("- date: %s\n", r.Date.UTC().Format("2006-01-02 15:04 MST"))
	p("- commit: %s\n", r.Commit)
	p("- machine: %d CPUs (%s), GOMAXPROCS %d, kernel %s\n", r.Machine.NProc, r.Machine.CPUModel, r.Machine.GOMAXPROCS, r.Machine.Kernel)
	p("- Go: %s\n", r.Machine.GoVersion)
	if r.Machine.LoadAvg != "" {
		p("- load average before the run (1, 5, 15 min): %s\n", r.Machine.LoadAvg)
	}
	p("- load: fortio %d connections, %d-byte POST bodies echoed back, %s per run after %s warm-up of each path; fixed rate %.0f qps (fortio's default pacing: the connections fire together; and staggered: fortio -uniform) and max rate\n",
		r.Settings.Connections, r.Settings.PayloadBytes, r.Settings.Run, r.Settings.Warmup, r.Settings.FixedQPS)
	p("- path: direct = client → echo app; sidecars = client → caller tandemd (HTTP API) → mTLS gRPC → callee tandemd → echo app\n")
	p("- the load generator, the echo app and both sidecars (and sentry) share the same CPUs\n\n")

	if ts := r.FloorTargets(); len(ts) > 0 {
		p("## Targets (issue 16: ratios to the floor and to Dapr in this run)\n\n")
		p("| figure | Tandem | target | met |\n|---|---|---|---|\n")
		for _, t := range ts {
			met := "yes"
			switch {
			case t.Goal == "":
				met = "–"
			case !t.Met:
				met = "**no**"
			}
			p("| %s | %s | %s | %s |\n", t.Figure, t.Value, t.Goal, met)
		}
		p("\n")
	}
	p("## Targets (issue 2, absolute)\n\n")
	p("| figure | Tandem | target | Dapr 1.18 | met |\n|---|---|---|---|---|\n")
	for _, t := range r.Targets() {
		met := "yes"
		if !t.Met {
			met = "**no**"
		}
		p("| %s | %s | %s | %s | %s |\n", t.Figure, t.Value, t.Goal, t.Dapr, met)
	}

	header := func() {
		p("| run | target qps | achieved qps | requests | errors | p50 ms | p90 ms | p99 ms | max ms | sidecars CPU ms / 1000 req (caller + callee) | app CPU ms / 1000 req | client CPU ms / 1000 req |\n")
		p("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	}
	row := func(run Run) {
		sc := "–"
		if run.Sidecars {
			parts := make([]string, len(run.SidecarCPU))
			for i, d := range run.SidecarCPU {
				parts[i] = fmt.Sprintf("%.1f", ms(run.PerK(d)))
			}
			sc = fmt.Sprintf("%.1f (%s)", ms(run.PerK(run.SidecarsCPU())), strings.Join(parts, " + "))
		}
		p("| %s | %s | %.0f | %d | %d | %.3f | %.3f | %.3f | %.3f | %s | %.1f | %.1f |\n",
			run.Name, runLabel(run), run.QPS, run.Requests, run.Errors,
			ms(run.P50), ms(run.P90), ms(run.P99), ms(run.Max), sc, ms(run.PerK(run.AppCPU)), ms(run.PerK(run.ClientCPU)))
	}
	p("\n## Runs\n\n")
	header()
	for _, run := range r.Runs {
		row(run)
	}
	if len(r.Floor) > 0 {
		p("\n## Floor: two minimal relays in place of the sidecars\n\n")
		p("The same load (staggered 1000 qps, max rate) through two relays in series (`test/bench/relay`): **tcp** copies bytes (no HTTP parsing, no TLS, kernel splice), **http** is net/http's ReverseProxy with a keep-alive pool. Their CPU is in the sidecars' column. No design with two user-space hops does less work than the tcp pair.\n\n")
		header()
		var direct float64
		var directP50 time.Duration
		for _, run := range r.Runs {
			if !run.Sidecars && run.TargetQPS <= 0 {
				direct = run.QPS
			}
			if !run.Sidecars && run.TargetQPS > 0 && run.Staggered {
				directP50 = run.P50
			}
		}
		for _, run := range r.Floor {
			row(run)
		}
		p("\n")
		for _, run := range r.Floor {
			switch {
			case run.TargetQPS <= 0 && direct > 0:
				p("- %s: %.2f× direct, %.3f ms CPU per request in the two relays\n", run.Name, run.QPS/direct, ms(run.PerK(run.SidecarsCPU()))/1000)
			case run.TargetQPS > 0 && directP50 > 0:
				p("- %s: added p50 %.3f ms, %.3f ms CPU per request in the two relays\n", run.Name, ms(run.P50-directP50), ms(run.PerK(run.SidecarsCPU()))/1000)
			}
		}
	}

	if len(r.Dapr) > 0 {
		p("\n## Dapr 1.18.2 in the same run\n\n")
		p("The same load through two real daprd (`scripts/build-daprd.sh`) with certificates from Tandem's sentry, calling each other over mTLS gRPC: client → caller daprd → callee daprd → echo app. Their CPU is in the sidecars' column.\n\n")
		header()
		for _, run := range r.Dapr {
			row(run)
		}
	}

	if len(r.Memory) > 0 {
		p("\n## Sidecar memory\n\n")
		p("RssAnon is a sidecar's private memory (what each further sidecar on a host costs); RssFile, the binary's mapped pages, is shared by every sidecar on the host.\n\n")
		p("| sidecar | idle VmRSS (after start) | idle RssAnon / RssFile | max sampled VmRSS (max-rate run) | max sampled RssAnon (max-rate run) | VmHWM (after all runs) | VmRSS after all runs |\n|---|---|---|---|---|---|---|\n")
		for _, m := range r.Memory {
			p("| %s | %s | %s / %s | %s | %s | %s | %s |\n", m.Name, mib(m.Idle), mib(m.IdleAnon), mib(m.IdleFile), mib(m.LoadPeak), mib(m.LoadAnon), mib(m.HWM), mib(m.AfterLoad))
		}
	}
	if len(r.ColdOutbound) > 0 {
		p("\n## Cold starts (exec → first 204), ms\n\n")
		p("- /v1.0/healthz/outbound: %s\n", list(r.ColdOutbound))
		p("- /v1.0/healthz (app already listening): %s\n", list(r.ColdHealthz))
	}
	if r.Profile != "" {
		p("\n## Where the sidecars' CPU goes (perf, max-rate run unless TANDEM_BENCH_PERF_QPS)\n\n```\n%s\n```\n", strings.TrimRight(r.Profile, "\n"))
	}
	return b.String()
}

// runLabel names the rate of a run: "1000 qps", "1000 qps staggered", "max rate".
func runLabel(run Run) string {
	if run.TargetQPS <= 0 {
		return "max rate"
	}
	if run.Staggered {
		return qpsLabel(run.TargetQPS) + " staggered"
	}
	return qpsLabel(run.TargetQPS)
}

func qpsLabel(q float64) string {
	if q <= 0 {
		return "max"
	}
	return fmt.Sprintf("%.0f qps", q)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(ds []time.Duration) string {
	return fmt.Sprintf("%.1f ms (min %.1f, max %.1f)", ms(median(ds)), ms(slices.Min(ds)), ms(slices.Max(ds)))
}

func list(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.1f", ms(d))
	}
	return strings.Join(parts, ", ")
}
