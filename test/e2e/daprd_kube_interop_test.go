package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/tandemrun/tandem/test/e2e/framework"
	"github.com/tandemrun/tandem/test/kubeplane"
)

// kubeSidecar is a sidecar (tandemd or daprd) started in --mode kubernetes.
type kubeSidecar struct {
	*framework.Process
	appID                          string
	httpPort, grpcPort, internPort int
}

func (s *kubeSidecar) url() string { return fmt.Sprintf("http://127.0.0.1:%d", s.httpPort) }

// kubeSidecarArgs are the flags the injector gives either sidecar, with
// local ports.
func kubeSidecarArgs(t *testing.T, p *kubeplane.Plane, opAddr, appID string, appPort int, s *kubeSidecar) []string {
	s.appID = appID
	s.httpPort, s.grpcPort, s.internPort = framework.FreePort(t), framework.FreePort(t), framework.FreePort(t)
	return []string{
		"--mode", "kubernetes", "--app-id", appID, "--app-port", strconv.Itoa(appPort),
		"--dapr-http-port", strconv.Itoa(s.httpPort), "--dapr-grpc-port", strconv.Itoa(s.grpcPort),
		"--dapr-internal-grpc-port", strconv.Itoa(s.internPort), "--metrics-port", strconv.Itoa(framework.FreePort(t)),
		"--control-plane-address", opAddr, "--sentry-address", p.SentryAddr,
		"--control-plane-trust-domain", kubeplane.TrustDomain, "--control-plane-namespace", kubeplane.ControlNamespace,
		"--config", "interop", "--enable-mtls", "--log-level", "debug",
	}
}

// TestInteropWithDaprdKubernetes runs a real daprd in --mode kubernetes
// against Tandem's operator and sentry (on a real API server), next to a
// tandemd in the same mode: daprd gets its certificate (TokenReview of a
// projected token bound to its pod) and its Component from our operator,
// the two invoke each other over mTLS, and tandemd's built-in kubernetes
// secret store reads the namespace's Secrets. Both resolve each other with
// the kubernetes name resolution's template (EndpointSlices may not hold
// the loopback addresses the processes listen on).
func TestInteropWithDaprdKubernetes(t *testing.T) {
	kubeInterop(t, daprdBinary(t))
}

// TestKubernetesModeTandemd is the same with tandemd in place of daprd: a
// check of tandemd's Kubernetes mode (operator, sentry, name resolution
// kubernetes, the built-in secret store) that needs no daprd.
func TestKubernetesModeTandemd(t *testing.T) {
	kubeInterop(t, "")
}

