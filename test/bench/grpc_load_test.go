package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	dapr "github.com/dapr/go-sdk/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// grpcRun is one measured run of the gRPC invocation benchmark.
type grpcRun struct {
	Path      string // direct, tcp relays, tandem invoke, tandem proxied, dapr invoke, dapr proxied
	Staggered bool   // the fixed staggered rate; false: max rate
	Stats     opStats
	// PairCPU is the two sidecars' (or relays') CPU; 0 for direct runs.
	PairCPU   time.Duration
	AppCPU    time.Duration
	ClientCPU time.Duration
}

// cpuPerOp is the pair's CPU per operation in ms.
func (r grpcRun) cpuPerOp() float64 {
	if r.Stats.Ops == 0 {
		return 0
	}
	return ms(r.PairCPU) / float64(r.Stats.Ops)
}

// TestGRPCInvokeLoad measures invocation over Dapr's gRPC API through two
// sidecars: InvokeService (the Go SDK's InvokeMethodWithContent) and a
// proxied gRPC call (the app's own gRPC method with dapr-app-id metadata),
// both to a gRPC app (test/apps/grpcecho, the Go SDK's service) that echoes
// the data. In the same run: the app called directly, the same direct call
// through two TCP relays (the floor), and both paths through two daprd
// when scripts/build-daprd.sh has built one. Writes
// results/invoke-grpc.md.
func TestGRPCInvokeLoad(t *testing.T) {
	if os.Getenv("TANDEM_BENCH") != "1" {
		t.Skip("load benchmark: run it with TANDEM_BENCH=1 go test ./test/bench -run TestGRPCInvokeLoad -v -timeout 20m (see test/bench/README.md)")
	}
	set := settingsFromEnv(t)
	bins := benchBinaries(t)
	loadBefore := machine().LoadAvg
	sentry := framework.StartSentry(t, bins, framework.SentryOptions{})
	registry := filepath.Join(t.TempDir(), "registry.db")
	app := framework.StartApp(t, "grpc echo app", bins.GRPCEcho)
	args := []string{"--log-level", "info", "--config", writeConfig(t, registry)}
	callee := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "callee", AppPort: app.Port, AppProtocol: "grpc", Sentry: sentry, Args: args,
	})
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "caller", Sentry: sentry, Args: args,
	})
	g := &grpcHarness{t: t, set: set, cpu: NewProcCPU(), payload: payload(set.PayloadBytes), appPID: app.PID()}
	appAddr := fmt.Sprintf("127.0.0.1:%d", app.Port)

	type path struct {
		name string
		pids []int
		op   func(w, i int) error
	}
	paths := []path{
		{"direct", nil, g.onInvoke(appAddr, "")},
		{"tandem invoke", []int{caller.PID(), callee.PID()}, g.invokeService(caller.GRPCAddr(), "callee")},
		{"tandem proxied", []int{caller.PID(), callee.PID()}, g.onInvoke(caller.GRPCAddr(), "callee")},
	}
	relays, relayPIDs := startRelays(t, bins, "tcp", appAddr)
	paths = append(paths, path{"tcp relays", relayPIDs, g.onInvoke(relays, "")})
	if daprd := daprdForBench(t); daprd != "" {
		dcaller, dcallee := startDaprdPair(t, bins, daprd, sentry, app.Port, "grpc")
		pids := []int{dcaller.PID(), dcallee.PID()}
		paths = append(paths,
			path{"dapr invoke", pids, g.invokeService(dcaller.GRPCAddr(), "dcallee")},
			path{"dapr proxied", pids, g.onInvoke(dcaller.GRPCAddr(), "dcallee")})
	}

	// Every path answers before anything is measured (the callee may take
	// a moment to appear in the registry), then warms up.
	for _, p := range paths {
		g.wait(p.name, p.op)
		if s := closedLoop(set.Connections, set.Warmup, p.op); s.Errors > 0 {
			t.Fatalf("warm-up %s: %d errors, first: %s", p.name, s.Errors, s.FirstErr)
		}
	}
	var runs []grpcRun
	for _, staggered := range []bool{true, false} {
		for _, p := range paths {
			runs = append(runs, g.measure(p.name, p.pids, staggered, p.op))
		}
	}

	md := grpcMarkdown(runs, set, loadBefore)
	t.Logf("\n%s", md)
	writeBenchReport(t, "TANDEM_BENCH_GRPC_OUT", filepath.Join("results", "invoke-grpc.md"), md)
	for _, r := range runs {
		if r.Stats.Errors > 0 {
			t.Errorf("%s: %d of %d calls failed, first: %s", r.Path, r.Stats.Errors, r.Stats.Ops, r.Stats.FirstErr)
		}
	}
}

type grpcHarness struct {
	t       *testing.T
	set     Settings
	cpu     ProcCPU
	payload []byte
	appPID  int
}

