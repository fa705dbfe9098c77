package kube

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
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

// TestManifestsInSync keeps deploy/manifests/tandem.yaml equal to the chart rendered with its defaults.
// TANDEM_UPDATE_MANIFESTS=1 rewrites the file.
func TestManifestsInSync(t *testing.T) {
	ch, err := LoadChart()
	if err != nil {
		t.Fatal(err)
	}
	want, err := PlainManifests(ch, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("TANDEM_UPDATE_MANIFESTS") == "1" {
		if err := os.MkdirAll(filepath.Dir(manifestsFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(manifestsFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(manifestsFile)
	if err != nil {
		t.Fatal(err)
	}
	if maskGenerated(string(got)) != maskGenerated(want) {
		t.Errorf("deploy/manifests/tandem.yaml is not the chart rendered with its defaults; regenerate it with\n" +
			"  TANDEM_UPDATE_MANIFESTS=1 go test ./cmd/tandem/internal/kube -run TestManifestsInSync")
	}
}

// generated matches the webhook's serving certificate, key and CA, which the chart makes anew on each render.
var generated = regexp.MustCompile(`(?m)^(\s*(?:tls\.crt|tls\.key|ca\.crt|caBundle): )[A-Za-z0-9+/=]{100,}$`)

func maskGenerated(s string) string { return generated.ReplaceAllString(s, "${1}<generated>") }

// TestWebhookCertificate: the generated serving certificate names the injector's Service and chains to the
// caBundle the API server is given.
func TestWebhookCertificate(t *testing.T) {
	objs := render(t, nil)
	sec := objs["Secret/dapr-sidecar-injector-tls"]
	der := func(v any) []byte {
		b, err := base64.StdEncoding.DecodeString(v.(string))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	certPEM, caPEM := der(sec.get("data", "tls.crt")), der(sec.get("data", "ca.crt"))
	hook := object(objs["MutatingWebhookConfiguration/dapr-sidecar-injector"].get("webhooks").([]any)[0].(map[string]any))
	if got := string(der(hook.get("clientConfig", "caBundle"))); got != string(caPEM) {
		t.Fatal("the webhook's caBundle is not the Secret's ca.crt")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt holds no certificate")
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("tls.crt holds no PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "dapr-sidecar-injector.cp.svc"}); err != nil {
		t.Errorf("serving certificate: %v", err)
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
		"CustomResourceDefinition/httpendpoints.dapr.io",
		"Deployment/dapr-sentry", "Deployment/dapr-operator", "Deployment/dapr-sidecar-injector",
		"Service/dapr-sentry", "Service/dapr-api", "Service/dapr-sidecar-injector",
		"ServiceAccount/dapr-sentry", "ServiceAccount/dapr-operator", "ServiceAccount/dapr-injector",
		"ClusterRole/dapr-sentry", "ClusterRole/dapr-operator", "Secret/dapr-sidecar-injector-tls",
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