// kubeInterop runs tandemd "tan" and a peer "dap": daprd at the path
// given, or tandemd when it is empty.
func kubeInterop(t *testing.T, daprd string) {
	const ns = "interop"
	p := kubeplane.Start(t, bins, []string{ns})
	_, opAddr := p.StartOperator()
	ctx := context.Background()

	tanApp := framework.StartApp(t, "tan app", bins.Echo)
	dapApp := framework.StartApp(t, "dap app", bins.Echo)
	tan, dap := &kubeSidecar{}, &kubeSidecar{}
	tanArgs := kubeSidecarArgs(t, p, opAddr, "tan", tanApp.Port, tan)
	dapArgs := kubeSidecarArgs(t, p, opAddr, "dap", dapApp.Port, dap)

	// The resources, applied as a user would.
	dyn, err := dynamic.NewForConfig(p.Config)
	if err != nil {
		t.Fatal(err)
	}
	template := fmt.Sprintf(`{{if eq .ID "tan"}}127.0.0.1:%d{{else}}127.0.0.1:%d{{end}}`, tan.internPort, dap.internPort)
	apply := func(resource string, obj map[string]any) {
		t.Helper()
		gvr := schema.GroupVersionResource{Group: "dapr.io", Version: "v1alpha1", Resource: resource}
		if _, err := dyn.Resource(gvr).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", resource, err)
		}
	}
	apply("configurations", map[string]any{
		"apiVersion": "dapr.io/v1alpha1", "kind": "Configuration", "metadata": map[string]any{"name": "interop"},
		"spec": map[string]any{"nameResolution": map[string]any{"component": "kubernetes", "configuration": map[string]any{"template": template}}},
	})
	apply("components", map[string]any{
		"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": map[string]any{"name": "statestore"},
		"spec": map[string]any{"type": "state.in-memory", "version": "v1", "metadata": []any{
			map[string]any{"name": "note", "secretKeyRef": map[string]any{"name": "interop-secret", "key": "password"}},
		}},
	})
	if _, err := p.Clientset.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "interop-secret"},
		Data:       map[string][]byte{"password": []byte("s3cret"), "user": []byte("admin")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	annotations := func(id string) map[string]string {
		return map[string]string{"dapr.io/enabled": "true", "dapr.io/app-id": id, "dapr.io/config": "interop"}
	}
	tanToken := p.TokenFile(p.Pod(ns, "tan-0", annotations("tan")))
	dapToken := p.TokenFile(p.Pod(ns, "dap-0", annotations("dap")))
	env := func(pod string) []string {
		return []string{"NAMESPACE=" + ns, "POD_NAME=" + pod, "KUBECONFIG=" + p.Kubeconfig}
	}

	tan.Process = framework.Start(t, "tandemd tan", bins.Tandemd, append(tanArgs, "--trust-anchors-file", p.Anchors),
		append(env("tan-0"), "DAPR_SENTRY_TOKEN_FILE="+tanToken)...)
	// daprd reads its token from a fixed path: give it one in a mount
	// namespace of its own, over a private /run.
	anchors, err := os.ReadFile(p.Anchors)
	if err != nil {
		t.Fatal(err)
	}
	wrapper := `set -e; mount -t tmpfs tmpfs /run; mkdir -p /run/secrets/dapr.io/sentrytoken; cp "$TOKEN" /run/secrets/dapr.io/sentrytoken/token; exec "$@"`
	if daprd != "" {
		dap.Process = framework.Start(t, "daprd dap", "unshare",
			append([]string{"-m", "sh", "-c", wrapper, "sh", daprd, "--placement-host-address", "", "--scheduler-host-address", ""}, dapArgs...),
			append(env("dap-0"), "TOKEN="+dapToken, "DAPR_TRUST_ANCHORS="+string(anchors),
				// The test runs as root; daprd refuses that in Kubernetes mode.
				"DAPR_UNSAFE_SKIP_CONTAINER_UID_GID_CHECK=true")...)
	} else {
		dap.Process = framework.Start(t, "tandemd dap", bins.Tandemd, append(dapArgs, "--trust-anchors-file", p.Anchors),
			append(env("dap-0"), "DAPR_SENTRY_TOKEN_FILE="+dapToken)...)
	}

	for _, s := range []*kubeSidecar{tan, dap} {
		wait, cancel := context.WithTimeout(ctx, 90*time.Second)
		err := framework.WaitHTTP(wait, s.url()+"/v1.0/healthz", http.StatusNoContent, 90*time.Second)
		cancel()
		if err != nil {
			t.Fatalf("%s not healthy: %v\n%s", s.appID, err, s.Output())
		}
	}

	// daprd has our operator's Component: in its first list, or, when the
	// operator's cache had not yet seen the Component created a moment
	// before daprd started (its informer's watch is eventually
	// consistent), through the update stream a moment later.
	var body []byte
	found := false
	for deadline := time.Now().Add(15 * time.Second); !found && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var resp *http.Response
		resp, body = do(t, "GET", dap.url()+"/v1.0/metadata", nil, nil)
		var md struct {
			Components []struct{ Name, Type string } `json:"components"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &md) != nil {
			t.Fatalf("daprd metadata: %d %s", resp.StatusCode, body)
		}
		for _, c := range md.Components {
			found = found || c.Name == "statestore"
		}
	}
	if !found {
		t.Fatalf("daprd did not get the statestore Component from the operator in 15 s: %s", body)
	}
	if resp, body := do(t, "POST", dap.url()+"/v1.0/state/statestore", strings.NewReader(`[{"key":"k","value":"v"}]`), map[string]string{"Content-Type": "application/json"}); resp.StatusCode != 204 {
		t.Fatalf("daprd state save: %d %s", resp.StatusCode, body)
	}

	// Invocation both ways over mTLS.
	for _, c := range []struct{ from, to *kubeSidecar }{{tan, dap}, {dap, tan}} {
		resp, got := do(t, "POST", c.from.url()+"/v1.0/invoke/"+c.to.appID+"/method/echo", strings.NewReader("hello"), map[string]string{"Content-Type": "text/plain"})
		if resp.StatusCode != 200 || string(got) != "hello" {
			t.Fatalf("%s -> %s: %d %s", c.from.appID, c.to.appID, resp.StatusCode, got)
		}
		if caller := resp.Header.Get("X-Echo-Caller"); caller != c.from.appID {
			t.Errorf("%s -> %s: callee app saw caller %q", c.from.appID, c.to.appID, caller)
		}
	}

	// tandemd's built-in secret store "kubernetes".
	resp, body := do(t, "GET", tan.url()+"/v1.0/secrets/kubernetes/interop-secret", nil, nil)
	var secret map[string]string
	if resp.StatusCode != 200 || json.Unmarshal(body, &secret) != nil || secret["password"] != "s3cret" || secret["user"] != "admin" {
		t.Fatalf("tandemd GET secret: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", tan.url()+"/v1.0/secrets/kubernetes/bulk", nil, nil)
	var bulk map[string]map[string]string
	if resp.StatusCode != 200 || json.Unmarshal(body, &bulk) != nil || bulk["interop-secret"]["password"] != "s3cret" {
		t.Fatalf("tandemd bulk secrets: %d %s", resp.StatusCode, body)
	}
	if daprd == "" {
		endpointSlices(t, p, opAddr, tan)
	}
	// The same answer from the peer's own store (daprd's, or tandemd's).
	resp, body = do(t, "GET", dap.url()+"/v1.0/secrets/kubernetes/interop-secret", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"password":"s3cret"`) {
		t.Fatalf("daprd GET secret: %d %s", resp.StatusCode, body)
	}
}

