package bench

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// wfPhase is one measured load of a workflow runtime (or of the floor).
type wfPhase struct {
	Name  string
	Stats opStats // per workflow (per plain chain or fan-out on the floor)
	// Activities is how many activities the completed workflows ran.
	Activities int64
	// CPU is each process's CPU time during the phase, by role: sidecar,
	// app, scheduler, placement, redis-server, client (this process).
	CPU map[string]time.Duration
	// Runs holds each fan-out's completion time, in order.
	Runs []time.Duration
}

// perActivity is the CPU of role per completed activity; ok is false when
// the role's CPU was not read or nothing completed.
func (p wfPhase) perActivity(role string) (time.Duration, bool) {
	d, ok := p.CPU[role]
	if !ok || p.Activities == 0 {
		return 0, false
	}
	return perActivity(d, p.Activities), true
}

func perActivity(d time.Duration, activities int64) time.Duration {
	if activities <= 0 {
		return 0
	}
	return d / time.Duration(activities)
}

// completedRate is workflows (or plain chains) completed per second.
func (p wfPhase) completedRate() float64 {
	if p.Stats.Duration <= 0 {
		return 0
	}
	return float64(p.Stats.Ops-p.Stats.Errors) / p.Stats.Duration.Seconds()
}

// addedPerActivity is what a workflow adds to each of its n activities
// over the floor: (workflow − floor) / n.
func addedPerActivity(workflow, floor time.Duration, n int) time.Duration {
	if n <= 0 {
		return 0
	}
	return (workflow - floor) / time.Duration(n)
}

// wfTarget is everything measured of one runtime, or of the floor.
type wfTarget struct {
	Name         string
	Floor        bool
	ControlPlane string
	// Skip says why the runtime was not measured ("" when it was).
	Skip                      string
	Chain, Throughput, FanOut wfPhase
	Memory                    SidecarMem
	Profile                   string
}

func (t wfTarget) phases() []wfPhase {
	if t.Skip != "" {
		return nil
	}
	return []wfPhase{t.Chain, t.Throughput, t.FanOut}
}

type wfReport struct {
	Machine                   Machine
	Commit                    string
	Date                      time.Time
	Set                       wfSettings
	UptimeBefore, UptimeAfter string
	Targets                   []wfTarget // the floor first
}

func (r *wfReport) floor() (wfTarget, bool) {
	for _, t := range r.Targets {
		if t.Floor {
			return t, true
		}
	}
	return wfTarget{}, false
}

// runtimes are the measured and skipped sidecar runtimes: tandemd first.
func (r *wfReport) runtimes() []wfTarget {
	var out []wfTarget
	for _, t := range r.Targets {
		if !t.Floor {
			out = append(out, t)
		}
	}
	return out
}

// wfFigure is one row of the targets table: a value per runtime.
type wfFigure struct {
	Figure string
	Goal   string
	Value  func(t wfTarget) (string, bool) // the value, and whether it meets Goal
}

func (r *wfReport) figures() []wfFigure {
	fl, hasFloor := r.floor()
	figs := []wfFigure{}
	if hasFloor {
		figs = append(figs, wfFigure{"added p50 per activity: (chain p50 − floor p50) ÷ 5, one workflow at a time", "≤ 2 ms", func(t wfTarget) (string, bool) {
			v := addedPerActivity(t.Chain.Stats.P50, fl.Chain.Stats.P50, chainLength)
			return fmt.Sprintf("%.2f ms ((%.2f − %.2f) ÷ %d)", ms(v), ms(t.Chain.Stats.P50), ms(fl.Chain.Stats.P50), chainLength), v <= 2*time.Millisecond
		}})
	}
	figs = append(figs,
		wfFigure{"chain of 5 end to end, p50 / p99, one at a time", "", func(t wfTarget) (string, bool) {
			return fmt.Sprintf("%.2f / %.2f ms", ms(t.Chain.Stats.P50), ms(t.Chain.Stats.P99)), true
		}},
		wfFigure{"sidecar CPU per activity, one at a time", "", func(t wfTarget) (string, bool) {
			d, _ := t.Chain.perActivity("sidecar")
			return fmt.Sprintf("%.0f µs", us(d)), true
		}},
		wfFigure{fmt.Sprintf("workflows (chains of 5) completed per second, %d concurrent", r.Set.Concurrency), "", func(t wfTarget) (string, bool) {
			return fmt.Sprintf("%.0f /s (p50 %.0f ms)", t.Throughput.completedRate(), ms(t.Throughput.Stats.P50)), true
		}},
		wfFigure{fmt.Sprintf("sidecar CPU per activity, %d concurrent", r.Set.Concurrency), "", func(t wfTarget) (string, bool) {
			d, _ := t.Throughput.perActivity("sidecar")
			return fmt.Sprintf("%.0f µs", us(d)), true
		}},
		wfFigure{fmt.Sprintf("%d-way fan-out completion, median of %d", r.Set.FanOut, r.Set.FanOutRuns), "≤ 5 s", func(t wfTarget) (string, bool) {
			st := t.FanOut.Stats
			return fmt.Sprintf("%.2f s (min %.2f, max %.2f)", st.P50.Seconds(), minRun(t.FanOut.Runs).Seconds(), st.Max.Seconds()),
				st.Errors == 0 && st.P50 <= 5*time.Second
		}},
	)
	return figs
}

