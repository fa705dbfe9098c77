// Package kube puts Tandem's control plane on a Kubernetes cluster: it loads the Helm chart that package deploy
// embeds, renders it (the plain manifests, helm template), and installs, upgrades, inspects and removes it through
// Helm's Go SDK for `tandem k8s`.
package kube

import (
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	kubefake "helm.sh/helm/v4/pkg/kube/fake"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage"
	"helm.sh/helm/v4/pkg/storage/driver"

	"github.com/tandemrun/tandem/deploy"
)

// Defaults of `tandem k8s` and of the plain manifests: Dapr's namespace and a release name of our own.
const (
	DefaultNamespace   = "dapr-system"
	DefaultReleaseName = "tandem"
)

// LoadChart reads the chart embedded in the binary.
func LoadChart() (*chart.Chart, error) {
	return loadChartFS(deploy.Chart())
}

func loadChartFS(fsys fs.FS) (*chart.Chart, error) {
	var files []*archive.BufferedFile
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") {
			return err
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		files = append(files, &archive.BufferedFile{Name: path, Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the chart: %w", err)
	}
	ch, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("load the chart: %w", err)
	}
	return ch, nil
}

// RenderOptions says what to render the chart for.
type RenderOptions struct {
	ReleaseName string         // DefaultReleaseName when empty
	Namespace   string         // DefaultNamespace when empty
	Values      map[string]any // over the chart's values.yaml
	KubeVersion string         // the cluster version templates see; DefaultKubeVersion when empty
}

// DefaultKubeVersion is the Kubernetes version rendering assumes without a cluster (Helm's own default is too old for
// the chart's kubeVersion): the version the tests run the API server at.
const DefaultKubeVersion = "v1.37.2"

// Render renders the chart as `helm template --include-crds` does, without a cluster: CRDs first, then the
// templates in Helm's install order, as one YAML stream.
func Render(ch *chart.Chart, opts RenderOptions) (string, error) {
	cfg := action.NewConfiguration()
	cfg.KubeClient = &kubefake.PrintingKubeClient{Out: io.Discard}
	cfg.Releases = storage.Init(driver.NewMemory())
	install := action.NewInstall(cfg)
	install.DryRunStrategy = action.DryRunClient
	install.Replace = true
	install.IncludeCRDs = true
	install.DisableHooks = true
	install.ReleaseName = cmpOr(opts.ReleaseName, DefaultReleaseName)
	install.Namespace = cmpOr(opts.Namespace, DefaultNamespace)
	kv := cmpOr(opts.KubeVersion, DefaultKubeVersion)
	v, err := common.ParseKubeVersion(kv)
	if err != nil {
		return "", fmt.Errorf("kube version %q: %w", kv, err)
	}
	install.KubeVersion = v
	out, err := install.Run(ch, opts.Values)
	if err != nil {
		return "", fmt.Errorf("render the chart: %w", err)
	}
	rel, ok := out.(*release.Release)
	if !ok {
		return "", fmt.Errorf("render the chart: unexpected release type %T", out)
	}
	return strings.TrimSpace(rel.Manifest) + "\n", nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// PlainManifests is the install for kubectl: the release's Namespace, then Render's output.
func PlainManifests(ch *chart.Chart, opts RenderOptions) (string, error) {
	body, err := Render(ch, opts)
	if err != nil {
		return "", err
	}
	ns := cmpOr(opts.Namespace, DefaultNamespace)
	head := "# Tandem's control plane (chart " + ch.Metadata.Version + "), rendered from deploy/helm/tandem by\n" +
		"# `tandem k8s manifests`; apply with kubectl apply --server-side -f <this file>.\n" +
		"# It holds no secret: sentry makes the root and issuer on its first start, and the injector's webhook\n" +
		"# certificate comes from sentry (the injector sets the webhook's caBundle itself).\n" +
		"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + ns + "\n  labels:\n    app.kubernetes.io/part-of: tandem\n---\n"
	return head + strings.TrimPrefix(body, "---\n"), nil
}

// appRBACSource is the template of the opt-in app RBAC (values appRBAC).
const appRBACSource = "# Source: tandem/templates/rbac-apps.yaml"

// AppRBACManifests is the opt-in app RBAC alone (appRBAC.enabled set over values): for each namespace of
// appRBAC.namespaces, the Role that lets the apps' sidecars watch EndpointSlices and read Secrets, and its binding.
func AppRBACManifests(ch *chart.Chart, opts RenderOptions) (string, error) {
	return optIn(ch, opts, "appRBAC", "# Opt-in RBAC for the apps' ServiceAccounts (chart value appRBAC.enabled), rendered from deploy/helm/tandem:\n"+
		"# the sidecars may watch EndpointSlices (name resolution \"kubernetes\") and read Secrets (secret store\n"+
		"# \"kubernetes\") in their own namespace. Copy it per namespace, changing the namespace.\n", appRBACSource)
}

// scalerSources are the templates of the opt-in KEDA scaler (values scaler).
var scalerSources = []string{"# Source: tandem/templates/scaler.yaml", "# Source: tandem/templates/rbac-scaler.yaml"}

// ScalerManifests is the opt-in KEDA external scaler alone (scaler.enabled set over values): its Deployment,
// Service, ServiceAccount and the RBAC to watch EndpointSlices, to apply next to the control plane.
func ScalerManifests(ch *chart.Chart, opts RenderOptions) (string, error) {
	ns := cmpOr(opts.Namespace, DefaultNamespace)
	return optIn(ch, opts, "scaler", "# Tandem's KEDA external scaler (chart value scaler.enabled), rendered from deploy/helm/tandem: apply it\n"+
		"# after tandem.yaml; KEDA's external trigger reaches it at scalerAddress dapr-scaler."+ns+".svc:6000, over TLS\n"+
		"# with a certificate from sentry (caCert: the dapr-trust-bundle ConfigMap's ca.crt). See docs/keda.md.\n", scalerSources...)
}

// optIn renders the chart with <key>.enabled set over opts.Values and keeps the documents of the templates named.
func optIn(ch *chart.Chart, opts RenderOptions, key, head string, sources ...string) (string, error) {
	vals := map[string]any{}
	maps.Copy(vals, opts.Values)
	sub := map[string]any{}
	if m, ok := vals[key].(map[string]any); ok {
		maps.Copy(sub, m)
	}
	sub["enabled"] = true
	vals[key] = sub
	opts.Values = vals
	body, err := Render(ch, opts)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(head)
	for _, doc := range strings.Split("\n"+body, "\n---\n") {
		if slices.ContainsFunc(sources, func(src string) bool { return strings.Contains(doc, src) }) {
			b.WriteString("---\n" + strings.TrimSpace(doc) + "\n")
		}
	}
	return b.String(), nil
}
