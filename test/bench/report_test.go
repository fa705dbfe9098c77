package bench

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	return &Report{
		Date:     time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC),
		Commit:   "abc123",
		Machine:  Machine{NProc: 2, CPUModel: "Test CPU", GoVersion: "go1.26", GOMAXPROCS: 2, Kernel: "6.1"},
		Settings: Settings{Run: 10 * time.Second, Warmup: 3 * time.Second, Connections: 16, PayloadBytes: 1024, FixedQPS: 1000},
		Runs: []Run{
			{Name: "direct, 1000 qps", TargetQPS: 1000, Requests: 10000, QPS: 1000, P50: 100 * time.Microsecond},
			{Name: "sidecars, 1000 qps", Sidecars: true, TargetQPS: 1000, Requests: 10000, QPS: 1000, P50: 350 * time.Microsecond,
				SidecarCPU: []time.Duration{600 * time.Millisecond, 400 * time.Millisecond}},
			{Name: "direct, 1000 qps staggered", TargetQPS: 1000, Staggered: true, Requests: 10000, QPS: 1000, P50: 100 * time.Microsecond},
			{Name: "sidecars, 1000 qps staggered", Sidecars: true, TargetQPS: 1000, Staggered: true, Requests: 10000, QPS: 1000, P50: 500 * time.Microsecond,
				SidecarCPU: []time.Duration{1 * time.Second, 1 * time.Second}},
			{Name: "direct, max", TargetQPS: -1, Requests: 200000, QPS: 20000},
			{Name: "sidecars, max", Sidecars: true, TargetQPS: -1, Requests: 100000, QPS: 10000,
				SidecarCPU: []time.Duration{7 * time.Second, 6 * time.Second}},
		},
		Memory:       []SidecarMem{{Name: "caller", Idle: 20 << 20, LoadPeak: 30 << 20, HWM: 41 << 20}},
		ColdOutbound: []time.Duration{40 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond},
		ColdHealthz:  []time.Duration{25 * time.Millisecond},
		BinaryBytes:  30 << 20,
	}
}

func TestTargets(t *testing.T) {
	got := map[string]Target{}
	for _, tg := range sampleReport().Targets() {
		got[tg.Figure] = tg
	}
	tests := []struct {
		figure string
		value  string
		met    bool
	}{
		{"both sidecars' CPU per request, 1000 qps", "0.100 ms", true},
		{"both sidecars' CPU per request, max rate", "0.130 ms", true},
		{"max qps through the sidecars ÷ direct", "0.50× (10000 / 20000 qps)", true},
		{"added p50, 1000 qps", "0.250 ms (0.350 − 0.100)", true},
		{"added p50, 1000 qps staggered", "0.400 ms (0.500 − 0.100)", false},
		{"both sidecars' CPU per request, 1000 qps staggered", "0.200 ms", false},
		{"RSS idle, caller", "20.0 MiB", true},
		{"RSS under load, caller (VmHWM / sampled VmRSS)", "41.0 MiB / 30.0 MiB", false},
		{"cold start to /v1.0/healthz/outbound 204 (median of 3)", "20.0 ms (min 10.0, max 40.0)", true},
		{"cold start to /v1.0/healthz 204, app listening (median of 1)", "25.0 ms (min 25.0, max 25.0)", true},
		{"tandemd binary (release build: scripts/build.sh)", "30.0 MiB", true},
	}
	for _, tt := range tests {
		t.Run(tt.figure, func(t *testing.T) {
			tg, ok := got[tt.figure]
			if !ok {
				t.Fatalf("figure missing; have %v", got)
			}
			if tg.Value != tt.value || tg.Met != tt.met {
				t.Errorf("got %q met=%v, want %q met=%v", tg.Value, tg.Met, tt.value, tt.met)
			}
		})
	}
	if len(got) != len(tests) {
		t.Errorf("%d targets, want %d", len(got), len(tests))
	}
}

