package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandemrun/tandem/test/e2e/framework"
	"github.com/tandemrun/tandem/test/k8s/cluster"
)

const appsNamespace = "apps"

// appPod is an annotated pod running on the node: the app and its injected sidecar.
type appPod struct {
	ID       string
	Pod      *corev1.Pod
	App      *framework.Process
	Sidecar  *framework.Process
	HTTPPort string
	// MetricsPort is the sidecar's Prometheus port.
	MetricsPort string
}

func (a *appPod) url(path string) string { return "http://127.0.0.1:" + a.HTTPPort + path }

// TestPodsAsProcesses runs the control plane from the plain manifests, creates two annotated pods through the API,
// and runs what the injector made of them.
func TestPodsAsProcesses(t *testing.T) {
	n := cluster.NewNode(t, kube.Require(t))
	cp := cluster.StartControlPlane(t, n)

	t.Run("webhook caBundle is sentry's trust bundle", func(t *testing.T) {
		hook, err := n.CS.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(n.Ctx, "dapr-sidecar-injector", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm, err := n.CS.CoreV1().ConfigMaps(cluster.Namespace).Get(n.Ctx, "dapr-trust-bundle", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(hook.Webhooks[0].ClientConfig.CABundle); got != cm.Data["ca.crt"] {
			t.Errorf("caBundle\n%s\nwant the trust bundle\n%s", got, cm.Data["ca.crt"])
		}
	})

	n.Kubectl(fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: %[1]s}
---
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: appconfig, namespace: %[1]s}
spec:
  nameResolution:
    component: sqlite
    configuration:
      connectionString: %[2]s/nr.db
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: statestore, namespace: %[1]s}
spec:
  type: state.in-memory
  version: v1
  metadata: []
`, appsNamespace, n.Dir), "apply", "-f", "-")

	caller := startAppPod(t, n, cp, "caller", "caller-0")
	callee := startAppPod(t, n, cp, "callee", "callee-0")

	t.Run("sidecar injected as a native sidecar", func(t *testing.T) {
		init := callee.Pod.Spec.InitContainers
		if len(init) == 0 || init[0].Name != "daprd" || init[0].RestartPolicy == nil || *init[0].RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Fatalf("init containers %+v, want daprd first with restartPolicy Always", init)
		}
	})

	t.Run("invocation by app ID both ways", func(t *testing.T) {
		for _, c := range []struct{ from, to *appPod }{{caller, callee}, {callee, caller}} {
			body := "hello " + c.to.ID
			resp := post(t, c.from.url("/v1.0/invoke/"+c.to.ID+"/method/greet"), body)
			if resp.status != http.StatusOK || resp.body != body || resp.header.Get("X-Echo-Caller") != c.from.ID {
				t.Errorf("%s -> %s: %d %q caller %q", c.from.ID, c.to.ID, resp.status, resp.body, resp.header.Get("X-Echo-Caller"))
			}
		}
	})

	t.Run("components come from the operator, with hot reload", func(t *testing.T) {
		waitComponents(t, caller, "statestore")
		n.Kubectl(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: laterstore, namespace: `+appsNamespace+`}
spec:
  type: state.in-memory
  version: v1
  metadata: []
`, "apply", "-f", "-")
		waitComponents(t, caller, "statestore", "laterstore")
		resp := post(t, caller.url("/v1.0/state/laterstore"), `[{"key":"k","value":"v"}]`)
		if resp.status != http.StatusNoContent {
			t.Fatalf("save to the applied component: %d %s", resp.status, resp.body)
		}
	})

	t.Run("certificates rotate under load with no failed call", func(t *testing.T) {
		issued := func(app string) int {
			return strings.Count(cp.Sentry.Output(), "spiffe_id=spiffe://public/ns/"+appsNamespace+"/"+app+" ")
		}
		before := map[string]int{"caller": issued("caller"), "callee": issued("callee")}
		load := framework.StartEchoLoad(context.Background(), caller.url("/v1.0/invoke/callee/method/echo"), 4)
		cluster.WaitFor(t, "two renewals of each sidecar's certificate", 3*time.Minute, func() (bool, string) {
			return issued("caller") >= before["caller"]+2 && issued("callee") >= before["callee"]+2,
				fmt.Sprintf("issued caller %d, callee %d; before %v; calls ok %d failed %d", issued("caller"), issued("callee"), before, load.OK.Load(), load.Failed.Load())
		})
		load.Stop()
		t.Logf("calls during rotation: %d ok, %d failed", load.OK.Load(), load.Failed.Load())
		if load.Failed.Load() != 0 || load.OK.Load() == 0 {
			t.Errorf("%d calls failed (first: %v), %d succeeded", load.Failed.Load(), load.FirstError(), load.OK.Load())
		}
	})

	t.Run("scaling the callee from 1 to 3 spreads the calls", func(t *testing.T) {
		callees := []*appPod{callee, startAppPod(t, n, cp, "callee", "callee-1"), startAppPod(t, n, cp, "callee", "callee-2")}
		before := make([]float64, len(callees))
		for i, c := range callees {
			before[i] = received(t, c, "caller")
		}
		start := time.Now()
		load := framework.StartEchoLoad(context.Background(), caller.url("/v1.0/invoke/callee/method/echo"), 4)
		cluster.WaitFor(t, "calls reach all three callees", 2*time.Minute, func() (bool, string) {
			var got []string
			all := true
			for i, c := range callees {
				d := received(t, c, "caller") - before[i]
				got = append(got, fmt.Sprintf("%s %.0f", c.Pod.Name, d))
				all = all && d > 0
			}
			return all, strings.Join(got, ", ")
		})
		spread := time.Since(start)
		load.Stop()
		var got []string
		for i, c := range callees {
			got = append(got, fmt.Sprintf("%s %.0f", c.Pod.Name, received(t, c, "caller")-before[i]))
		}
		t.Logf("all three callees served within %v; calls served: %s; %d ok, %d failed", spread.Round(time.Millisecond), strings.Join(got, ", "), load.OK.Load(), load.Failed.Load())
		if load.Failed.Load() != 0 {
			t.Errorf("%d calls failed (first: %v)", load.Failed.Load(), load.FirstError())
		}
	})
}

