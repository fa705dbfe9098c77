package k8s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandemrun/tandem/scaler/externalscaler"
	"github.com/tandemrun/tandem/test/e2e/framework"
	"github.com/tandemrun/tandem/test/k8s/cluster"
)

const (
	kedaNamespace = "keda-apps"
	kedaAppID     = "kedasub"
	redisAddr     = "127.0.0.1:6379"
)

// runKEDAScaler applies deploy/manifests/scaler.yaml and runs the scaler's pod as the chart makes it: its
// certificate from sentry (identity dapr-scaler, valid for dapr-scaler.dapr-system.svc), its RBAC through its
// ServiceAccount's token. A subscriber is a Deployment (the operator makes its kedasub-dapr Service) whose pod's
// endpoint this node writes in an EndpointSlice, as the endpoints controller would. A client speaking KEDA's
// external scaler protocol over TLS, checking the scaler with the trust bundle as KEDA's caCert, sees the backlog
// the subscriber's sidecar reports from Redis while the app is frozen, found through the API server alone; with
// the pod gone (scaled to zero), the scaler asks Redis itself.
func runKEDAScaler(t *testing.T, n *cluster.Node, cp *cluster.ControlPlane) {
	requireRedis(t)
	data, err := os.ReadFile(filepath.Join(framework.RepoRoot(), "deploy", "manifests", "scaler.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	n.Kubectl(string(data), "apply", "--server-side", "-f", "-")

	topic := fmt.Sprintf("keda-orders-%d", time.Now().UnixNano())
	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	defer rdb.Close()
	t.Cleanup(func() { rdb.Del(context.Background(), topic) })
	component := `apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pubsub, namespace: ` + kedaNamespace + `}
spec:
  type: pubsub.redis
  version: v1
  metadata:
  - {name: redisHost, value: "` + redisAddr + `"}
`
	appPort := cluster.Port(t)
	n.Kubectl(namespaceManifest(kedaNamespace, n.Dir)+"---\n"+component+`---
apiVersion: apps/v1
kind: Deployment
metadata: {name: kedasub, namespace: `+kedaNamespace+`}
spec:
  replicas: 1
  selector: {matchLabels: {app: kedasub}}
  template:
    metadata:
      labels: {app: kedasub}
      annotations: {dapr.io/enabled: "true", dapr.io/app-id: `+kedaAppID+`, dapr.io/app-port: "`+appPort+`", dapr.io/config: appconfig}
    spec:
      containers: [{name: app, image: example.com/subscriber:1}]
`, "apply", "-f", "-")
	cluster.WaitFor(t, "the operator makes the kedasub-dapr Service", time.Minute, func() (bool, string) {
		_, err := n.CS.CoreV1().Services(kedaNamespace).Get(n.Ctx, kedaAppID+"-dapr", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})

	sub := runPod(t, n, cp, n.PodOf(kedaNamespace, "kedasub"), nil, func(httpPort string) *framework.Process {
		return framework.Start(t, "kedasub/app", n.Bins["subscriber"], []string{"--port", appPort},
			"DAPR_HTTP_PORT="+httpPort, "PUBSUB=pubsub", "TOPIC="+topic)
	})
	t.Cleanup(func() { sub.App.Signal(syscall.SIGCONT) }) // so it can stop
	// What the endpoints controller writes for the pod: the dapr-http port of the Service at the pod's address
	// (here the node's own: the API server refuses loopback addresses).
	nodeIP := cluster.NodeIP(t)
	var httpPort int32
	fmt.Sscan(sub.HTTPPort, &httpPort)
	name, ready, tcp := "dapr-http", true, corev1.ProtocolTCP
	slices := n.CS.DiscoveryV1().EndpointSlices(kedaNamespace)
	if _, err := slices.Create(n.Ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: kedaAppID + "-dapr-node", Labels: map[string]string{discoveryv1.LabelServiceName: kedaAppID + "-dapr"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{nodeIP}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: kedaNamespace, Name: sub.Pod.Name, UID: sub.Pod.UID}}},
		Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &httpPort, Protocol: &tcp}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The scaler's pod. Its --sidecar-port is the sidecars' public port (3501 in the manifests), which this node
	// moved for the one subscriber pod; its broker file stands for the chart's scaler.componentsSecretName.
	brokers := t.TempDir()
	if err := os.WriteFile(filepath.Join(brokers, "pubsub.yaml"), []byte(component), 0o600); err != nil {
		t.Fatal(err)
	}
	scalerPort, scalerHealth := cluster.Port(t), cluster.Port(t)
	scalerPod := n.DeploymentPod("dapr-scaler")
	scaler, _ := n.Run(cluster.Container{Pod: scalerPod, Spec: scalerPod.Spec.Containers[0], Bin: n.Bins["scaler"], Kubeconfig: true,
		Args: []string{"--port", scalerPort, "--listen-address", "127.0.0.1", "--healthz-port", scalerHealth, "--healthz-listen-address", "127.0.0.1",
			"--sentry-address", cp.SentryAddr, "--sidecar-port", sub.PublicPort, "--poll-interval", "100ms", "--resources-path", brokers},
		Env: map[string]string{"DAPR_SENTRY_TOKEN_FILE": sentryTokenDir + "/token"}})
	hctx, hcancel := context.WithTimeout(n.Ctx, 2*time.Minute)
	defer hcancel()
	if err := framework.WaitHTTP(hctx, "http://127.0.0.1:"+scalerHealth+"/healthz", http.StatusOK, 2*time.Minute); err != nil {
		t.Fatalf("scaler: %v\n%s", err, scaler.Output())
	}

	// KEDA's side: caCert is the trust bundle sentry keeps in the app's namespace (a TriggerAuthentication's
	// configMapTargetRef), and the name checked is scalerAddress's host.
	cm, err := n.CS.CoreV1().ConfigMaps(kedaNamespace).Get(n.Ctx, "dapr-trust-bundle", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(cm.Data["ca.crt"])) {
		t.Fatalf("no certificate in the trust bundle: %q", cm.Data["ca.crt"])
	}
	conn, err := grpc.NewClient("127.0.0.1:"+scalerPort, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: roots, ServerName: "dapr-scaler." + cluster.Namespace + ".svc"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := externalscaler.NewExternalScalerClient(conn)
	ref := &externalscaler.ScaledObjectRef{Name: kedaAppID, Namespace: kedaNamespace, ScalerMetadata: map[string]string{
		"scalerAddress": "dapr-scaler." + cluster.Namespace + ".svc:6000", "appId": kedaAppID, "pubsubName": "pubsub", "topic": topic, "targetBacklog": "5"}}
	metric := func() float64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(n.Ctx, 10*time.Second)
		defer cancel()
		m, err := client.GetMetrics(ctx, &externalscaler.GetMetricsRequest{ScaledObjectRef: ref}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("GetMetrics: %v\n%s", err, scaler.Output())
		}
		return m.GetMetricValues()[0].GetMetricValueFloat()
	}
	backlog := func() int64 {
		t.Helper()
		groups, err := rdb.XInfoGroups(n.Ctx, topic).Result()
		if err != nil {
			t.Fatalf("XINFO GROUPS %s: %v", topic, err)
		}
		for _, g := range groups {
			if g.Name == kedaAppID {
				return g.Lag + g.Pending
			}
		}
		t.Fatalf("no consumer group %q on %s", kedaAppID, topic)
		return 0
	}
	publish := func(seq int) {
		t.Helper()
		var last string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			resp := post(t, sub.url("/v1.0/publish/pubsub/"+topic), fmt.Sprintf(`{"seq":%d}`, seq))
			if resp.status == http.StatusNoContent {
				return
			}
			if last = strconv.Itoa(resp.status) + " " + resp.body; resp.status != http.StatusServiceUnavailable {
				break
			}
		}
		t.Fatalf("publish: %s", last)
	}
	received := func() int {
		status, body := get(t, "http://127.0.0.1:"+appPort+"/received")
		var got []json.RawMessage
		if status != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
			return -1
		}
		return len(got)
	}

	t.Run("a client without TLS is refused", func(t *testing.T) {
		plain, err := grpc.NewClient("127.0.0.1:"+scalerPort, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		ctx, cancel := context.WithTimeout(n.Ctx, 5*time.Second)
		defer cancel()
		if _, err := externalscaler.NewExternalScalerClient(plain).IsActive(ctx, ref); err == nil {
			t.Error("served in plaintext")
		}
	})

	// Warm up: the subscription exists and is idle.
	publish(-1)
	cluster.WaitFor(t, "the warm-up event reaches the app", time.Minute, func() (bool, string) { return received() > 0, "" })
	cluster.WaitFor(t, "no backlog", time.Minute, func() (bool, string) { v := metric(); return v == 0, fmt.Sprint(v) })

	ctx, cancel := context.WithTimeout(n.Ctx, 2*time.Minute)
	defer cancel()
	stream, err := client.StreamIsActive(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.GetResult() {
		t.Fatalf("StreamIsActive with no backlog = %v, %v; want false", r, err)
	}

	// The app freezes; a backlog builds up in Redis, and the scaler reads it from the sidecar it found.
	sub.App.Signal(syscall.SIGSTOP)
	const count = 20
	for i := range count {
		publish(i)
	}
	published := time.Now()
	if r, err := stream.Recv(); err != nil || !r.GetResult() {
		t.Fatalf("StreamIsActive after %d messages = %v, %v; want true\n%s", count, r, err, scaler.Output())
	}
	t.Logf("StreamIsActive said active %v after the last publish", time.Since(published).Round(time.Millisecond))
	cluster.WaitFor(t, fmt.Sprintf("Redis's backlog to be %d", count), 30*time.Second, func() (bool, string) {
		b := backlog()
		return b == count, fmt.Sprint(b)
	})
	if got := metric(); got != count {
		t.Errorf("GetMetrics = %v, want Redis's backlog %d", got, count)
	}

	// Let the app go: it drains, and the scaler says inactive.
	sub.App.Signal(syscall.SIGCONT)
	if r, err := stream.Recv(); err != nil || r.GetResult() {
		t.Fatalf("StreamIsActive after draining = %v, %v; want false\n%s", r, err, scaler.Output())
	}
	if got := metric(); got != 0 {
		t.Errorf("GetMetrics after draining = %v, want 0", got)
	}

	// Scaled to zero: the pod goes, and with it its endpoint. A backlog arriving now is read from Redis by the
	// scaler itself, as the app's consumer group.
	sub.Sidecar.Stop()
	sub.App.Stop()
	if err := slices.Delete(n.Ctx, kedaAppID+"-dapr-node", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	const later = 7
	for i := range later {
		if err := rdb.XAdd(n.Ctx, &goredis.XAddArgs{Stream: topic, Values: map[string]any{"data": fmt.Sprintf(`{"seq":%d}`, count+i)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	cluster.WaitFor(t, "IsActive with no replica and a backlog", 30*time.Second, func() (bool, string) {
		a, err := client.IsActive(ctx, ref)
		return err == nil && a.GetResult(), fmt.Sprint(a, err)
	})
	if got, want := metric(), float64(backlog()); got != want || want != later {
		t.Errorf("GetMetrics with no replica = %v; Redis's backlog %v, want %d\n%s", got, want, later, scaler.Output())
	}
}
