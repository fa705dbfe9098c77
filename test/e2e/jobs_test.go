package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/dapr/go-sdk/service/common"
	daprd "github.com/dapr/go-sdk/service/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// daprScheduler finds Dapr 1.18.2's scheduler binary: TANDEM_DAPR_SCHEDULER,
// or the one scripts/conformance.sh --build leaves in its cache.
func daprScheduler(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("TANDEM_DAPR_SCHEDULER"), "/var/tmp/tandem-dapr-suite/bin/scheduler"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Dapr's scheduler binary not found: set TANDEM_DAPR_SCHEDULER or run scripts/conformance.sh --build")
	}
	t.Skip("Dapr's scheduler binary not found: set TANDEM_DAPR_SCHEDULER or run scripts/conformance.sh --build")
	return ""
}

// startDaprScheduler runs one Dapr scheduler (embedded etcd, plaintext) on
// random ports and returns its address once it is healthy.
func startDaprScheduler(t *testing.T) (*framework.Process, string) {
	t.Helper()
	bin := daprScheduler(t)
	port, healthz := framework.FreePort(t), framework.FreePort(t)
	args := []string{
		"--id=scheduler-0", fmt.Sprintf("--port=%d", port), "--listen-address=127.0.0.1",
		fmt.Sprintf("--healthz-port=%d", healthz), fmt.Sprintf("--metrics-port=%d", framework.FreePort(t)),
		"--etcd-data-dir=" + t.TempDir(), fmt.Sprintf("--etcd-client-port=%d", framework.FreePort(t)),
		fmt.Sprintf("--etcd-initial-cluster=scheduler-0=http://127.0.0.1:%d", framework.FreePort(t)),
		"--identity-directory-write=" + t.TempDir(), "--mode=standalone",
	}
	p := framework.Start(t, "dapr scheduler", bin, args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := framework.WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz), 200, 30*time.Second); err != nil {
		t.Fatalf("dapr scheduler: %v\n%s", err, p.Output())
	}
	return p, fmt.Sprintf("127.0.0.1:%d", port)
}

// TestJobsWithGoSDK schedules jobs with the official Go SDK through
// tandemd on Dapr's own scheduler, and receives them in a Go SDK job
// event service (which serves only OnJobEventAlpha1: tandemd falls back to
// it as daprd does).
func TestJobsWithGoSDK(t *testing.T) {
	_, schedAddr := startDaprScheduler(t)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		got = map[string][]string{}
	)
	svc := daprd.NewServiceWithListener(lis)
	for _, name := range []string{"once", "thrice"} {
		if err := svc.AddJobEventHandler(name, func(_ context.Context, e *common.JobEvent) error {
			var v wrapperspb.StringValue
			_ = (&anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.StringValue", Value: e.Data}).UnmarshalTo(&v)
			mu.Lock()
			got[e.JobType] = append(got[e.JobType], v.GetValue())
			mu.Unlock()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	go func() { _ = svc.Start() }()
	t.Cleanup(func() { _ = svc.GracefulStop() })

	sc := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "jobs-e2e", AppPort: lis.Addr().(*net.TCPAddr).Port, AppProtocol: "grpc",
		Args: []string{"--scheduler-host-address", schedAddr},
	})
	client, err := dapr.NewClientWithAddress(sc.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	data := func(s string) *anypb.Any {
		a, _ := anypb.New(wrapperspb.String(s))
		return a
	}
	if err := client.ScheduleJobAlpha1(ctx, &dapr.Job{Name: "once", DueTime: "1s", Data: data("hello")}); err != nil {
		t.Fatalf("schedule once: %v\n%s", err, sc.Output())
	}
	if err := client.ScheduleJobAlpha1(ctx, &dapr.Job{Name: "thrice", Schedule: "@every 1s", Repeats: 3, Data: data("tick")}); err != nil {
		t.Fatalf("schedule thrice: %v", err)
	}
	job, err := client.GetJobAlpha1(ctx, "thrice")
	if err != nil || job.Schedule != "@every 1s" || job.Repeats != 3 {
		t.Fatalf("get thrice = %+v, %v", job, err)
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		once, thrice := len(got["once"]), len(got["thrice"])
		mu.Unlock()
		if once == 1 && thrice == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("triggers: once %d (want 1), thrice %d (want 3)\n%s", once, thrice, sc.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A job that has run its course is gone; no trigger is repeated.
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(got["once"]) != 1 || len(got["thrice"]) != 3 || got["once"][0] != "hello" || got["thrice"][2] != "tick" {
		t.Fatalf("triggers = %v", got)
	}
	if _, err := client.GetJobAlpha1(ctx, "once"); err == nil {
		t.Fatal("job once still exists after its only trigger")
	}
	if err := client.DeleteJobAlpha1(ctx, "thrice"); err != nil {
		t.Fatalf("delete: %v", err)
	}
}
