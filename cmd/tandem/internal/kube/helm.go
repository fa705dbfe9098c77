package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"helm.sh/helm/v4/pkg/action"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	helmkube "helm.sh/helm/v4/pkg/kube"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
)

// Options says which cluster, namespace and release `tandem k8s` works on, and how.
type Options struct {
	Kubeconfig  string         // the default loading rules ($KUBECONFIG, ~/.kube/config) when empty
	Context     string         // the kubeconfig's current context when empty
	Namespace   string         // DefaultNamespace when empty
	ReleaseName string         // DefaultReleaseName when empty
	Values      map[string]any // over the chart's values.yaml (install and upgrade)
	Wait        bool           // wait until every control-plane Deployment is ready
	Timeout     time.Duration  // of the whole operation, waiting included
	Progress    io.Writer      // where steps are reported; nowhere when nil
}

func (o Options) namespace() string   { return cmpOr(o.Namespace, DefaultNamespace) }
func (o Options) releaseName() string { return cmpOr(o.ReleaseName, DefaultReleaseName) }

func (o Options) timeout() time.Duration {
	if o.Timeout <= 0 {
		return 5 * time.Minute
	}
	return o.Timeout
}

func (o Options) say(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// cluster is one connection to the API server: Helm's action configuration and a clientset over the same
// kubeconfig.
type cluster struct {
	helm   *action.Configuration
	client kubernetes.Interface
}

func connect(o Options) (*cluster, error) {
	flags := genericclioptions.NewConfigFlags(true)
	ns := o.namespace()
	flags.Namespace = &ns
	if o.Kubeconfig != "" {
		flags.KubeConfig = &o.Kubeconfig
	}
	if o.Context != "" {
		flags.Context = &o.Context
	}
	// Helm's own logs are for debugging it; the steps a person follows are written to Progress.
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := cfg.Init(flags, ns, "secret"); err != nil {
		return nil, fmt.Errorf("connect to the cluster: %w", err)
	}
	rest, err := flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("connect to the cluster: %w", err)
	}
	client, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return nil, fmt.Errorf("connect to the cluster: %w", err)
	}
	return &cluster{helm: cfg, client: client}, nil
}

// Install installs the control plane: Dapr's CRDs, then sentry, the operator and the injector with their RBAC,
// Services and webhook configuration; with Wait it then waits for their Deployments to be ready.
func Install(ctx context.Context, o Options) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout())
	defer cancel()
	c, ch, err := prepare(o)
	if err != nil {
		return err
	}
	if _, err := action.NewStatus(c.helm).Run(o.releaseName()); err == nil {
		return fmt.Errorf("release %q is already installed in namespace %s: use tandem k8s upgrade", o.releaseName(), o.namespace())
	}
	o.say("installing release %s (chart %s %s) into namespace %s", o.releaseName(), ch.Name(), ch.Metadata.Version, o.namespace())
	install := action.NewInstall(c.helm)
	install.ReleaseName = o.releaseName()
	install.Namespace = o.namespace()
	install.CreateNamespace = true
	install.ServerSideApply = true
	install.WaitStrategy = helmkube.HookOnlyStrategy
	install.Timeout = o.timeout()
	out, err := install.RunWithContext(ctx, ch, o.Values)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	return finish(ctx, o, c, out)
}

// Upgrade applies the embedded chart (a newer Tandem's, or new values) to an installed release. Helm leaves CRDs
// alone on upgrade, so the chart's CRDs are applied first.
func Upgrade(ctx context.Context, o Options) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout())
	defer cancel()
	c, ch, err := prepare(o)
	if err != nil {
		return err
	}
	if _, err := action.NewStatus(c.helm).Run(o.releaseName()); err != nil {
		if errors.Is(err, driver.ErrReleaseNotFound) {
			return fmt.Errorf("release %q is not installed in namespace %s: use tandem k8s install", o.releaseName(), o.namespace())
		}
		return fmt.Errorf("upgrade: %w", err)
	}
	o.say("applying the CRDs of chart %s %s", ch.Name(), ch.Metadata.Version)
	if err := applyCRDs(ctx, c, ch); err != nil {
		return err
	}
	o.say("upgrading release %s in namespace %s", o.releaseName(), o.namespace())
	up := action.NewUpgrade(c.helm)
	up.Namespace = o.namespace()
	up.ServerSideApply = "true"
	up.WaitStrategy = helmkube.HookOnlyStrategy
	up.Timeout = o.timeout()
	out, err := up.RunWithContext(ctx, o.releaseName(), ch, o.Values)
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	return finish(ctx, o, c, out)
}

// Uninstall removes the release. Like Helm, it leaves the CRDs and so the resources people created with them.
func Uninstall(ctx context.Context, o Options) error {
	c, err := connect(o)
	if err != nil {
		return err
	}
	o.say("uninstalling release %s from namespace %s (Dapr's CRDs and their resources stay)", o.releaseName(), o.namespace())
	un := action.NewUninstall(c.helm)
	un.WaitStrategy = helmkube.HookOnlyStrategy
	un.Timeout = o.timeout()
	if _, err := un.Run(o.releaseName()); err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	o.say("done")
	return ctx.Err()
}

func prepare(o Options) (*cluster, *chart.Chart, error) {
	ch, err := LoadChart()
	if err != nil {
		return nil, nil, err
	}
	c, err := connect(o)
	if err != nil {
		return nil, nil, err
	}
	return c, ch, nil
}

// finish reports what Helm applied and, with Wait, waits for the Deployments.
func finish(ctx context.Context, o Options, c *cluster, out any) error {
	rel, ok := out.(*release.Release)
	if !ok {
		return fmt.Errorf("unexpected release type %T", out)
	}
	o.say("release %s revision %d: %s", rel.Name, rel.Version, rel.Info.Status)
	if !o.Wait {
		return nil
	}
	return waitReady(ctx, o, c)
}
