package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tandemrun/tandem/injector"
	"github.com/tandemrun/tandem/sentry/ca"
)

// TestAppRBAC applies the opt-in app RBAC (appRBAC.enabled) for two namespaces, binding only the ServiceAccount
// "app" in each, and asks the API server (kubectl auth can-i) what that ServiceAccount may now do: watch
// EndpointSlices and read Secrets in its own namespace, nothing in another, and nothing more.
func TestAppRBAC(t *testing.T) {
	apiServer(t)
	ch, err := LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	out, err := AppRBACManifests(ch, RenderOptions{Values: map[string]any{"appRBAC": map[string]any{
		"namespaces": []any{"rbac-a", "rbac-b"}, "serviceAccounts": []any{"app"}}}})
	if err != nil {
		t.Fatal(err)
	}
	mustKubectl(t, "", "create", "namespace", "rbac-a")
	mustKubectl(t, "", "create", "namespace", "rbac-b")
	mustKubectl(t, "", "create", "namespace", "rbac-c")
	mustKubectl(t, out, "apply", "-f", "-")
	canI := func(ns, sa, verb, resource string) bool {
		got, _ := kubectl(t, "", "auth", "can-i", verb, resource, "-n", ns, "--as", "system:serviceaccount:rbac-a:"+sa)
		return strings.TrimSpace(got) == "yes"
	}
	for _, c := range []struct {
		ns, sa, verb, resource string
		want                   bool
	}{
		{"rbac-a", "app", "watch", "endpointslices.discovery.k8s.io", true},
		{"rbac-a", "app", "list", "endpointslices.discovery.k8s.io", true},
		{"rbac-a", "app", "get", "secrets", true},
		{"rbac-a", "app", "list", "secrets", true},
		{"rbac-a", "app", "create", "secrets", false},
		{"rbac-a", "app", "delete", "endpointslices.discovery.k8s.io", false},
		{"rbac-a", "app", "list", "pods", false},
		{"rbac-a", "other", "get", "secrets", false},                        // a ServiceAccount not listed
		{"rbac-c", "app", "get", "secrets", false},                          // a namespace not listed
		{"rbac-b", "app", "list", "endpointslices.discovery.k8s.io", false}, // another namespace's Role
	} {
		if got := canI(c.ns, c.sa, c.verb, c.resource); got != c.want {
			t.Errorf("system:serviceaccount:rbac-a:%s can %s %s in %s: %v, want %v", c.sa, c.verb, c.resource, c.ns, got, c.want)
		}
	}
	// Without serviceAccounts, every ServiceAccount of the namespace is bound.
	out, err = AppRBACManifests(ch, RenderOptions{Values: map[string]any{"appRBAC": map[string]any{"namespaces": []any{"rbac-c"}}}})
	if err != nil {
		t.Fatal(err)
	}
	mustKubectl(t, out, "apply", "-f", "-")
	got, _ := kubectl(t, "", "auth", "can-i", "watch", "endpointslices.discovery.k8s.io", "-n", "rbac-c", "--as", "system:serviceaccount:rbac-c:anyone")
	if strings.TrimSpace(got) != "yes" {
		t.Errorf("any ServiceAccount of rbac-c watching EndpointSlices there: %q, want yes", got)
	}
}

// TestDryRunServer is `helm template | kubectl apply --dry-run=server`: every rendered object passes the API
// server's validation (schemas, RBAC objects, webhook configuration, CEL match conditions). The CRDs are applied
// first, for real, as the daprsystem Configuration needs them.
func TestDryRunServer(t *testing.T) {
	apiServer(t)
	ch, err := LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(ch, RenderOptions{Namespace: "dryrun", Values: map[string]any{"ha": map[string]any{"enabled": true}}})
	if err != nil {
		t.Fatal(err)
	}
	var crds, rest []string
	for _, doc := range splitYAML(out) {
		if strings.Contains(doc, "kind: CustomResourceDefinition") {
			crds = append(crds, doc)
		} else {
			rest = append(rest, doc)
		}
	}
	if len(crds) != 7 {
		t.Fatalf("%d CRDs rendered, want 7", len(crds))
	}
	mustKubectl(t, strings.Join(crds, "\n---\n"), "apply", "--server-side", "--field-manager=tandem-test", "-f", "-")
	mustKubectl(t, "", "wait", "--for=condition=Established", "--timeout=60s", "crd/components.dapr.io",
		"crd/configurations.dapr.io", "crd/resiliencies.dapr.io", "crd/subscriptions.dapr.io", "crd/httpendpoints.dapr.io",
		"crd/mcpservers.dapr.io", "crd/workflowaccesspolicies.dapr.io")
	mustKubectl(t, "", "create", "namespace", "dryrun")
	got := mustKubectl(t, strings.Join(rest, "\n---\n"), "apply", "--dry-run=server", "-f", "-")
	for _, want := range []string{"deployment.apps/dapr-sentry created (server dry run)",
		"mutatingwebhookconfiguration.admissionregistration.k8s.io/dapr-sidecar-injector created (server dry run)",
		"configuration.dapr.io/daprsystem created (server dry run)"} {
		if !strings.Contains(got, want) {
			t.Errorf("kubectl apply --dry-run=server said\n%s\nwant a line %q", got, want)
		}
	}
}

