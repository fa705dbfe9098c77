package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// Namespace is the control plane's namespace in deploy/manifests/tandem.yaml.
const Namespace = "dapr-system"

// workloadCertTTL is given to sentry over the chart's 24h, so that certificates rotate while the test watches.
const workloadCertTTL = "30s"

// ControlPlane is sentry, the operator and the injector running as the chart's pods.
type ControlPlane struct {
	Sentry, Operator, Injector *framework.Process
	// SentryAddr and OperatorAddr are where sidecars reach them (their Services' loopback stand-ins);
	// InjectorAddr is the webhook's HTTPS address.
	SentryAddr, OperatorAddr, InjectorAddr string
}

// StartControlPlane applies the plain manifests and runs the three Deployments' pods.
func StartControlPlane(t *testing.T, n *Node) *ControlPlane {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(framework.RepoRoot(), "deploy", "manifests", "tandem.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crds, rest []string
	for _, doc := range strings.Split(string(data), "\n---\n") {
		if strings.Contains(doc, "\nkind: CustomResourceDefinition") {
			crds = append(crds, doc)
		} else {
			rest = append(rest, doc)
		}
	}
	n.Kubectl(strings.Join(crds, "\n---\n"), "apply", "--server-side", "-f", "-")
	n.Kubectl("", "wait", "--for=condition=Established", "--timeout=60s", "crd/components.dapr.io",
		"crd/configurations.dapr.io", "crd/resiliencies.dapr.io", "crd/subscriptions.dapr.io", "crd/httpendpoints.dapr.io",
		"crd/mcpservers.dapr.io", "crd/workflowaccesspolicies.dapr.io")
	n.Kubectl(strings.Join(rest, "\n---\n"), "apply", "--server-side", "-f", "-")

	cp := &ControlPlane{}
	local := "127.0.0.1"
	sentryPort, sentryHealth := Port(t), Port(t)
	cp.SentryAddr = local + ":" + sentryPort
	sentryPod := n.DeploymentPod("dapr-sentry")
	cp.Sentry, _ = n.Run(Container{Pod: sentryPod, Spec: sentryPod.Spec.Containers[0], Bin: n.Bins["sentry"], Kubeconfig: true,
		Args: []string{"--port", sentryPort, "--listen-address", local, "--healthz-port", sentryHealth, "--healthz-listen-address", local,
			"--metrics-port", Port(t), "--metrics-listen-address", local, "--workload-cert-ttl", workloadCertTTL}})
	waitHealthy(t, cp.Sentry, sentryHealth)
	WaitFor(t, "sentry publishes the trust bundle", time.Minute, func() (bool, string) {
		cm, err := n.CS.CoreV1().ConfigMaps(Namespace).Get(n.Ctx, "dapr-trust-bundle", metav1.GetOptions{})
		return err == nil && cm.Data["ca.crt"] != "", fmt.Sprint(err)
	})

	opPort, opHealth := Port(t), Port(t)
	cp.OperatorAddr = local + ":" + opPort
	opPod := n.DeploymentPod("dapr-operator")
	cp.Operator, _ = n.Run(Container{Pod: opPod, Spec: opPod.Spec.Containers[0], Bin: n.Bins["operator"], Kubeconfig: true,
		Args: []string{"--port", opPort, "--listen-address", local, "--healthz-port", opHealth, "--healthz-listen-address", local,
			"--metrics-port", Port(t), "--metrics-listen-address", local, "--sentry-address", cp.SentryAddr,
			"--sentry-token-file", "/var/run/secrets/dapr.io/sentrytoken/token"}})
	waitHealthy(t, cp.Operator, opHealth)

	// The API server refuses loopback addresses in EndpointSlices, so the webhook listens on the node's own address.
	nodeIP := NodeIP(t)
	injPort, injHealth := Port(t), Port(t)
	injPod := n.DeploymentPod("dapr-sidecar-injector")
	cp.InjectorAddr = net.JoinHostPort(nodeIP, injPort)
	// What the endpoints controller would write for the injector's pod.
	var p int32
	fmt.Sscan(injPort, &p)
	https, ready := "https", true
	tcp := corev1.ProtocolTCP
	if _, err := n.CS.DiscoveryV1().EndpointSlices(Namespace).Create(n.Ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "dapr-sidecar-injector-node", Labels: map[string]string{discoveryv1.LabelServiceName: "dapr-sidecar-injector"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{nodeIP}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &https, Port: &p, Protocol: &tcp}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("EndpointSlice of the injector's Service on %s: %v", nodeIP, err)
	}
	cp.Injector, _ = n.Run(Container{Pod: injPod, Spec: injPod.Spec.Containers[0], Bin: n.Bins["injector"], Kubeconfig: true,
		Args: []string{"--port", injPort, "--listen-address", nodeIP, "--healthz-port", injHealth, "--healthz-listen-address", local,
			"--sentry-token-file", "/var/run/secrets/dapr.io/sentrytoken/token"},
		Env: map[string]string{"DAPR_SENTRY_ADDRESS": cp.SentryAddr}})
	// The injector is healthy once its webhook serves sentry's certificate and the caBundle is set.
	waitHealthy(t, cp.Injector, injHealth)
	return cp
}

func waitHealthy(t *testing.T, p *framework.Process, healthPort string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := framework.WaitHTTP(ctx, "http://127.0.0.1:"+healthPort+"/healthz", 200, 2*time.Minute); err != nil {
		t.Fatalf("%s: %v\n%s", p.Name, err, p.Output())
	}
}

// DeploymentPod creates the pod a ReplicaSet would create for the control plane's Deployment (see PodOf).
func (n *Node) DeploymentPod(name string) *corev1.Pod {
	n.T.Helper()
	return n.PodOf(Namespace, name)
}

// PodOf creates the pod a ReplicaSet would create for the Deployment ns/name: its template, named <name>-0, with
// the ServiceAccount "default" if it names none (what the ServiceAccount admission plugin, which envtest leaves
// out, sets). The pod returned is as the API server stored it, after admission.
func (n *Node) PodOf(ns, name string) *corev1.Pod {
	n.T.Helper()
	d, err := n.CS.AppsV1().Deployments(ns).Get(n.Ctx, name, metav1.GetOptions{})
	if err != nil {
		n.T.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: d.Spec.Template.ObjectMeta, Spec: d.Spec.Template.Spec}
	pod.Name, pod.Namespace = name+"-0", ns
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = "default"
	}
	out, err := n.CS.CoreV1().Pods(ns).Create(n.Ctx, pod, metav1.CreateOptions{})
	if err != nil {
		n.T.Fatalf("pod of Deployment %s/%s: %v", ns, name, err)
	}
	return out
}

// NodeIP is this machine's first IPv4 address that is not loopback: the API server only calls a webhook at an
// address an EndpointSlice may hold.
func NodeIP(t testing.TB) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			return ipn.IP.String()
		}
	}
	t.Fatal("this machine has no IPv4 address but loopback, and the API server calls webhooks only at other addresses")
	return ""
}