func minRun(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	m := ds[0]
	for _, d := range ds[1:] {
		m = min(m, d)
	}
	return m
}

func (r *wfReport) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	m := r.Machine
	p("# Workflow benchmark\n\n")
	p("```sh\nTANDEM_BENCH=1 go test ./test/bench -run TestWorkflowLoad -v -timeout 30m\n```\n\n")
	p("- date: %s\n- commit: %s\n", r.Date.UTC().Format("2006-01-02 15:04 UTC"), r.Commit)
	p("- machine: %d CPUs (%s), GOMAXPROCS %d, kernel %s, %s\n", m.NProc, m.CPUModel, m.GOMAXPROCS, m.Kernel, m.GoVersion)
	p("- `uptime` before: %s\n- `uptime` after: %s\n", r.UptimeBefore, r.UptimeAfter)
	p("- the load generator (this test process), the sidecar, its placement and scheduler, the app and redis-server share these CPUs; the `uptime` lines say whether other work shared them too (a load average above the CPU count inflates every figure, latencies most)\n")
	p("- app: `test/bench/wfapp`, the official Go SDK workflow worker (`github.com/dapr/go-sdk/workflow`) on the sidecar's gRPC port: `Chain` = five `Add1` activities in a row, `FanOut` = n `Square` activities at once, summed; the client, in the test process, is durabletask-go's gRPC client (Dapr's fork, which daprd is built with; the SDK's `workflow.Client` wraps the same calls): `ScheduleNewWorkflow`, then `WaitForWorkflowCompletion` (the sidecar answers when the instance completes), whose status and output are checked\n")
	p("- each runtime: one sidecar (no app port, plaintext as a self-hosted Dapr, log level info), `state.redis` on %s as the actor state store (an app ID of its own per run; its keys are deleted at the end), one placement and one scheduler (embedded etcd) of its own, started fresh\n", r.Set.Redis)
	p("- phases per runtime, after %s of warm-up with %d clients: a chain one workflow at a time for %s; the chain from %d clients, each starting its next workflow when its previous one completed, for %s; a %d-way fan-out %d times, one after another\n",
		r.Set.Warmup, r.Set.Concurrency, r.Set.Run, r.Set.Concurrency, r.Set.Run, r.Set.FanOut, r.Set.FanOutRuns)
	p("- **floor**: the same activity bodies (JSON number in, JSON number out) served by the same app as plain HTTP handlers and called straight from the test process in the same shapes: five calls in a row (one chain); five in a row from %d clients; %d calls at once (up to %d connections), summed. \"Added per activity\" is what the sidecar and the workflow engine add to each activity over a plain call of it\n\n",
		r.Set.Concurrency, r.Set.FanOut, max(r.Set.Concurrency, 64))
	for _, t := range r.runtimes() {
		if t.Skip != "" {
			p("- **%s: skipped**: %s\n", t.Name, t.Skip)
		} else {
			p("- %s control plane: %s\n", t.Name, t.ControlPlane)
		}
	}

	runtimes := r.runtimes()
	p("\n## Targets (issue 12)\n\n| figure |")
	for _, t := range runtimes {
		p(" %s |", t.Name)
	}
	p(" target | met (%s) |\n|---|", runtimes0(runtimes))
	for range runtimes {
		p("---|")
	}
	p("---|---|\n")
	for _, f := range r.figures() {
		p("| %s |", f.Figure)
		met := "–"
		for i, t := range runtimes {
			if t.Skip != "" {
				p(" not run |")
				continue
			}
			v, ok := f.Value(t)
			p(" %s |", v)
			if i == 0 && f.Goal != "" {
				met = "yes"
				if !ok {
					met = "**no**"
				}
			}
		}
		goal := f.Goal
		if goal == "" {
			goal = "–"
		}
		p(" %s | %s |\n", goal, met)
	}

	p("\n## Runs\n\nLatency is per workflow (floor: per chain of plain calls, per fan-out); CPU is per completed activity, µs.\n\n")
	p("| runtime | phase | completed | errors | completed/s | activities/s | p50 ms | p90 ms | p99 ms | max ms | sidecar | app | scheduler | placement | redis-server | client |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range r.Targets {
		for _, ph := range t.phases() {
			st := ph.Stats
			actRate := 0.0
			if st.Duration > 0 {
				actRate = float64(ph.Activities) / st.Duration.Seconds()
			}
			p("| %s | %s | %d | %d | %.1f | %.0f | %.2f | %.2f | %.2f | %.2f |", t.Name, ph.Name, st.Ops-st.Errors, st.Errors, ph.completedRate(), actRate,
				ms(st.P50), ms(st.P90), ms(st.P99), ms(st.Max))
			for _, role := range []string{"sidecar", "app", "scheduler", "placement", "redis-server", "client"} {
				if d, ok := ph.perActivity(role); ok {
					p(" %.1f |", us(d))
				} else {
					p(" – |")
				}
			}
			p("\n")
		}
	}
	for _, t := range r.Targets {
		for _, ph := range t.phases() {
			if ph.Stats.FirstErr != "" {
				p("\nfirst error of %s, %s: `%s`\n", t.Name, ph.Name, ph.Stats.FirstErr)
			}
		}
	}
	p("\nFan-out completion times, s:")
	for _, t := range r.Targets {
		if t.Skip == "" {
			p(" %s %s;", t.Name, seconds(t.FanOut.Runs))
		}
	}
	p("\n\n## Sidecar memory\n\n| runtime | idle VmRSS (after start, worker not yet connected) | max sampled VmRSS (concurrent run) | VmHWM (end) | VmRSS (end) |\n|---|---|---|---|---|\n")
	for _, t := range runtimes {
		if t.Skip == "" {
			mm := t.Memory
			p("| %s | %s (binary pages %s) | %s | %s | %s |\n", t.Name, mib(mm.Idle), mib(mm.IdleFile), mib(mm.LoadPeak), mib(mm.HWM), mib(mm.AfterLoad))
		}
	}
	for _, t := range runtimes {
		if t.Profile != "" {
			p("\n## Where %s's CPU goes (pprof, concurrent run)\n\n```\n%s\n```\n", t.Name, strings.TrimRight(t.Profile, "\n"))
		}
	}
	return b.String()
}

