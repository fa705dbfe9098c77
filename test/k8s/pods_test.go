package k8s

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/sentry/ca"
	sentryclient "github.com/tandemrun/tandem/sentry/client"
	"github.com/tandemrun/tandem/test/e2e/framework"
	"github.com/tandemrun/tandem/test/k8s/cluster"
)

const (
	appsNamespace = "apps"
	// otherNamespace holds a pod that must not see apps' resources.
	otherNamespace = "other"
	// controlPlaneTrustDomain is the chart's mtls.trustDomain.
	controlPlaneTrustDomain = "cluster.local"
)

// appPod is an annotated pod running on the node: the app and its injected sidecar.
type appPod struct {
	ID  string
	Pod *corev1.Pod
	// Mounts are the sidecar's volume mounts: mount path -> local folder.
	Mounts   map[string]string
	App      *framework.Process
	Sidecar  *framework.Process
	HTTPPort string
	// MetricsPort is the sidecar's Prometheus port; PublicPort its public health and metadata port (the injector's
	// 3501, moved), which listens on every interface.
	MetricsPort, PublicPort string
}

func (a *appPod) url(path string) string { return "http://127.0.0.1:" + a.HTTPPort + path }

// sentryToken is the pod's projected token for sentry, as its sidecar reads it.
func (a *appPod) sentryToken(t *testing.T) string {
	t.Helper()
	dir, ok := a.Mounts[sentryTokenDir]
	if !ok {
		t.Fatalf("pod %s mounts no %s: %v", a.Pod.Name, sentryTokenDir, a.Mounts)
	}
	b, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sentryTokenDir is where the injector mounts the pod's token for sentry (Dapr's path).