// conn is one gRPC connection to addr, shared by every worker of a path as
// an SDK client shares its one connection.
func (g *grpcHarness) conn(addr string) *grpc.ClientConn {
	g.t.Helper()
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { c.Close() })
	return c
}

// onInvoke calls AppCallback/OnInvoke("echo") at addr: the app itself, or,
// with appID set, a sidecar that proxies the call to that app (dapr-app-id).
func (g *grpcHarness) onInvoke(addr, appID string) func(w, i int) error {
	cb := runtimev1.NewAppCallbackClient(g.conn(addr))
	ctx := context.Background()
	if appID != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "dapr-app-id", appID)
	}
	req := &commonv1.InvokeRequest{Method: "echo", Data: &anypb.Any{Value: g.payload}, ContentType: "application/octet-stream"}
	return func(int, int) error {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		res, err := cb.OnInvoke(c, req)
		if err != nil {
			return err
		}
		return g.check(res.GetData().GetValue())
	}
}

// invokeService calls InvokeService(appID, "echo") with the Go SDK.
func (g *grpcHarness) invokeService(addr, appID string) func(w, i int) error {
	client := dapr.NewClientWithConnection(g.conn(addr))
	content := &dapr.DataContent{ContentType: "application/octet-stream", Data: g.payload}
	return func(int, int) error {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := client.InvokeMethodWithContent(c, appID, "echo", "post", content)
		if err != nil {
			return err
		}
		return g.check(out)
	}
}

func (g *grpcHarness) check(got []byte) error {
	if !bytes.Equal(got, g.payload) {
		return fmt.Errorf("echoed %d bytes, not the %d sent", len(got), len(g.payload))
	}
	return nil
}