// endpointSlices starts a third tandemd whose Configuration leaves name
// resolution to the mode's default, kubernetes, and has it call tan
// through an EndpointSlice of tan-dapr naming this host's own address
// (the API server refuses loopback ones): the call works, stops as soon
// as the endpoint is marked not ready, and works again when it is ready.
func endpointSlices(t *testing.T, p *kubeplane.Plane, opAddr string, tan *kubeSidecar) {
	const ns = "interop"
	ip := hostIP()
	if ip == "" {
		t.Log("no non-loopback IPv4 address on this host: the EndpointSlice part is skipped")
		return
	}
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(p.Config)
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "dapr.io", Version: "v1alpha1", Resource: "configurations"}
	if _, err := dyn.Resource(gvr).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "dapr.io/v1alpha1", "kind": "Configuration", "metadata": map[string]any{"name": "slices"}, "spec": map[string]any{},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	slices := p.Clientset.DiscoveryV1().EndpointSlices(ns)
	portName, port := "dapr-internal", int32(tan.internPort)
	setReady := func(ready bool) {
		t.Helper()
		s := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "tan-dapr-x", Labels: map[string]string{discoveryv1.LabelServiceName: "tan-dapr"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		}
		cur, err := slices.Get(ctx, s.Name, metav1.GetOptions{})
		if err == nil {
			s.ResourceVersion = cur.ResourceVersion
			_, err = slices.Update(ctx, s, metav1.UpdateOptions{})
		} else {
			_, err = slices.Create(ctx, s, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	setReady(true)

	ep := &kubeSidecar{}
	args := kubeSidecarArgs(t, p, opAddr, "ep", 0, ep)
	for i, a := range args {
		if a == "interop" {
			args[i] = "slices"
		}
	}
	token := p.TokenFile(p.Pod(ns, "ep-0", map[string]string{"dapr.io/enabled": "true", "dapr.io/app-id": "ep", "dapr.io/config": "slices"}))
	ep.Process = framework.Start(t, "tandemd ep", bins.Tandemd, append(args, "--trust-anchors-file", p.Anchors),
		"NAMESPACE="+ns, "POD_NAME=ep-0", "KUBECONFIG="+p.Kubeconfig, "DAPR_SENTRY_TOKEN_FILE="+token)
	wait, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := framework.WaitHTTP(wait, ep.url()+"/v1.0/healthz", http.StatusNoContent, 90*time.Second); err != nil {
		t.Fatalf("ep not healthy: %v\n%s", err, ep.Output())
	}
	call := func() int {
		resp, _ := do(t, "POST", ep.url()+"/v1.0/invoke/tan/method/echo", strings.NewReader("hi"), map[string]string{"Content-Type": "text/plain"})
		return resp.StatusCode
	}
	until := func(what string, ok func(int) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			code := call()
			if ok(code) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: last status %d\n%s", what, code, ep.Output())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if code := call(); code != 200 {
		t.Fatalf("ep -> tan through the EndpointSlice: status %d\n%s", code, ep.Output())
	}
	setReady(false)
	until("the not-ready endpoint to leave", func(c int) bool { return c != 200 })
	setReady(true)
	until("the endpoint to come back", func(c int) bool { return c == 200 })
}

// hostIP returns this host's first non-loopback IPv4 address.
func hostIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}
