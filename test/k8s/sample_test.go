package k8s

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/test/e2e/framework"
	"github.com/tandemrun/tandem/test/k8s/cluster"
)

// sampleNamespace is where the Dapr sample's manifests (testdata/sample) are applied.
const sampleNamespace = "sample"

// runDaprSample applies the manifests of a Dapr sample as they are (testdata/sample: a Deployment pair, a
// state.redis and a pubsub.redis Component, a Resiliency and a Subscription) and runs the pods the Deployments
// make: state saved through checkout's sidecar is read back through order-processor's, and an order published
// through checkout's sidecar is delivered to order-processor by the Subscription.
func runDaprSample(t *testing.T, n *cluster.Node, cp *cluster.ControlPlane) {
	requireRedis(t)
	// What the sample's README has the user make first: the namespace, and the Secret `helm install bitnami/redis`
	// leaves (the Redis here has no password).
	n.Kubectl(fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: %[1]s}
---
apiVersion: v1
kind: Secret
metadata: {name: redis, namespace: %[1]s}
stringData: {redis-password: ""}
`, sampleNamespace), "apply", "-f", "-")
	n.Kubectl("", "apply", "-n", sampleNamespace, "-f", filepath.Join(framework.RepoRoot(), "test", "k8s", "testdata", "sample"))

	appPort := cluster.Port(t)
	// The app listens where the node moved the pod's app port (every pod is on 127.0.0.1 here); the programmatic
	// subscription of the test app goes to another topic, so that orders come through the Subscription alone.
	processor := runPod(t, n, cp, n.PodOf(sampleNamespace, "order-processor"), []string{"--app-port", appPort},
		func(httpPort string) *framework.Process {
			return framework.Start(t, "order-processor/app", n.Bins["subscriber"], []string{"--port", appPort},
				"DAPR_HTTP_PORT="+httpPort, "PUBSUB=orderpubsub", "TOPIC=unused")
		})
	checkout := runPod(t, n, cp, n.PodOf(sampleNamespace, "checkout"), nil, nil)
	waitComponents(t, checkout, "statestore", "orderpubsub")
	waitComponents(t, processor, "statestore", "orderpubsub")

	t.Run("state saved through one sidecar is read back through the other", func(t *testing.T) {
		key := fmt.Sprintf("order-%d", time.Now().UnixNano())
		if resp := post(t, checkout.url("/v1.0/state/statestore"), `[{"key":"`+key+`","value":{"orderId":7}}]`); resp.status != http.StatusNoContent {
			t.Fatalf("save: %d %s", resp.status, resp.body)
		}
		// Keys are prefixed with the app ID: checkout reads its own key back, and order-processor does not see it.
		for _, c := range []struct {
			a      *appPod
			status int
			body   string
		}{{checkout, http.StatusOK, `{"orderId":7}`}, {processor, http.StatusNoContent, ""}} {
			status, body := get(t, c.a.url("/v1.0/state/statestore/"+key))
			if status != c.status || strings.TrimSpace(body) != c.body {
				t.Errorf("%s reads %s: %d %q, want %d %q", c.a.ID, key, status, body, c.status, c.body)
			}
		}
	})

	t.Run("an order published is delivered to the subscriber", func(t *testing.T) {
		order := fmt.Sprintf(`{"orderId":%d}`, time.Now().UnixNano())
		if resp := post(t, checkout.url("/v1.0/publish/orderpubsub/orders"), order); resp.status != http.StatusNoContent {
			t.Fatalf("publish: %d %s", resp.status, resp.body)
		}
		cluster.WaitFor(t, "order-processor receives the order", time.Minute, func() (bool, string) {
			status, body := get(t, "http://127.0.0.1:"+appPort+"/received")
			var got []json.RawMessage
			if status != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
				return false, fmt.Sprintf("%d %s", status, body)
			}
			for _, m := range got {
				if string(m) == order {
					return true, ""
				}
			}
			return false, "received " + body
		})
	})
}

// requireRedis skips when the Redis on this machine is not reachable, except in CI where it must be.
func requireRedis(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:6379", time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis at 127.0.0.1:6379 is required in CI: %v", err)
		}
		t.Skipf("redis at 127.0.0.1:6379 not reachable: %v", err)
	}
	c.Close()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