func TestMarkdown(t *testing.T) {
	md := sampleReport().Markdown()
	for _, want := range []string{
		"2 CPUs (Test CPU)",
		"| RSS under load, caller (VmHWM / sampled VmRSS) | 41.0 MiB / 30.0 MiB | ≤ 40 MiB | 140–180 MiB | **no** |",
		"| sidecars, 1000 qps staggered | 1000 qps staggered | 1000 | 10000 | 0 | 0.500 |",
		"| 100.0 (60.0 + 40.0) |",
		"| 200.0 (100.0 + 100.0) |",
		"- /v1.0/healthz/outbound: 40.0, 10.0, 20.0",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{3}, 3},
		{[]time.Duration{4, 1, 2}, 2},
		{[]time.Duration{4, 1, 2, 3}, 2},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestFloorTargets(t *testing.T) {
	r := sampleReport()
	r.Floor = []Run{
		{Name: "floor: 2 tcp relays, fixed rate, staggered", Sidecars: true, TargetQPS: 1000, Staggered: true, Requests: 10000, QPS: 1000, P50: 300 * time.Microsecond,
			SidecarCPU: []time.Duration{800 * time.Millisecond, 800 * time.Millisecond}},
		{Name: "floor: 2 tcp relays, max rate", Sidecars: true, TargetQPS: -1, Requests: 300000, QPS: 30000,
			SidecarCPU: []time.Duration{4 * time.Second, 5 * time.Second}},
		{Name: "floor: 2 http relays, max rate", Sidecars: true, TargetQPS: -1, Requests: 90000, QPS: 9000,
			SidecarCPU: []time.Duration{6 * time.Second, 6 * time.Second}},
	}
	r.Dapr = []Run{
		{Name: "dapr: 2 daprd, fixed rate, staggered", Sidecars: true, TargetQPS: 1000, Staggered: true, Requests: 10000, QPS: 1000,
			SidecarCPU: []time.Duration{5 * time.Second, 5 * time.Second}},
		{Name: "dapr: 2 daprd, max rate", Sidecars: true, TargetQPS: -1, Requests: 50000, QPS: 5000,
			SidecarCPU: []time.Duration{20 * time.Second, 20 * time.Second}},
	}
	r.Memory[0].IdleAnon, r.Memory[0].LoadAnon = 7<<20, 17<<20
	got := map[string]Target{}
	for _, tg := range r.FloorTargets() {
		got[tg.Figure] = tg
	}
	tests := []struct {
		figure string
		value  string
		met    bool
	}{
		// 0.130 ms against 9 s / 300000 = 0.030 ms.
		{"pair CPU per request, max rate, ÷ TCP-relay pair", "4.33× (0.130 / 0.030 ms)", false},
		{"max qps through the pair ÷ TCP-relay pair's", "0.33× (10000 / 30000 qps)", false},
		{"pair CPU per request, staggered 1000 qps, ÷ TCP-relay pair", "1.25× (0.200 / 0.160 ms)", true},
		// added p50: 0.4 ms against 0.2 ms.
		{"added p50, staggered 1000 qps, ÷ TCP-relay pair's", "2.00× (0.400 / 0.200 ms)", false},
		{"private memory (RssAnon) idle, caller", "7.0 MiB", true},
		{"private memory (RssAnon) under load, caller (sampled, max-rate run)", "17.0 MiB", false},
		{"cold start to /v1.0/healthz/outbound 204 (median of 3)", "20.0 ms (min 10.0, max 40.0)", false},
		// daprd 0.8 ms against 0.13 at max rate; 1.0 against 0.2 staggered.
		{"Dapr's CPU per request ÷ Tandem's, max rate", "6.15× (0.800 / 0.130 ms)", true},
		{"Dapr's CPU per request ÷ Tandem's, 1000 qps staggered", "5.00× (1.000 / 0.200 ms)", true},
		{"max qps, Tandem ÷ Dapr", "2.00× (10000 / 5000 qps)", true},
	}
	for _, tt := range tests {
		t.Run(tt.figure, func(t *testing.T) {
			tg, ok := got[tt.figure]
			if !ok {
				t.Fatalf("figure missing; have %v", got)
			}
			if tg.Value != tt.value || tg.Met != tt.met {
				t.Errorf("got %q met=%v, want %q met=%v", tg.Value, tg.Met, tt.value, tt.met)
			}
		})
	}
	if len(got) != len(tests) {
		t.Errorf("%d targets, want %d", len(got), len(tests))
	}
	md := r.Markdown()
	for _, want := range []string{"## Targets (issue 16", "## Dapr 1.18.2 in the same run", "dapr: 2 daprd, max rate", "7.0 MiB / "} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}

func TestSumSeriesAndBalance(t *testing.T) {
	text := `# HELP dapr_runtime_service_invocation_req_recv_total x
# TYPE dapr_runtime_service_invocation_req_recv_total counter
dapr_runtime_service_invocation_req_recv_total{app_id="spread",src_app_id="caller"} 120
dapr_runtime_service_invocation_req_recv_total{app_id="spread",src_app_id="other"} 3
dapr_runtime_service_invocation_req_recv_total_extra 999
dapr_runtime_service_invocation_req_recv_total_seconds{a="b"} 7
`
	v, err := sumSeries(bufio.NewScanner(strings.NewReader(text)), "dapr_runtime_service_invocation_req_recv_total")
	if err != nil || v != 123 {
		t.Fatalf("sumSeries = %v, %v; want 123", v, err)
	}
	if _, err := sumSeries(bufio.NewScanner(strings.NewReader("m{a=\"b\"} x\n")), "m"); err == nil {
		t.Error("a value that is not a number: want an error")
	}
	lo, hi, cv := balance([]float64{90, 100, 110, 100})
	if lo != 0.9 || hi != 1.1 || cv < 0.07 || cv > 0.071 {
		t.Errorf("balance = %v, %v, %v; want 0.9, 1.1, ~0.0707", lo, hi, cv)
	}
	if lo, hi, cv := balance(nil); lo != 0 || hi != 0 || cv != 0 {
		t.Errorf("balance(nil) = %v %v %v", lo, hi, cv)
	}
}