// TestInstallStatusUninstall drives `tandem k8s` through the API server: install (CRDs, RBAC, webhook), Dapr's
// resources applied against the CRDs, the webhook's fail-closed and never-blocks rules, status, upgrade, uninstall.
func TestInstallStatusUninstall(t *testing.T) {
	apiServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client := kubernetes.NewForConfigOrDie(shared.cfg)
	bundle, err := ca.GenerateBundle(ca.GenerateOptions{TrustDomain: "cluster.local", Namespace: "tandem-it"})
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	o := Options{Kubeconfig: shared.kubeconfig, Namespace: "tandem-it", Progress: &progress, Timeout: 2 * time.Minute,
		Values: map[string]any{"tls": map[string]any{
			"root":   map[string]any{"certPEM": string(bundle.TrustAnchorsPEM)},
			"issuer": map[string]any{"certPEM": string(bundle.IssuerChainPEM), "keyPEM": string(bundle.IssuerKeyPEM)},
		}}}
	if err := Install(ctx, o); err != nil {
		t.Fatalf("install: %v\n%s", err, progress.String())
	}
	if !strings.Contains(progress.String(), "installing release tandem (chart tandem 0.1.0) into namespace tandem-it") ||
		!strings.Contains(progress.String(), "revision 1: deployed") {
		t.Errorf("install progress:\n%s", progress.String())
	}
	if err := Install(ctx, o); err == nil || !strings.Contains(err.Error(), "already installed") {
		t.Errorf("second install: %v, want already installed", err)
	}

	checkCRDs(ctx, t)
	checkRBAC(ctx, t, client)
	hook, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "dapr-sidecar-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w := hook.Webhooks[0]; *w.FailurePolicy != "Fail" || w.ClientConfig.Service.Namespace != "tandem-it" || len(w.MatchConditions) != 1 {
		t.Errorf("webhook %+v", w)
	}

	t.Run("dapr resources apply unchanged", func(t *testing.T) { applyDaprResources(t) })
	t.Run("webhook", func(t *testing.T) { checkWebhookRules(ctx, t, client) })

	r, err := Status(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "deployed" || r.ChartVersion != "0.1.0" || len(r.Services) != 3 || r.Healthy() {
		t.Errorf("status %+v: want deployed, 3 services, not healthy (no kubelet runs the pods)", r)
	}
	root, _ := bundle.ActiveRoot()
	if len(r.Certificates) != 2 || !r.Certificates[0].NotAfter.Equal(root.NotAfter) || !r.Certificates[1].NotAfter.Equal(bundle.IssuerChain[0].NotAfter) {
		t.Errorf("certificates %+v, want the root's and the issuer's expiry", r.Certificates)
	}
	if !strings.HasPrefix(r.Webhook, "registered without a caBundle") {
		t.Errorf("webhook state %q before the injector set the caBundle", r.Webhook)
	}
	// What the injector does when it starts, as the injector's ServiceAccount: its RBAC allows exactly this patch.
	asInjector := rest.CopyConfig(shared.cfg)
	asInjector.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:tandem-it:dapr-injector"}
	patch, err := injector.CABundlePatch(bundle.TrustAnchorsPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubernetes.NewForConfigOrDie(asInjector).AdmissionregistrationV1().MutatingWebhookConfigurations().Patch(ctx,
		"dapr-sidecar-injector", types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("the injector's caBundle patch: %v", err)
	}
	if r, err = Status(ctx, o); err != nil || r.Webhook != "registered" {
		t.Errorf("webhook state %q (%v) after the injector's patch", r.Webhook, err)
	}
	var text bytes.Buffer
	if err := r.Write(&text, time.Now()); err != nil || !strings.Contains(text.String(), "dapr-sentry") || !strings.Contains(text.String(), "NOT healthy") {
		t.Errorf("status text (%v):\n%s", err, text.String())
	}

	o.Values = map[string]any{"logLevel": "debug", "tls": o.Values["tls"]}
	progress.Reset()
	if err := Upgrade(ctx, o); err != nil {
		t.Fatalf("upgrade: %v\n%s", err, progress.String())
	}
	d, err := client.AppsV1().Deployments("tandem-it").Get(ctx, "dapr-sentry", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a := strings.Join(d.Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(a, "--log-level debug") {
		t.Errorf("after upgrade sentry args %q", a)
	}

	if err := Uninstall(ctx, o); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AppsV1().Deployments("tandem-it").Get(ctx, "dapr-sentry", metav1.GetOptions{}); err == nil {
		t.Error("dapr-sentry is still there after uninstall")
	}
	if _, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "dapr-sidecar-injector", metav1.GetOptions{}); err == nil {
		t.Error("the webhook configuration is still there after uninstall")
	}
	mustKubectl(t, "", "get", "components.dapr.io/statestore", "-n", "apps") // CRDs and their resources stay
	if _, err := Status(ctx, o); err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Errorf("status after uninstall: %v", err)
	}
}

func checkCRDs(ctx context.Context, t *testing.T) {
	t.Helper()
	ext := apiextclient.NewForConfigOrDie(shared.cfg)
	want := map[string]string{
		"components.dapr.io": "v1alpha1:served,storage", "configurations.dapr.io": "v1alpha1:served,storage",
		"resiliencies.dapr.io": "v1alpha1:served,storage", "httpendpoints.dapr.io": "v1alpha1:served,storage",
		"subscriptions.dapr.io": "v1alpha1:served v2alpha1:served,storage",
	}
	for name, versions := range want {
		crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("CRD %s: %v", name, err)
			continue
		}
		var got []string
		for _, v := range crd.Spec.Versions {
			s := v.Name + ":"
			if v.Served {
				s += "served"
			}
			if v.Storage {
				s += ",storage"
			}
			got = append(got, s)
		}
		if strings.Join(got, " ") != versions || crd.Spec.Scope != "Namespaced" || crd.Spec.Group != "dapr.io" {
			t.Errorf("CRD %s: %s %s %v, want dapr.io Namespaced %s", name, crd.Spec.Group, crd.Spec.Scope, got, versions)
		}
	}
}

