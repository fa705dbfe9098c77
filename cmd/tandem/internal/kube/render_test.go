package kube

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"sigs.k8s.io/yaml"
)

const (
	chartDir      = "../../../../deploy/helm/tandem"
	manifestsFile = "../../../../deploy/manifests/tandem.yaml"
	appRBACFile   = "../../../../deploy/manifests/app-rbac.yaml"
	scalerFile    = "../../../../deploy/manifests/scaler.yaml"
)

// TestLint is helm lint --strict on the chart's folder: no error and no warning.
func TestLint(t *testing.T) {
	l := action.NewLint()
	l.Strict = true
	l.Namespace = DefaultNamespace
	r := l.Run([]string{chartDir}, nil)
	for _, m := range r.Messages {
		if m.Severity > support.InfoSev {
			t.Errorf("helm lint: %s", m)
		}
	}
	for _, err := range r.Errors {
		t.Errorf("helm lint: %v", err)
	}
}

// TestManifestsInSync keeps deploy/manifests/tandem.yaml equal to the chart rendered with its defaults, and
// deploy/manifests/app-rbac.yaml equal to the opt-in app RBAC rendered alone. TANDEM_UPDATE_MANIFESTS=1 rewrites
// the files.
func TestManifestsInSync(t *testing.T) {
	ch, err := LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	control, err := PlainManifests(ch, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	apps, err := AppRBACManifests(ch, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scaler, err := ScalerManifests(ch, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{manifestsFile: control, appRBACFile: apps, scalerFile: scaler} {
		if os.Getenv("TANDEM_UPDATE_MANIFESTS") == "1" {
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("deploy/manifests/%s is not what the chart renders; regenerate it with\n"+
				"  TANDEM_UPDATE_MANIFESTS=1 go test ./cmd/tandem/internal/kube -run TestManifestsInSync", filepath.Base(file))
		}
	}
	if strings.Contains(control, appRBACSource) {
		t.Error("the default install has the app RBAC, which is opt-in")
	}
	for _, src := range scalerSources {
		if strings.Contains(control, src) {
			t.Errorf("the default install has %s, which is opt-in", src)
		}
	}
	for _, kind := range []string{"Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} {
		if n := strings.Count(scaler, "\nkind: "+kind+"\n"); n != 1 {
			t.Errorf("scaler.yaml has %d %s, want one:\n%s", n, kind, scaler)
		}
	}
	if n := strings.Count(apps, "\nkind: Role\n"); n != 1 || strings.Count(apps, "\nkind: RoleBinding\n") != 1 {
		t.Errorf("app-rbac.yaml has %d Roles, want one Role and its RoleBinding:\n%s", n, apps)
	}
}

// TestNoSecretsRendered: the rendered install holds no key and no certificate (the plain manifests are public),
// and the webhook's caBundle is left for the injector to set from sentry's trust anchors.
func TestNoSecretsRendered(t *testing.T) {
	ch, err := LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	out, err := PlainManifests(ch, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"PRIVATE KEY", "BEGIN CERTIFICATE", "LS0tLS1CRUdJTi", "tls.key", "caBundle:"} {
		if strings.Contains(out, bad) {
			t.Errorf("the rendered manifests contain %q", bad)
		}
	}
	objs := render(t, nil)
	for id, o := range objs {
		if o["kind"] == "Secret" && id != "Secret/dapr-trust-bundle" {
			t.Errorf("the chart renders %s", id)
		}
	}
	d := objs["Deployment/dapr-sidecar-injector"]
	if got := d.get("spec", "template", "metadata", "annotations", "dapr.io/control-plane"); got != "injector" {
		t.Errorf("injector pod annotation dapr.io/control-plane = %v, want injector (sentry gives it its identity)", got)
	}
	var audience any
	for _, v := range d.get("spec", "template", "spec", "volumes").([]any) {
		if vol := object(v.(map[string]any)); vol["name"] == "dapr-identity-token" {
			audience = object(vol.get("projected", "sources").([]any)[0].(map[string]any)).get("serviceAccountToken", "audience")
		}
	}
	if audience != "spiffe://cluster.local/ns/cp/dapr-sentry" {
		t.Errorf("injector token audience %v", audience)
	}
	for _, name := range []string{"dapr-operator", "dapr-sentry"} {
		want := strings.TrimPrefix(name, "dapr-")
		if got := objs["Deployment/"+name].get("spec", "template", "metadata", "annotations", "dapr.io/control-plane"); got != want {
			t.Errorf("%s pod annotation dapr.io/control-plane = %v, want %s", name, got, want)
		}
	}
}

// object is one rendered document.
type object map[string]any

func (o object) get(path ...string) any {
	var cur any = map[string]any(o)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func (o object) id() string {
	name, _ := o.get("metadata", "name").(string)
	kind, _ := o["kind"].(string)
	return kind + "/" + name
}

func render(t *testing.T, values map[string]any) map[string]object {
	t.Helper()
	ch, err := LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(ch, RenderOptions{Namespace: "cp", Values: values})
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]object{}
	for _, doc := range splitYAML(out) {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("%v in\n%s", err, doc)
		}
		objs[o.id()] = o
	}
	return objs
}

// container returns the one container of a rendered Deployment.
func container(t *testing.T, objs map[string]object, deployment string) object {
	t.Helper()
	d, ok := objs["Deployment/"+deployment]
	if !ok {
		t.Fatalf("no Deployment %s", deployment)
	}
	cs, _ := d.get("spec", "template", "spec", "containers").([]any)
	if len(cs) != 1 {
		t.Fatalf("Deployment %s has %d containers", deployment, len(cs))
	}
	return object(cs[0].(map[string]any))
}

func args(c object) string {
	var s []string
	for _, a := range c["args"].([]any) {
		s = append(s, a.(string))
	}
	return strings.Join(s, " ")
}

func TestRenderDefaults(t *testing.T) {
	objs := render(t, nil)
	for _, want := range []string{
		"CustomResourceDefinition/components.dapr.io", "CustomResourceDefinition/configurations.dapr.io",
		"CustomResourceDefinition/resiliencies.dapr.io", "CustomResourceDefinition/subscriptions.dapr.io",
		"CustomResourceDefinition/httpendpoints.dapr.io", "CustomResourceDefinition/mcpservers.dapr.io",
		"CustomResourceDefinition/workflowaccesspolicies.dapr.io",
		"Deployment/dapr-sentry", "Deployment/dapr-operator", "Deployment/dapr-sidecar-injector",
		"Service/dapr-sentry", "Service/dapr-api", "Service/dapr-sidecar-injector",
		"ServiceAccount/dapr-sentry", "ServiceAccount/dapr-operator", "ServiceAccount/dapr-injector",
		"ClusterRole/dapr-sentry", "ClusterRole/dapr-operator", "ClusterRole/dapr-injector",
		"MutatingWebhookConfiguration/dapr-sidecar-injector", "Secret/dapr-trust-bundle",
		"ConfigMap/dapr-trust-bundle", "Configuration/daprsystem",
	} {
		if _, ok := objs[want]; !ok {
			t.Errorf("missing %s", want)
		}
	}
	if _, ok := objs["PodDisruptionBudget/dapr-sentry"]; ok {
		t.Error("a PodDisruptionBudget without HA")
	}
	sentry := container(t, objs, "dapr-sentry")
	for _, want := range []string{"--mode kubernetes", "--log-level info", "--enable-metrics --metrics-port 9090",
		"--trust-domain cluster.local", "--issuer-credentials /var/run/secrets/dapr.io/credentials",
		"--issuer-ca-filename ca.crt", "--issuer-certificate-filename issuer.crt", "--issuer-key-filename issuer.key",
		"--workload-cert-ttl 24h"} {
		if !strings.Contains(args(sentry), want) {
			t.Errorf("sentry args %q lack %q", args(sentry), want)
		}
	}
	if got := sentry["image"]; got != "ghcr.io/tandemrun/sentry:0.1.0" {
		t.Errorf("sentry image %v", got)
	}
	if got := args(container(t, objs, "dapr-operator")); !strings.Contains(got, "--trust-anchors-file /var/run/secrets/dapr.io/tls/ca.crt") {
		t.Errorf("operator args %q", got)
	}
	wh := objs["MutatingWebhookConfiguration/dapr-sidecar-injector"]
	hook := object(wh.get("webhooks").([]any)[0].(map[string]any))
	if hook["failurePolicy"] != "Fail" || hook.get("clientConfig", "service", "namespace") != "cp" {
		t.Errorf("webhook %v", hook)
	}
	if conds, _ := hook["matchConditions"].([]any); len(conds) != 1 {
		t.Errorf("webhook matchConditions %v, want the dapr.io/enabled condition", hook["matchConditions"])
	}
	if objs["Secret/dapr-trust-bundle"]["data"] != nil {
		t.Error("the trust bundle Secret has data without tls values")
	}
}

func TestRenderValues(t *testing.T) {
	objs := render(t, map[string]any{
		"ha":           map[string]any{"enabled": true},
		"image":        map[string]any{"repository": "registry.local/t", "tag": "1.2.3"},
		"logLevel":     "debug",
		"logAsJson":    true,
		"mtls":         map[string]any{"trustDomain": "example.org", "workloadCertTTL": "1h"},
		"metrics":      map[string]any{"enabled": false},
		"resources":    map[string]any{"limits": map[string]any{"memory": "128Mi"}},
		"tolerations":  []any{map[string]any{"key": "dedicated", "operator": "Exists"}},
		"nodeSelector": map[string]any{"pool": "system"},
		"operator":     map[string]any{"nodeSelector": map[string]any{"pool": "operator"}, "watchNamespace": "apps"},
		"injector":     map[string]any{"sidecarImage": "registry.local/t/tandemd:dev"},
	})
	for _, name := range []string{"dapr-sentry", "dapr-operator", "dapr-sidecar-injector"} {
		d := objs["Deployment/"+name]
		if got := d.get("spec", "replicas"); got != float64(3) {
			t.Errorf("%s replicas %v, want 3 (HA)", name, got)
		}
		if _, ok := objs["PodDisruptionBudget/"+name]; !ok {
			t.Errorf("no PodDisruptionBudget for %s", name)
		}
		c := container(t, objs, name)
		if a := args(c); !strings.Contains(a, "--log-level debug") || !strings.Contains(a, "--log-as-json") ||
			(name != "dapr-sidecar-injector" && !strings.Contains(a, "--enable-metrics=false")) {
			t.Errorf("%s args %q", name, a)
		}
		if got := c.get("resources", "limits", "memory"); got != "128Mi" {
			t.Errorf("%s memory limit %v", name, got)
		}
		if got := d.get("spec", "template", "spec", "tolerations"); got == nil {
			t.Errorf("%s has no tolerations", name)
		}
	}
	if got := container(t, objs, "dapr-sentry")["image"]; got != "registry.local/t/sentry:1.2.3" {
		t.Errorf("sentry image %v", got)
	}
	if got := objs["Deployment/dapr-operator"].get("spec", "template", "spec", "nodeSelector", "pool"); got != "operator" {
		t.Errorf("operator nodeSelector %v, want its own", got)
	}
	if got := objs["Deployment/dapr-sentry"].get("spec", "template", "spec", "nodeSelector", "pool"); got != "system" {
		t.Errorf("sentry nodeSelector %v, want the default", got)
	}
	if a := args(container(t, objs, "dapr-sentry")); !strings.Contains(a, "--trust-domain example.org") || !strings.Contains(a, "--workload-cert-ttl 1h") {
		t.Errorf("sentry args %q", a)
	}
	if a := args(container(t, objs, "dapr-operator")); !strings.Contains(a, "--watch-namespace apps") {
		t.Errorf("operator args %q", a)
	}
	env := container(t, objs, "dapr-sidecar-injector")["env"].([]any)
	if !slices.ContainsFunc(env, func(e any) bool {
		m := e.(map[string]any)
		return m["name"] == "SIDECAR_IMAGE" && m["value"] == "registry.local/t/tandemd:dev"
	}) {
		t.Errorf("injector env %v lacks SIDECAR_IMAGE", env)
	}
	if got := objs["Configuration/daprsystem"].get("spec", "mtls", "controlPlaneTrustDomain"); got != "example.org" {
		t.Errorf("daprsystem trust domain %v", got)
	}
}

func TestRenderRejectsPartialTLS(t *testing.T) {
	ch, err := LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Render(ch, RenderOptions{Values: map[string]any{"tls": map[string]any{"root": map[string]any{"certPEM": "x"}}}})
	if err == nil || !strings.Contains(err.Error(), "give all of") {
		t.Errorf("Render: %v, want the tls error", err)
	}
}

// TestRenderScaler: the opt-in KEDA scaler in each TLS mode, and watching one namespace with a Role there.
func TestRenderScaler(t *testing.T) {
	if _, ok := render(t, nil)["Deployment/dapr-scaler"]; ok {
		t.Fatal("the scaler is rendered without scaler.enabled")
	}
	objs := render(t, map[string]any{"scaler": map[string]any{"enabled": true}})
	c := container(t, objs, "dapr-scaler")
	for _, want := range []string{"--mode kubernetes", "--port 6000", "--healthz-port 8080", "--sidecar-port 3501", "--tls-enabled",
		"--trust-domain cluster.local", "--trust-anchors-file /var/run/secrets/dapr.io/tls/ca.crt", "--sentry-address dapr-sentry.cp.svc.cluster.local:443"} {
		if !strings.Contains(args(c), want) {
			t.Errorf("scaler args %q lack %q", args(c), want)
		}
	}
	if got := objs["Deployment/dapr-scaler"].get("spec", "template", "metadata", "annotations", "dapr.io/control-plane"); got != "scaler" {
		t.Errorf("scaler pod annotation dapr.io/control-plane = %v, want scaler (sentry gives it its identity)", got)
	}
	if got := objs["Service/dapr-scaler"].get("spec", "ports"); got == nil {
		t.Error("no Service dapr-scaler")
	}
	rules := objs["ClusterRole/dapr-scaler"].get("rules").([]any)
	if len(rules) != 1 || !strings.Contains(fmt.Sprint(rules[0]), "endpointslices") || strings.Contains(fmt.Sprint(rules[0]), "get") {
		t.Errorf("scaler ClusterRole rules %v, want list and watch of endpointslices only", rules)
	}

	objs = render(t, map[string]any{"scaler": map[string]any{"enabled": true, "sidecarPort": 0, "watchNamespace": "apps",
		"componentsSecretName": "brokers", "tls": map[string]any{"mode": "secret", "secretName": "scaler-cert", "clientCASecretName": "keda-ca"}}})
	a := args(container(t, objs, "dapr-scaler"))
	for _, want := range []string{"--sidecar-port 0", "--watch-namespace apps", "--tls-cert-file /var/run/secrets/tandem/scaler-tls/tls.crt",
		"--tls-key-file /var/run/secrets/tandem/scaler-tls/tls.key", "--tls-client-ca-file /var/run/secrets/tandem/scaler-client-ca/ca.crt",
		"--resources-path /var/run/tandem/components"} {
		if !strings.Contains(a, want) {
			t.Errorf("scaler args %q lack %q", a, want)
		}
	}
	if strings.Contains(a, "--tls-enabled") {
		t.Errorf("scaler args %q: sentry's certificate with tls.mode secret", a)
	}
	if _, ok := objs["Role/dapr-scaler"]; !ok {
		t.Error("no Role with scaler.watchNamespace")
	}
	if _, ok := objs["ClusterRole/dapr-scaler"]; ok {
		t.Error("a ClusterRole with scaler.watchNamespace")
	}

	ch, err := LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string]any{
		{"mode": "mtls"}, {"mode": "secret"}, {"mode": "none", "clientCASecretName": "x"},
	} {
		if _, err := Render(ch, RenderOptions{Values: map[string]any{"scaler": map[string]any{"enabled": true, "tls": bad}}}); err == nil {
			t.Errorf("scaler.tls %v rendered", bad)
		}
	}
}
