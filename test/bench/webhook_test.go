package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/tandemrun/tandem/internal/kubetest"
	"github.com/tandemrun/tandem/test/k8s/cluster"
)

// TestWebhookLatency measures the injector's admission latency at a fixed rate (issue 10: 100 pod creations per
// second), against the real injector process serving sentry's certificate, started from the plain manifests on a
// real API server (test/k8s/cluster):
//
//   - direct: AdmissionReviews POSTed to the webhook over TLS, as the API server sends them, open loop;
//
//   - through the API server: pods created with client-go, annotated (the API server calls the webhook) and plain
//     (it does not: the match condition), at the same rate; the difference is what the webhook adds.
//
//     TANDEM_BENCH=1 KUBEBUILDER_ASSETS=$(bash scripts/build-kube.sh) go test ./test/bench -run TestWebhookLatency -v -timeout 20m
//
// TANDEM_BENCH_WEBHOOK_QPS (100) and TANDEM_BENCH_SECONDS (10) set the rate and the length of each run; the report
// goes to TANDEM_BENCH_OUT (results/webhook.md).
func TestWebhookLatency(t *testing.T) {
	if os.Getenv("TANDEM_BENCH") != "1" {
		t.Skip("webhook benchmark: run it with TANDEM_BENCH=1 go test ./test/bench -run TestWebhookLatency -v -timeout 20m")
	}
	env := kubetest.StartWith(kubetest.Options{APIServerFlags: cluster.APIServerFlags})
	t.Cleanup(env.Stop)
	cfg := env.Require(t)
	n := cluster.NewNode(t, cfg)
	cp := cluster.StartControlPlane(t, n)
	qps := envInt("TANDEM_BENCH_WEBHOOK_QPS", 100)
	total := qps * envInt("TANDEM_BENCH_SECONDS", 10)

	cm, err := n.CS.CoreV1().ConfigMaps(cluster.Namespace).Get(n.Ctx, "dapr-trust-bundle", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(cm.Data["ca.crt"])) {
		t.Fatal("the trust bundle holds no certificate")
	}
	// The API server's view of the webhook: the Service's name, checked against the caBundle.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64,
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "dapr-sidecar-injector." + cluster.Namespace + ".svc"}}}
	review := func(i int) error {
		pod := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p" + strconv.Itoa(i), Namespace: "bench", Annotations: map[string]string{
			"dapr.io/enabled": "true", "dapr.io/app-id": "bench", "dapr.io/app-port": "8080"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}}}
		raw, _ := json.Marshal(pod)
		body, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{UID: types.UID(strconv.Itoa(i)), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
				Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "bench", Operation: admissionv1.Create,
				Object: runtime.RawExtension{Raw: raw}}})
		resp, err := client.Post("https://"+cp.InjectorAddr+"/mutate", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var out admissionv1.AdmissionReview
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return err
		}
		if out.Response == nil || !out.Response.Allowed || len(out.Response.Patch) == 0 {
			return fmt.Errorf("review %d: %+v", i, out.Response)
		}
		return nil
	}
	// Warm the connections, then measure.
	openLoop(t, 20, qps, review)
	direct := openLoop(t, total, qps, review)

	n.Kubectl("apiVersion: v1\nkind: Namespace\nmetadata: {name: bench}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default, namespace: bench}\n", "apply", "-f", "-")
	fast := *cfg
	fast.QPS, fast.Burst = float32(10*qps), 10*qps
	cs := kubernetes.NewForConfigOrDie(&fast)
	create := func(prefix string, annotated bool) func(i int) error {
		return func(i int) error {
			// ServiceAccountName is what the ServiceAccount admission plugin (left out by envtest) sets.
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: prefix + strconv.Itoa(i)},
				Spec: corev1.PodSpec{ServiceAccountName: "default", Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}}}
			if annotated {
				pod.Annotations = map[string]string{"dapr.io/enabled": "true", "dapr.io/app-id": "bench", "dapr.io/app-port": "8080"}
			}
			out, err := cs.CoreV1().Pods("bench").Create(context.Background(), pod, metav1.CreateOptions{})
			if err == nil && annotated && len(out.Spec.InitContainers) == 0 {
				err = fmt.Errorf("pod %s created without its sidecar", out.Name)
			}
			return err
		}
	}
	openLoop(t, 20, qps, create("warm-", true))
	annotated := openLoop(t, total, qps, create("dapr-", true))
	plain := openLoop(t, total, qps, create("plain-", false))

	report := fmt.Sprintf("# Webhook admission latency\n\n%s, %d requests at %d/s each, one injector process (GOMAXPROCS unset) on %s.\n\n"+
		"| path | p50 | p90 | p99 | max | errors |\n|---|---|---|---|---|---|\n%s%s%s",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), total, qps, machineLine(),
		direct.row("AdmissionReview → injector (TLS, sentry's certificate)"),
		annotated.row("pod create, annotated (API server → webhook)"),
		plain.row("pod create, not annotated (webhook not called)"))
	t.Log("\n" + report)
	out := os.Getenv("TANDEM_BENCH_OUT")
	if out == "" {
		out = filepath.Join("results", "webhook.md")
	}
	if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
		t.Error(err)
	}
	for _, r := range []latencies{direct, annotated, plain} {
		if r.errors > 0 {
			t.Errorf("%d of %d requests failed: %v", r.errors, len(r.d)+r.errors, r.first)
		}
	}
}

// latencies of one open-loop run.
type latencies struct {
	d      []time.Duration
	errors int
	first  error
}

func (l latencies) at(q float64) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	return l.d[min(len(l.d)-1, int(q*float64(len(l.d))))]
}

func (l latencies) row(name string) string {
	f := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %d |\n", name, f(l.at(0.5)), f(l.at(0.9)), f(l.at(0.99)), f(l.at(1)), l.errors)
}

// openLoop starts op(i) for i < total at qps, each in its own goroutine (a slow answer does not slow the rate), and
// returns the sorted latencies.
func openLoop(t *testing.T, total, qps int, op func(i int) error) latencies {
	t.Helper()
	var mu sync.Mutex
	var l latencies
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(qps))
	defer tick.Stop()
	for i := range total {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := op(i)
			d := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				l.errors++
				if l.first == nil {
					l.first = err
				}
				return
			}
			l.d = append(l.d, d)
		}()
	}
	wg.Wait()
	slices.Sort(l.d)
	return l
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func machineLine() string {
	m := machine()
	return fmt.Sprintf("%d CPUs (%s), load average %s at the start", m.NProc, m.CPUModel, m.LoadAvg)
}