// received is how many invocations from the app ID from a's sidecar served, read from its metrics.
func received(t *testing.T, a *appPod, from string) float64 {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + a.MetricsPort + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", a.Pod.Name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "dapr_runtime_service_invocation_req_recv_total{") && strings.Contains(line, `src_app_id="`+from+`"`) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// startAppPod creates an annotated pod through the API (the injector mutates it) and runs its app and its
// injected sidecar.
func startAppPod(t *testing.T, n *cluster.Node, cp *cluster.ControlPlane, id, name string) *appPod {
	t.Helper()
	appPort := cluster.Port(t)
	pod, err := n.CS.CoreV1().Pods(appsNamespace).Create(n.Ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{
			"dapr.io/enabled": "true", "dapr.io/app-id": id, "dapr.io/app-port": appPort, "dapr.io/config": "appconfig",
		}},
		// The ServiceAccount admission plugin, which envtest leaves out, sets this on a real cluster.
		Spec: corev1.PodSpec{ServiceAccountName: "default", Containers: []corev1.Container{{Name: "app", Image: "example.com/echo:1"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", id, err)
	}
	// The API server returns the pod as stored: read the sidecar from it.
	var sidecar *corev1.Container
	all := append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...)
	if i := slices.IndexFunc(all, func(c corev1.Container) bool { return c.Name == "daprd" }); i >= 0 {
		sidecar = &all[i]
	}
	if sidecar == nil {
		t.Fatalf("pod %s has no daprd container after admission: %+v", id, pod.Spec)
	}
	a := &appPod{ID: id, Pod: pod, HTTPPort: cluster.Port(t), MetricsPort: cluster.Port(t)}
	a.App = framework.Start(t, pod.Name+"/app", n.Bins["echo"], []string{"--port", appPort}, "DAPR_HTTP_PORT="+a.HTTPPort, "APP_ID="+id)
	cluster.WaitFor(t, "sentry publishes the trust bundle in "+appsNamespace, time.Minute, func() (bool, string) {
		cm, err := n.CS.CoreV1().ConfigMaps(appsNamespace).Get(n.Ctx, "dapr-trust-bundle", metav1.GetOptions{})
		return err == nil && cm.Data["ca.crt"] != "", fmt.Sprint(err)
	})
	a.Sidecar, _ = n.Run(cluster.Container{Pod: pod, Spec: *sidecar, Bin: n.Bins["tandemd"],
		Args: []string{"--dapr-http-port", a.HTTPPort, "--dapr-grpc-port", cluster.Port(t), "--dapr-internal-grpc-port", cluster.Port(t),
			"--metrics-port", a.MetricsPort, "--control-plane-address", cp.OperatorAddr, "--sentry-address", cp.SentryAddr},
		Env: map[string]string{"DAPR_SENTRY_TOKEN_FILE": "/var/run/secrets/dapr.io/sentrytoken/token"}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := framework.WaitHTTP(ctx, a.url("/v1.0/healthz"), http.StatusNoContent, 2*time.Minute); err != nil {
		t.Fatalf("sidecar of %s: %v\n%s", id, err, a.Sidecar.Output())
	}
	return a
}

type response struct {
	status int
	body   string
	header http.Header
}

func post(t *testing.T, url, body string) response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, string(b), resp.Header}
}

// waitComponents waits until the sidecar's metadata lists the components named (and maybe built-in ones).
func waitComponents(t *testing.T, a *appPod, names ...string) {
	t.Helper()
	cluster.WaitFor(t, a.ID+"'s components "+strings.Join(names, ","), time.Minute, func() (bool, string) {
		resp, err := http.Get(a.url("/v1.0/metadata"))
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var md struct {
			Components []struct {
				Name string `json:"name"`
			} `json:"components"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
			return false, err.Error()
		}
		var got []string
		for _, c := range md.Components {
			got = append(got, c.Name)
		}
		for _, name := range names {
			if !slices.Contains(got, name) {
				return false, "the sidecar has " + strings.Join(got, ",")
			}
		}
		return true, ""
	})
}