// wait retries op until it succeeds, for up to 20 s.
func (g *grpcHarness) wait(name string, op func(w, i int) error) {
	g.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := op(0, 0)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("%s does not echo the data: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// measure runs op on path at the staggered fixed rate or at max rate and
// reads the CPU of the pair (pids), the app and this process around it.
func (g *grpcHarness) measure(path string, pids []int, staggered bool, op func(w, i int) error) grpcRun {
	g.t.Helper()
	read := func() (pair, app, client time.Duration) {
		for _, pid := range pids {
			pair += g.cpu.CPUOrUnknown(pid)
		}
		return pair, g.cpu.CPUOrUnknown(g.appPID), selfCPU()
	}
	qps := 0.0
	if staggered {
		qps = g.set.FixedQPS
	}
	p0, a0, c0 := read()
	s := pacedLoop(g.set.Connections, qps, g.set.Run, op)
	p1, a1, c1 := read()
	run := grpcRun{Path: path, Staggered: staggered, Stats: s, PairCPU: p1 - p0, AppCPU: a1 - a0, ClientCPU: c1 - c0}
	g.t.Logf("%s, %s: %.0f calls/s, %d calls, %d errors, p50 %.3f ms, p99 %.3f ms, pair CPU %.3f ms per call",
		path, grpcRateLabel(staggered, g.set.FixedQPS), s.Rate(), s.Ops, s.Errors, ms(s.P50), ms(s.P99), run.cpuPerOp())
	return run
}

func grpcRateLabel(staggered bool, qps float64) string {
	if staggered {
		return fmt.Sprintf("%.0f/s staggered", qps)
	}
	return "max rate"
}

// grpcMarkdown renders the runs and the ratios for both paths.
func grpcMarkdown(runs []grpcRun, set Settings, loadBefore string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	find := func(path string, staggered bool) (grpcRun, bool) {
		for _, r := range runs {
			if r.Path == path && r.Staggered == staggered {
				return r, true
			}
		}
		return grpcRun{}, false
	}
	writeReportHead(&b, "gRPC invocation load benchmark", loadBefore, machine().LoadAvg)
	p("- load: %d workers sharing one gRPC connection per path (as an SDK client does), %d-byte data echoed back; %s per run after %s warm-up of each path; "+
		"a staggered fixed rate of %.0f calls/s (worker w sends call i at (w + 16·i) / rate, fortio -uniform's pacing) and max rate (each worker sends its next call when the last returned)\n",
		set.Connections, set.PayloadBytes, set.Run, set.Warmup, set.FixedQPS)
	p("- app: `test/apps/grpcecho`, the Dapr Go SDK's gRPC service, echoing `OnInvoke`'s data\n")
	p("- paths: **direct** = `AppCallback/OnInvoke` on the app; **tcp relays** = the same call through two TCP relays (`test/bench/relay -mode tcp`, the floor: no design with two user-space hops does less); ")
	p("**invoke** = the Go SDK's `InvokeMethodWithContent` (`Dapr/InvokeService`) → caller sidecar → mTLS → callee sidecar → `OnInvoke`; ")
	p("**proxied** = `AppCallback/OnInvoke` sent to the caller sidecar with `dapr-app-id` metadata → mTLS → callee sidecar → the app; ")
	p("**tandem** = two tandemd, **dapr** = two daprd 1.18.2 (`scripts/build-daprd.sh`), each pair with certificates from Tandem's sentry\n")
	p("- the load generator (this process), the app and the sidecars share the same CPUs\n\n")

	direct := map[bool]grpcRun{}
	for _, st := range []bool{true, false} {
		direct[st], _ = find("direct", st)
	}
	tcpS, okS := find("tcp relays", true)
	tcpM, okM := find("tcp relays", false)
	p("## Targets (issue 16: ratios to the TCP-relay floor and to Dapr in this run)\n\n| path | figure | Tandem | target | met |\n|---|---|---|---|---|\n")
	for _, kind := range []string{"invoke", "proxied"} {
		s, okTS := find("tandem "+kind, true)
		mx, okTM := find("tandem "+kind, false)
		if okTM && okM && tcpM.cpuPerOp() > 0 {
			v := mx.cpuPerOp() / tcpM.cpuPerOp()
			p("| %s | pair CPU per call, max rate, ÷ TCP-relay pair | %.2f× (%.3f / %.3f ms) | ≤ 2× | %s |\n", kind, v, mx.cpuPerOp(), tcpM.cpuPerOp(), yesNo(v <= 2))
		}
		if okTM && okM && tcpM.Stats.Rate() > 0 {
			v := mx.Stats.Rate() / tcpM.Stats.Rate()
			p("| %s | max calls/s through the pair ÷ TCP-relay pair's | %.2f× (%.0f / %.0f) | ≥ 0.6× | %s |\n", kind, v, mx.Stats.Rate(), tcpM.Stats.Rate(), yesNo(v >= 0.6))
		}
		if okTS && okS && tcpS.cpuPerOp() > 0 {
			v := s.cpuPerOp() / tcpS.cpuPerOp()
			p("| %s | pair CPU per call, staggered %.0f/s, ÷ TCP-relay pair | %.2f× (%.3f / %.3f ms) | ≤ 1.5× | %s |\n", kind, set.FixedQPS, v, s.cpuPerOp(), tcpS.cpuPerOp(), yesNo(v <= 1.5))
		}
		addT, addF := s.Stats.P50-direct[true].Stats.P50, tcpS.Stats.P50-direct[true].Stats.P50
		if okTS && okS && addF > 0 {
			v := float64(addT) / float64(addF)
			p("| %s | added p50, staggered %.0f/s, ÷ TCP-relay pair's | %.2f× (%.3f / %.3f ms) | ≤ 1.5× | %s |\n", kind, set.FixedQPS, v, ms(addT), ms(addF), yesNo(v <= 1.5))
		}
		for _, st := range []bool{false, true} {
			d, okD := find("dapr "+kind, st)
			tn, okT := find("tandem "+kind, st)
			if okD && okT && tn.cpuPerOp() > 0 {
				v := d.cpuPerOp() / tn.cpuPerOp()
				p("| %s | Dapr's CPU per call ÷ Tandem's, %s | %.2f× (%.3f / %.3f ms) | ≥ 5× | %s |\n", kind, grpcRateLabel(st, set.FixedQPS), v, d.cpuPerOp(), tn.cpuPerOp(), yesNo(v >= 5))
			}
		}
		if d, ok := find("dapr "+kind, false); ok && okTM && d.Stats.Rate() > 0 {
			p("| %s | max calls/s, Tandem ÷ Dapr | %.2f× (%.0f / %.0f) | – | – |\n", kind, mx.Stats.Rate()/d.Stats.Rate(), mx.Stats.Rate(), d.Stats.Rate())
		}
	}

	p("\n## Runs\n\n| path | rate | calls/s | calls | errors | p50 ms | p90 ms | p99 ms | max ms | pair CPU ms / 1000 calls | app CPU ms / 1000 calls | client CPU ms / 1000 calls |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	perK := func(r grpcRun, d time.Duration) string {
		if d < 0 || r.Stats.Ops == 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f", ms(d)*1000/float64(r.Stats.Ops))
	}
	for _, r := range runs {
		pair := "–"
		if r.Path != "direct" {
			pair = perK(r, r.PairCPU)
		}
		s := r.Stats
		p("| %s | %s | %.0f | %d | %d | %.3f | %.3f | %.3f | %.3f | %s | %s | %s |\n", r.Path, grpcRateLabel(r.Staggered, set.FixedQPS),
			s.Rate(), s.Ops, s.Errors, ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max), pair, perK(r, r.AppCPU), perK(r, r.ClientCPU))
	}
	return b.String()
}