func checkRBAC(ctx context.Context, t *testing.T, client kubernetes.Interface) {
	t.Helper()
	for _, sa := range []string{"dapr-sentry", "dapr-operator", "dapr-injector"} {
		if _, err := client.CoreV1().ServiceAccounts("tandem-it").Get(ctx, sa, metav1.GetOptions{}); err != nil {
			t.Errorf("ServiceAccount %s: %v", sa, err)
		}
		if _, err := client.RbacV1().ClusterRoleBindings().Get(ctx, sa, metav1.GetOptions{}); err != nil {
			t.Errorf("ClusterRoleBinding %s: %v", sa, err)
		}
	}
	// What each binary may do, asked of the API server's authorizer as the binary's ServiceAccount.
	for _, c := range []struct {
		sa, verb, group, resource, ns, name string
		allowed                             bool
	}{
		{"dapr-sentry", "create", "authentication.k8s.io", "tokenreviews", "", "", true},
		{"dapr-sentry", "get", "", "pods", "apps", "", true},
		{"dapr-sentry", "get", "dapr.io", "configurations", "apps", "appconfig", true},
		{"dapr-sentry", "update", "dapr.io", "configurations", "apps", "appconfig", false},
		{"dapr-sentry", "update", "", "secrets", "tandem-it", "dapr-trust-bundle", true},
		{"dapr-sentry", "get", "", "secrets", "apps", "db-password", false},
		{"dapr-sentry", "delete", "", "pods", "apps", "", false},
		{"dapr-operator", "watch", "dapr.io", "components", "apps", "", true},
		{"dapr-operator", "get", "", "secrets", "apps", "db-password", true},
		{"dapr-operator", "create", "", "services", "apps", "", true},
		{"dapr-operator", "update", "coordination.k8s.io", "leases", "tandem-it", "operator.dapr.io", true},
		{"dapr-operator", "create", "dapr.io", "components", "apps", "", false},
		{"dapr-operator", "delete", "", "pods", "apps", "", false},
		{"dapr-operator", "list", "", "pods", "apps", "", true},
		{"dapr-sentry", "create", "", "configmaps", "apps", "", true},
		{"dapr-sentry", "update", "", "configmaps", "apps", "other", false},
		{"dapr-injector", "get", "", "pods", "apps", "", false},
		{"dapr-injector", "patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "dapr-sidecar-injector", true},
		{"dapr-injector", "patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "other-webhook", false},
		{"dapr-injector", "update", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "dapr-sidecar-injector", false},
		{"dapr-injector", "get", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "dapr-sidecar-injector", false},
		{"dapr-injector", "patch", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "dapr-sidecar-injector", false},
		{"dapr-injector", "get", "", "secrets", "tandem-it", "dapr-trust-bundle", false},
		{"dapr-injector", "get", "", "secrets", "apps", "db-password", false},
	} {
		args := []string{"auth", "can-i", c.verb, c.resource, "--as", "system:serviceaccount:tandem-it:" + c.sa}
		if c.group != "" {
			args[3] = c.resource + "." + c.group
		}
		if c.name != "" {
			args[3] += "/" + c.name
		}
		if c.ns != "" {
			args = append(args, "-n", c.ns)
		}
		out, _ := kubectl(t, "", args...)
		// The answer is the last line; kubectl may warn before it (a namespace given for a cluster-scoped resource).
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if got := strings.TrimSpace(lines[len(lines)-1]) == "yes"; got != c.allowed {
			t.Errorf("%s can %s %s: %q, want %v", c.sa, c.verb, args[3], strings.TrimSpace(out), c.allowed)
		}
	}
}

// applyDaprResources applies Dapr-style manifests unchanged, and reads a v1alpha1 Subscription back at the
// stored v2alpha1 with its route kept.
func applyDaprResources(t *testing.T) {
	data, err := os.ReadFile("testdata/dapr-resources.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mustKubectl(t, "", "create", "namespace", "apps")
	out := mustKubectl(t, string(data), "apply", "-n", "apps", "-f", "-")
	for _, want := range []string{"component.dapr.io/statestore created", "subscription.dapr.io/orders-v2 created",
		"subscription.dapr.io/orders-v1 created", "resiliency.dapr.io/myresiliency created",
		"httpendpoint.dapr.io/external created", "configuration.dapr.io/appconfig created"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply said\n%s\nwant %q", out, want)
		}
	}
	var sub struct {
		APIVersion string `json:"apiVersion"`
		Spec       struct {
			Route  string         `json:"route"`
			Routes map[string]any `json:"routes"`
		} `json:"spec"`
		Scopes []string `json:"scopes"`
	}
	raw := mustKubectl(t, "", "get", "subscriptions.v2alpha1.dapr.io/orders-v1", "-n", "apps", "-o", "json")
	if err := json.Unmarshal([]byte(raw), &sub); err != nil {
		t.Fatal(err)
	}
	if sub.APIVersion != "dapr.io/v2alpha1" || sub.Spec.Route != "/orders-v1" || len(sub.Scopes) != 1 {
		t.Errorf("v1alpha1 Subscription read at v2alpha1: %+v, want its route and scopes kept", sub)
	}
	var comp struct {
		Spec struct {
			Metadata []map[string]any `json:"metadata"`
		} `json:"spec"`
		Auth map[string]string `json:"auth"`
	}
	raw = mustKubectl(t, "", "get", "components.dapr.io/statestore", "-n", "apps", "-o", "json")
	if err := json.Unmarshal([]byte(raw), &comp); err != nil {
		t.Fatal(err)
	}
	if len(comp.Spec.Metadata) != 4 || comp.Auth["secretStore"] != "kubernetes" || comp.Spec.Metadata[3]["value"] != float64(60) {
		t.Errorf("component read back: %+v", comp)
	}
	// The schemas reject what Dapr's reject: a Component without a type.
	if out, err := kubectl(t, "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: bad}\nspec: {version: v1, metadata: []}\n",
		"apply", "-n", "apps", "-f", "-"); err == nil || !strings.Contains(out, "spec.type") {
		t.Errorf("a Component without spec.type was accepted: %v\n%s", err, out)
	}
}

// checkWebhookRules: no injector runs, so the webhook cannot answer. A pod without the annotation (or with it
// false) is still created; an annotated pod is refused rather than started without its sidecar.
func checkWebhookRules(ctx context.Context, t *testing.T, client kubernetes.Interface) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := client.CoreV1().ServiceAccounts("apps").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := func(name string, annotations map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
		}
	}
	for _, c := range []struct {
		name        string
		annotations map[string]string
		created     bool
	}{
		{"plain", nil, true},
		{"other-annotations", map[string]string{"example.com/x": "y"}, true},
		{"dapr-disabled", map[string]string{"dapr.io/enabled": "false", "dapr.io/app-id": "x"}, true},
		{"dapr-enabled", map[string]string{"dapr.io/enabled": "true", "dapr.io/app-id": "orders"}, false},
		{"dapr-enabled-yes", map[string]string{"dapr.io/enabled": "Yes", "dapr.io/app-id": "orders"}, false},
	} {
		_, err := client.CoreV1().Pods("apps").Create(ctx, pod(c.name, c.annotations), metav1.CreateOptions{})
		switch {
		case c.created && err != nil:
			t.Errorf("pod %s refused: %v", c.name, err)
		case !c.created && err == nil:
			t.Errorf("pod %s created although the injector is down", c.name)
		case !c.created && !strings.Contains(err.Error(), "sidecar-injector.dapr.io"):
			t.Errorf("pod %s refused for another reason: %v", c.name, err)
		}
	}
}
