package bench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	operatorv1 "github.com/dapr/dapr/pkg/proto/operator/v1"
	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/sentry/ca"
	sentryclient "github.com/tandemrun/tandem/sentry/client"
	"github.com/tandemrun/tandem/test/e2e/framework"
	"github.com/tandemrun/tandem/test/kubeplane"
)

const benchAppNS = "bench"

// kubePlane starts the control plane of the benchmarks, or skips.
func kubePlane(t *testing.T, sentryEnv ...string) *kubeplane.Plane {
	t.Helper()
	if os.Getenv("TANDEM_BENCH") != "1" {
		t.Skip("set TANDEM_BENCH=1 to run the Kubernetes control-plane benchmarks")
	}
	bins, err := framework.Build()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(framework.Cleanup)
	return kubeplane.Start(t, bins, []string{benchAppNS}, sentryEnv...)
}

func benchInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestOperatorStreams measures the operator serving many sidecars: each
// of TANDEM_BENCH_STREAMS (2000) sidecars has its own mTLS connection
// with its own SVID and a ComponentUpdate stream, as daprd opens. It
// reports the time for one Component change made through the API server
// to reach every stream, and the operator's resident memory and CPU.
// Targets (issue 10): <= 2 s and <= 200 MiB. TANDEM_BENCH_OPERATOR_ENV
// adds variables to the operator's environment (e.g. GOGC=50).
//
//	TANDEM_BENCH=1 go test ./test/bench -run TestOperatorStreams -v -timeout 20m
func TestOperatorStreams(t *testing.T) {
	p := kubePlane(t)
	n := benchInt("TANDEM_BENCH_STREAMS", 2000)
	op, addr := p.StartOperator(strings.Fields(os.Getenv("TANDEM_BENCH_OPERATOR_ENV"))...)
	opID := kubeplane.OperatorID()
	cpu := NewProcCPU()
	memIdle, err := ReadMem(op.PID())
	if err != nil {
		t.Fatal(err)
	}

	dyn, err := dynamic.NewForConfig(p.Config)
	if err != nil {
		t.Fatal(err)
	}
	comps := dyn.Resource(schema.GroupVersionResource{Group: "dapr.io", Version: "v1alpha1", Resource: "components"}).Namespace(benchAppNS)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// received[i] is when stream i saw each value of the component's
	// "round" metadata.
	type seen struct {
		mu sync.Mutex
		at map[string]time.Time
	}
	received := make([]seen, n)
	var open, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		id := spiffeid.RequireFromSegments(spiffeid.RequireTrustDomainFromString("public"), "ns", benchAppNS, fmt.Sprintf("app-%d", i))
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(identity.ClientTLS(p.Source(id), tlsconfig.AuthorizeID(opID)))))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		received[i].at = map[string]time.Time{}
		wg.Go(func() {
			stream, err := operatorv1.NewOperatorClient(conn).ComponentUpdate(ctx, &operatorv1.ComponentUpdateRequest{Namespace: benchAppNS})
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				return
			}
			open.Add(1)
			for {
				ev, err := stream.Recv()
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
					return
				}
				now := time.Now()
				var round string
				if i := bytes.Index(ev.GetComponent(), []byte(`"round-`)); i >= 0 {
					round, _, _ = strings.Cut(string(ev.GetComponent()[i+1:]), `"`)
				}
				received[i].mu.Lock()
				if _, ok := received[i].at[round]; !ok {
					received[i].at[round] = now
				}
				received[i].mu.Unlock()
			}
		})
	}
	// Each stream's handshake and subscription is done once it has seen a
	// change: round-0 proves all are subscribed, round-1 is measured.
	apply := func(round string) time.Time {
		t.Helper()
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "dapr.io/v1alpha1", "kind": "Component",
			"metadata": map[string]any{"name": "bench", "namespace": benchAppNS},
			"spec": map[string]any{"type": "state.in-memory", "version": "v1",
				"metadata": []any{map[string]any{"name": "round", "value": round}}},
		}}
		at := time.Now()
		cur, err := comps.Get(ctx, "bench", metav1.GetOptions{})
		if err == nil {
			obj.SetResourceVersion(cur.GetResourceVersion())
			_, err = comps.Update(ctx, obj, metav1.UpdateOptions{})
		} else {
			_, err = comps.Create(ctx, obj, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		return at
	}
	// waitAll returns, for each stream that saw round within timeout, how
	// long after since it did.
	waitAll := func(round string, since time.Time, timeout time.Duration) ([]time.Duration, int) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			var got []time.Duration
			for i := range received {
				received[i].mu.Lock()
				if at, ok := received[i].at[round]; ok {
					got = append(got, at.Sub(since))
				}
				received[i].mu.Unlock()
			}
			if len(got) == n || time.Now().After(deadline) {
				return got, len(got)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Round 0 until every stream has it (streams still connecting get
	// later rounds: apply again every few seconds).
	var subscribed int
	for r := 0; ; r++ {
		round := fmt.Sprintf("round-0-%d", r)
		at := apply(round)
		if _, subscribed = waitAll(round, at, 5*time.Second); subscribed == n {
			break
		}
		if r > 40 || failed.Load() > 0 {
			t.Fatalf("%d of %d streams subscribed after %d tries, %d failed (first error: %v)\noperator:\n%s", subscribed, n, r+1, failed.Load(), firstErr.Load(), op.Output())
		}
	}
	connected := time.Since(start)
	memConnected, _ := ReadMem(op.PID())
	cpu0, _ := cpu.CPU(op.PID())

	const rounds = 5
	var reach []time.Duration
	for r := range rounds {
		round := fmt.Sprintf("round-1-%d", r)
		at := apply(round)
		times, got := waitAll(round, at, 30*time.Second)
		if got != n {
			t.Fatalf("round %d reached %d of %d streams in 30 s", r, got, n)
		}
		slices.Sort(times)
		reach = append(reach, times[len(times)-1])
		t.Logf("round %d: p50 %v, last %v", r, times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
		time.Sleep(500 * time.Millisecond)
	}
	cpu1, _ := cpu.CPU(op.PID())
	mem, _ := ReadMem(op.PID())
	slices.Sort(reach)
	report := fmt.Sprintf(`## Operator: %d sidecar streams

| figure | value |
|---|---|
| streams (own mTLS connection and SVID each, ComponentUpdate) | %d |
| time to connect and subscribe all | %v |
| one Component change to reach all streams: median of %d | %v |
| the same, worst of %d | %v |
| operator RSS idle / with all streams / after the changes (VmHWM) | %s / %s / %s (peak %s) |
| operator CPU for %d changes to all streams | %v |

Targets (issue 10): <= 2 s to reach all, <= 200 MiB.
Command: TANDEM_BENCH=1 go test ./test/bench -run TestOperatorStreams -v -timeout 20m
`, n, n, connected.Round(time.Millisecond), rounds, reach[rounds/2].Round(time.Millisecond), rounds, reach[rounds-1].Round(time.Millisecond),
		mib(memIdle.RSS), mib(memConnected.RSS), mib(mem.RSS), mib(mem.HWM), rounds, (cpu1 - cpu0).Round(time.Millisecond))
	t.Log("\n" + report)
	writeKubeReport(t, "operator-streams.md", report)
	if reach[rounds/2] > 2*time.Second || mem.RSS > 200<<20 {
		t.Errorf("over the targets (2 s, 200 MiB): %v, %s", reach[rounds/2], mib(mem.RSS))
	}
	cancel()
	wg.Wait()
}

func writeKubeReport(t *testing.T, name, report string) {
	out := filepath.Join("results", name)
	if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
		t.Logf("write %s: %v", out, err)
	}
}

// TestSentryKubernetesSigns measures certificates signed per second by
// sentry in Kubernetes mode on one core (GOMAXPROCS=1): each request's
// projected token goes through a TokenReview, and the pod is read, as for
// a real sidecar. TANDEM_BENCH_SECONDS (10) long, TANDEM_BENCH_CONNECTIONS
// (16) requests in flight.
//
//	TANDEM_BENCH=1 go test ./test/bench -run TestSentryKubernetesSigns -v -timeout 20m
func TestSentryKubernetesSigns(t *testing.T) {
	p := kubePlane(t, "GOMAXPROCS=1")
	seconds := benchInt("TANDEM_BENCH_SECONDS", 10)
	workers := benchInt("TANDEM_BENCH_CONNECTIONS", 16)
	token := p.Pod(benchAppNS, "signer-0", map[string]string{"dapr.io/app-id": "signer"})
	sentryID, err := ca.SentryID(kubeplane.TrustDomain, kubeplane.ControlNamespace)
	if err != nil {
		t.Fatal(err)
	}
	tlsConf := tlsconfig.TLSClientConfig(x509bundle.FromX509Authorities(sentryID.TrustDomain(), p.CA.TrustAnchors()), tlsconfig.AuthorizeID(sentryID))
	conn, err := grpc.NewClient(p.SentryAddr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	caClient := sentryv1.NewCAClient(conn)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	req := &sentryv1.SignCertificateRequest{
		Id: "signer", Namespace: benchAppNS, Token: token, TokenValidator: sentryv1.SignCertificateRequest_KUBERNETES,
		TrustDomain: "public", CertificateSigningRequest: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
	}
	// One call first: it must work, and warms the connection.
	resp, err := caClient.SignCertificate(context.Background(), req)
	if err != nil {
		t.Fatalf("sign: %v\n%s", err, p.Sentry.Output())
	}
	if _, err := sentryclient.ParseResponse(resp); err != nil {
		t.Fatal(err)
	}
	cpu := NewProcCPU()
	cpu0, _ := cpu.CPU(p.Sentry.PID())
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var lat sync.Mutex
	var latencies []time.Duration
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds)*time.Second)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var mine []time.Duration
			// ctx ends the run; requests in flight then finish (their
			// own context has no deadline, which sentry would see first).
			for ctx.Err() == nil {
				t0 := time.Now()
				_, err := caClient.SignCertificate(context.Background(), req)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
				mine = append(mine, time.Since(t0))
			}
			lat.Lock()
			latencies = append(latencies, mine...)
			lat.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, _ := cpu.CPU(p.Sentry.PID())
	if failed.Load() > 0 {
		t.Errorf("%d signs failed (first: %v)", failed.Load(), firstErr.Load())
	}
	slices.Sort(latencies)
	if len(latencies) == 0 {
		t.Fatal("no certificate signed")
	}
	rate := float64(ok.Load()) / elapsed.Seconds()
	report := fmt.Sprintf(`## sentry --mode kubernetes: certificates signed per second

| figure | value |
|---|---|
| signed (TokenReview + pod read each) | %d in %v, %d in flight |
| rate | %.0f /s |
| latency p50 / p99 | %v / %v |
| sentry CPU (GOMAXPROCS=1) | %v (%.0f%% of one core) |
| sentry CPU per certificate | %v |

The API server (envtest, same machine) answers the TokenReviews and pod reads.
Command: TANDEM_BENCH=1 go test ./test/bench -run TestSentryKubernetesSigns -v -timeout 20m
`, ok.Load(), elapsed.Round(time.Millisecond), workers, rate,
		latencies[len(latencies)/2].Round(time.Microsecond), latencies[len(latencies)*99/100].Round(time.Microsecond),
		(cpu1 - cpu0).Round(time.Millisecond), 100*(cpu1-cpu0).Seconds()/elapsed.Seconds(),
		((cpu1 - cpu0) / time.Duration(ok.Load())).Round(time.Microsecond))
	t.Log("\n" + report)
	writeKubeReport(t, "sentry-kubernetes.md", report)
}