// runtimes0 names the runtime the "met" column is about.
func runtimes0(ts []wfTarget) string {
	if len(ts) == 0 {
		return "–"
	}
	return ts[0].Name
}

func seconds(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	return strings.Join(parts, ", ")
}

func TestWorkflowFigures(t *testing.T) {
	if got := sumSquares(1000); got != 332833500 {
		t.Errorf("sumSquares(1000) = %d, want 332833500", got)
	}
	if got := sumSquares(1); got != 0 {
		t.Errorf("sumSquares(1) = %d, want 0", got)
	}
	if got := addedPerActivity(12*time.Millisecond, 2*time.Millisecond, 5); got != 2*time.Millisecond {
		t.Errorf("addedPerActivity = %v, want 2ms", got)
	}
	if got := addedPerActivity(time.Millisecond, 0, 0); got != 0 {
		t.Errorf("addedPerActivity with no activities = %v, want 0", got)
	}
	ph := wfPhase{Stats: opStats{Ops: 12, Errors: 2, Duration: 2 * time.Second}, Activities: 50,
		CPU: map[string]time.Duration{"sidecar": 100 * time.Millisecond}}
	if d, ok := ph.perActivity("sidecar"); !ok || d != 2*time.Millisecond {
		t.Errorf("perActivity(sidecar) = %v, %v; want 2ms", d, ok)
	}
	if _, ok := ph.perActivity("scheduler"); ok {
		t.Error("perActivity of a role not read says ok")
	}
	if r := ph.completedRate(); r != 5 {
		t.Errorf("completedRate = %v, want 5", r)
	}
}

func TestWorkflowMarkdown(t *testing.T) {
	phase := func(p50 time.Duration, acts int64) wfPhase {
		return wfPhase{Stats: opStats{Ops: 10, Duration: time.Second, P50: p50, P99: 2 * p50, Max: 3 * p50}, Activities: acts,
			CPU: map[string]time.Duration{"sidecar": time.Duration(acts) * 300 * time.Microsecond}}
	}
	fan := func(d time.Duration) wfPhase {
		ph := phase(d, 3000)
		ph.Name = "fan-out of 1000"
		ph.Runs = []time.Duration{d, d / 2, 2 * d}
		return ph
	}
	r := &wfReport{Set: wfSettings{Concurrency: 100, FanOut: 1000, FanOutRuns: 3, Run: time.Second}, Targets: []wfTarget{
		{Name: "floor", Floor: true, Chain: phase(time.Millisecond, 50), Throughput: phase(time.Millisecond, 50), FanOut: fan(100 * time.Millisecond)},
		{Name: "tandemd", Chain: phase(6*time.Millisecond, 50), Throughput: phase(20*time.Millisecond, 50), FanOut: fan(6 * time.Second)},
		{Name: "daprd 1.18.2", Skip: "no daprd at /nowhere"},
	}}
	md := r.markdown()
	for _, want := range []string{
		"| added p50 per activity: (chain p50 − floor p50) ÷ 5, one workflow at a time | 1.00 ms ((6.00 − 1.00) ÷ 5) | not run | ≤ 2 ms | yes |",
		"| 1000-way fan-out completion, median of 3 | 6.00 s (min 3.00, max 18.00) | not run | ≤ 5 s | **no** |",
		"**daprd 1.18.2: skipped**: no daprd at /nowhere",
		"| tandemd | fan-out of 1000 |",
		"300.0 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