const sentryTokenDir = "/var/run/secrets/dapr.io/sentrytoken"

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

	n.Kubectl(namespaceManifest(appsNamespace, n.Dir)+`---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: statestore, namespace: `+appsNamespace+`}
spec:
  type: state.in-memory
  version: v1
  metadata: []
`, "apply", "-f", "-")

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

	t.Run("a sidecar asking sentry for another app's identity is refused", func(t *testing.T) {
		issue := func(token, ns, app string) error {
			cm, err := n.CS.CoreV1().ConfigMaps(appsNamespace).Get(n.Ctx, "dapr-trust-bundle", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			anchors, err := sentryclient.ParseTrustAnchors([]byte(cm.Data["ca.crt"]))
			if err != nil {
				t.Fatal(err)
			}
			sentryID, err := sentryclient.SentryID(controlPlaneTrustDomain, cluster.Namespace)
			if err != nil {
				t.Fatal(err)
			}
			c, err := sentryclient.New(sentryclient.Config{Address: cp.SentryAddr, TrustAnchors: anchors, SentryID: sentryID,
				Token: token, TokenValidator: sentryv1.SignCertificateRequest_KUBERNETES, MaxAttempts: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			id := spiffeid.RequireFromSegments(spiffeid.RequireTrustDomainFromString("public"), "ns", ns, app)
			_, key, _ := ed25519.GenerateKey(rand.Reader)
			csr, err := identity.NewCSR(key, id)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(n.Ctx, 30*time.Second)
			defer cancel()
			_, err = c.Issue(ctx, id, csr)
			return err
		}
		token := caller.sentryToken(t)
		// The same request for the pod's own app ID is signed, so a refusal below is about the identity asked for.
		if err := issue(token, appsNamespace, caller.ID); err != nil {
			t.Fatalf("caller's token for its own app ID: %v", err)
		}
		for _, c := range []struct{ ns, app string }{{appsNamespace, callee.ID}, {"default", caller.ID}} {
			err := issue(token, c.ns, c.app)
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("caller's token asking for %s/%s: %v, want PermissionDenied", c.ns, c.app, err)
			} else {
				t.Logf("caller's token asking for %s/%s: %v", c.ns, c.app, err)
			}
		}
	})

	t.Run("a pod of another namespace does not get this namespace's components", func(t *testing.T) {
		n.Kubectl(namespaceManifest(otherNamespace, n.Dir)+`---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: otherstore, namespace: `+otherNamespace+`}
spec:
  type: state.in-memory
  version: v1
  metadata: []
`, "apply", "-f", "-")
		outsider := startPodIn(t, n, cp, otherNamespace, "outsider", "outsider-0")
		waitComponents(t, outsider, "otherstore")
		// A component applied in apps now reaches apps' sidecar and, by then, would have reached the outsider too.
		n.Kubectl(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: appsonly, namespace: `+appsNamespace+`}
spec:
  type: state.in-memory
  version: v1
  metadata: []
`, "apply", "-f", "-")
		waitComponents(t, caller, "statestore", "laterstore", "appsonly")
		got := components(t, outsider)
		for _, name := range []string{"statestore", "laterstore", "appsonly"} {
			if slices.Contains(got, name) {
				t.Errorf("the sidecar in %s has %s of %s: %v", otherNamespace, name, appsNamespace, got)
			}
		}
		if slices.Contains(components(t, caller), "otherstore") {
			t.Errorf("the sidecar in %s has otherstore of %s", appsNamespace, otherNamespace)
		}
		outsider.Sidecar.Stop()
		outsider.App.Stop()
	})

	t.Run("a Dapr sample's manifests, applied unchanged", func(t *testing.T) { runDaprSample(t, n, cp) })

	t.Run("the KEDA scaler finds a subscriber through the API server and reports its backlog over TLS", func(t *testing.T) {
		runKEDAScaler(t, n, cp)
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

	t.Run("root rotation through the trust bundle under load fails no call", func(t *testing.T) {
		secrets := n.CS.CoreV1().Secrets(cluster.Namespace)
		sec, err := secrets.Get(n.Ctx, "dapr-trust-bundle", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		oldRoot := sec.Data["ca.crt"]
		next, err := ca.GenerateBundle(ca.GenerateOptions{TrustDomain: controlPlaneTrustDomain, Namespace: cluster.Namespace})
		if err != nil {
			t.Fatal(err)
		}
		update := func(data map[string][]byte) {
			t.Helper()
			sec, err := secrets.Get(n.Ctx, "dapr-trust-bundle", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			maps.Copy(sec.Data, data)
			if _, err := secrets.Update(n.Ctx, sec, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		sidecars := []*appPod{caller, callee}
		// reloaded counts each sidecar's reloads of its trust anchors file to k anchors.
		reloaded := func(k int) []int {
			var got []int
			for _, a := range sidecars {
				got = append(got, anchorsReloads(a.Sidecar.Output(), k))
			}
			return got
		}
		load := framework.StartEchoLoad(context.Background(), caller.url("/v1.0/invoke/callee/method/echo"), 4)
		defer load.Stop()
		progress := func() string {
			return fmt.Sprintf("calls ok %d failed %d (first: %v)", load.OK.Load(), load.Failed.Load(), load.FirstError())
		}

		// 1. Trust both roots: the ConfigMap, then every sidecar's file, holds two anchors.
		update(map[string][]byte{"ca.crt": append(slices.Clone(oldRoot), next.TrustAnchorsPEM...)})
		cluster.WaitFor(t, "every sidecar trusts both roots", 2*time.Minute, func() (bool, string) {
			got := reloaded(2)
			return !slices.Contains(got, 0), fmt.Sprintf("reloads to 2 anchors %v; %s", got, progress())
		})

		// 2. Switch the issuer: every certificate issued from then on chains to the new root.
		reloads := strings.Count(cp.Sentry.Output(), "trust bundle secret changed; reloaded the issuer credentials")
		update(map[string][]byte{"issuer.crt": next.IssuerChainPEM, "issuer.key": next.IssuerKeyPEM})
		cluster.WaitFor(t, "sentry switches to the new issuer", time.Minute, func() (bool, string) {
			return strings.Count(cp.Sentry.Output(), "trust bundle secret changed; reloaded the issuer credentials") > reloads, progress()
		})
		ids := []string{"spiffe://public/ns/" + appsNamespace + "/caller", "spiffe://public/ns/" + appsNamespace + "/callee",
			"spiffe://" + controlPlaneTrustDomain + "/ns/" + cluster.Namespace + "/dapr-operator",
			// The injector's webhook serves its certificate to the API server, which verifies it with the caBundle.
			"spiffe://" + controlPlaneTrustDomain + "/ns/" + cluster.Namespace + "/dapr-injector"}
		before := map[string]int{}
		for _, id := range ids {
			before[id] = strings.Count(cp.Sentry.Output(), "spiffe_id="+id+" ")
		}
		// Two renewals each: the first may have been signed as the issuer changed.
		cluster.WaitFor(t, "the sidecars, the operator and the injector renew from the new issuer", 3*time.Minute, func() (bool, string) {
			var missing []string
			for _, id := range ids {
				if strings.Count(cp.Sentry.Output(), "spiffe_id="+id+" ") < before[id]+2 {
					missing = append(missing, id)
				}
			}
			return len(missing) == 0, fmt.Sprintf("waiting for %v; %s", missing, progress())
		})

		// 3. Drop the old root.
		update(map[string][]byte{"ca.crt": next.TrustAnchorsPEM})
		ones := reloaded(1)
		cluster.WaitFor(t, "every sidecar trusts the new root alone", 2*time.Minute, func() (bool, string) {
			got := reloaded(1)
			for i := range got {
				if got[i] <= ones[i] {
					return false, fmt.Sprintf("reloads to 1 anchor %v (were %v); %s", got, ones, progress())
				}
			}
			return true, ""
		})
		// New connections are verified against the new root alone from now on.
		ok := load.OK.Load()
		cluster.WaitFor(t, "calls go on after the old root is dropped", time.Minute, func() (bool, string) {
			return load.OK.Load() > ok+100, progress()
		})
		load.Stop()
		t.Logf("calls during the root rotation: %d ok, %d failed", load.OK.Load(), load.Failed.Load())
		if load.Failed.Load() != 0 || load.OK.Load() == 0 {
			t.Errorf("%d calls failed (first: %v), %d succeeded", load.Failed.Load(), load.FirstError(), load.OK.Load())
		}
		cm, err := n.CS.CoreV1().ConfigMaps(appsNamespace).Get(n.Ctx, "dapr-trust-bundle", metav1.GetOptions{})
		if err != nil || cm.Data["ca.crt"] != string(next.TrustAnchorsPEM) {
			t.Errorf("the trust bundle ConfigMap in %s holds %q (%v), want the new root alone", appsNamespace, cm.Data["ca.crt"], err)
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

		t.Run("deleting one callee pod fails no call", func(t *testing.T) {
			gone := callees[2]
			load := framework.StartEchoLoad(context.Background(), caller.url("/v1.0/invoke/callee/method/echo"), 4)
			defer load.Stop()
			cluster.WaitFor(t, "calls under way", time.Minute, func() (bool, string) { return load.OK.Load() > 100, "" })
			if err := n.CS.CoreV1().Pods(appsNamespace).Delete(n.Ctx, gone.Pod.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			// The kubelet stops a native sidecar after the app's containers; a deleted pod has left its EndpointSlice
			// by then. The sqlite name resolution used here only forgets the pod when its sidecar deregisters, so the
			// sidecar is stopped first (it drains its in-flight calls), then the app.
			gone.Sidecar.Stop()
			gone.App.Stop()
			ok := load.OK.Load()
			cluster.WaitFor(t, "calls go on over the two callees left", time.Minute, func() (bool, string) {
				return load.OK.Load() > ok+500, fmt.Sprintf("%d ok, %d failed", load.OK.Load(), load.Failed.Load())
			})
			load.Stop()
			t.Logf("calls while %s went away: %d ok, %d failed", gone.Pod.Name, load.OK.Load(), load.Failed.Load())
			if load.Failed.Load() != 0 {
				t.Errorf("%d calls failed (first: %v), %d succeeded", load.Failed.Load(), load.FirstError(), load.OK.Load())
			}
		})
	})
}

// namespaceManifest is a namespace for annotated pods: its default ServiceAccount (which the ServiceAccount
// admission plugin, left out by envtest, would make) and the appconfig Configuration the pods name, with the
// sqlite name resolution in dir (the API server refuses loopback addresses in EndpointSlices).
func namespaceManifest(ns, dir string) string {
	return fmt.Sprintf(`apiVersion: v1
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
`, ns, dir)
}

// anchorsReloads counts a sidecar's log lines saying it reloaded its trust anchors file to k anchors.
func anchorsReloads(log string, k int) int {
	count := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "trust anchors reloaded from file") &&
			(strings.Contains(line, fmt.Sprintf(" anchors=%d ", k)) || strings.Contains(line, fmt.Sprintf(`"anchors":%d,`, k))) {
			count++
		}
	}
	return count
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
	return startPodIn(t, n, cp, appsNamespace, id, name)
}

// startPodIn is startAppPod in namespace ns (which has the appconfig Configuration).
func startPodIn(t *testing.T, n *cluster.Node, cp *cluster.ControlPlane, ns, id, name string) *appPod {
	t.Helper()
	appPort := cluster.Port(t)
	pod, err := n.CS.CoreV1().Pods(ns).Create(n.Ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{
			"dapr.io/enabled": "true", "dapr.io/app-id": id, "dapr.io/app-port": appPort, "dapr.io/config": "appconfig",
		}},
		// The ServiceAccount admission plugin, which envtest leaves out, sets this on a real cluster.
		Spec: corev1.PodSpec{ServiceAccountName: "default", Containers: []corev1.Container{{Name: "app", Image: "example.com/echo:1"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", id, err)
	}
	return runPod(t, n, cp, pod, nil, func(httpPort string) *framework.Process {
		return framework.Start(t, pod.Name+"/app", n.Bins["echo"], []string{"--port", appPort}, "DAPR_HTTP_PORT="+httpPort, "APP_ID="+id)
	})
}

// runPod runs the injected sidecar of pod, as the API server stored it, with the extra sidecar flags args, and
// the app that startApp starts, if any, given the sidecar's HTTP port.
func runPod(t *testing.T, n *cluster.Node, cp *cluster.ControlPlane, pod *corev1.Pod, args []string, startApp func(httpPort string) *framework.Process) *appPod {
	t.Helper()
	var sidecar *corev1.Container
	all := append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...)
	if i := slices.IndexFunc(all, func(c corev1.Container) bool { return c.Name == "daprd" }); i >= 0 {
		sidecar = &all[i]
	}
	if sidecar == nil {
		t.Fatalf("pod %s has no daprd container after admission: %+v", pod.Name, pod.Spec)
	}
	a := &appPod{ID: pod.Annotations["dapr.io/app-id"], Pod: pod, HTTPPort: cluster.Port(t), MetricsPort: cluster.Port(t), PublicPort: cluster.Port(t)}
	if startApp != nil {
		a.App = startApp(a.HTTPPort)
	}
	cluster.WaitFor(t, "sentry publishes the trust bundle in "+pod.Namespace, time.Minute, func() (bool, string) {
		cm, err := n.CS.CoreV1().ConfigMaps(pod.Namespace).Get(n.Ctx, "dapr-trust-bundle", metav1.GetOptions{})
		return err == nil && cm.Data["ca.crt"] != "", fmt.Sprint(err)
	})
	a.Sidecar, a.Mounts = n.Run(cluster.Container{Pod: pod, Spec: *sidecar, Bin: n.Bins["tandemd"],
		Args: append([]string{"--dapr-http-port", a.HTTPPort, "--dapr-grpc-port", cluster.Port(t), "--dapr-internal-grpc-port", cluster.Port(t),
			"--metrics-port", a.MetricsPort, "--dapr-public-port", a.PublicPort, "--control-plane-address", cp.OperatorAddr, "--sentry-address", cp.SentryAddr,
			// The stand-in kubelet runs no placement StatefulSet (actors are tested elsewhere), so the
			// injected placement address is turned off rather than left unreachable (an actor host is not
			// ready until placement answers).
			"--placement-host-address", ""}, args...),
		Env: map[string]string{"DAPR_SENTRY_TOKEN_FILE": sentryTokenDir + "/token"}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := framework.WaitHTTP(ctx, a.url("/v1.0/healthz"), http.StatusNoContent, 2*time.Minute); err != nil {
		t.Fatalf("sidecar of %s: %v\n%s", pod.Name, err, a.Sidecar.Output())
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

// components lists the components in the sidecar's metadata.
func components(t *testing.T, a *appPod) []string {
	t.Helper()
	resp, err := http.Get(a.url("/v1.0/metadata"))
	if err != nil {
		t.Fatalf("metadata of %s: %v", a.Pod.Name, err)
	}
	defer resp.Body.Close()
	var md struct {
		Components []struct {
			Name string `json:"name"`
		} `json:"components"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatalf("metadata of %s: %v", a.Pod.Name, err)
	}
	var got []string
	for _, c := range md.Components {
		got = append(got, c.Name)
	}
	return got
}

// waitComponents waits until the sidecar's metadata lists the components named (and maybe built-in ones).
func waitComponents(t *testing.T, a *appPod, names ...string) {
	t.Helper()
	cluster.WaitFor(t, a.ID+"'s components "+strings.Join(names, ","), time.Minute, func() (bool, string) {
		got := components(t, a)
		for _, name := range names {
			if !slices.Contains(got, name) {
				return false, "the sidecar has " + strings.Join(got, ",")
			}
		}
		return true, ""
	})
}
