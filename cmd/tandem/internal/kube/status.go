package kube

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"helm.sh/helm/v4/pkg/action"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Report is what `tandem k8s status` shows.
type Report struct {
	Release      string
	Namespace    string
	Revision     int
	State        string // Helm's status of the release: deployed, failed...
	ChartVersion string
	AppVersion   string
	Deployed     time.Time
	Services     []ServiceStatus
	Certificates []CertStatus
	CertError    string // why the certificates could not be read, if so
	Webhook      string // the injector's webhook configuration: missing, or whether it has its CA yet
}

// ServiceStatus is one control-plane Deployment.
type ServiceStatus struct {
	Name    string
	Ready   string // "1/1 ready"
	Healthy bool
	Images  []string
}

// CertStatus is one certificate of the trust bundle.
type CertStatus struct {
	Name     string // "root (ca.crt)", "issuer (issuer.crt)"
	Subject  string
	NotAfter time.Time
}

// Healthy says whether the release is deployed and every Deployment ready.
func (r Report) Healthy() bool {
	if r.State != "deployed" || len(r.Services) == 0 {
		return false
	}
	for _, s := range r.Services {
		if !s.Healthy {
			return false
		}
	}
	return true
}

// Status reads the release, its Deployments, the trust bundle's certificates and the webhook configuration.
func Status(ctx context.Context, o Options) (Report, error) {
	c, err := connect(o)
	if err != nil {
		return Report{}, err
	}
	out, err := action.NewStatus(c.helm).Run(o.releaseName())
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return Report{}, fmt.Errorf("release %q is not installed in namespace %s", o.releaseName(), o.namespace())
	}
	if err != nil {
		return Report{}, fmt.Errorf("status: %w", err)
	}
	rel, ok := out.(*release.Release)
	if !ok {
		return Report{}, fmt.Errorf("status: unexpected release type %T", out)
	}
	r := Report{Release: rel.Name, Namespace: rel.Namespace, Revision: rel.Version, State: rel.Info.Status.String(),
		Deployed: rel.Info.LastDeployed}
	if rel.Chart != nil && rel.Chart.Metadata != nil {
		r.ChartVersion, r.AppVersion = rel.Chart.Metadata.Version, rel.Chart.Metadata.AppVersion
	}
	deps, err := c.deployments(ctx, o)
	if err != nil {
		return Report{}, err
	}
	for _, d := range deps {
		r.Services = append(r.Services, ServiceStatus{Name: d.Name, Ready: readiness(d), Healthy: ready(d), Images: imagesOf(d)})
	}
	r.Certificates, err = trustBundle(ctx, c, o.namespace())
	if err != nil {
		r.CertError = err.Error()
	}
	r.Webhook = webhookState(ctx, c)
	return r, nil
}

// trustBundle reads the root and issuer certificates from the dapr-trust-bundle Secret, or only the root from the
// ConfigMap when the Secret may not be read.
func trustBundle(ctx context.Context, c *cluster, ns string) ([]CertStatus, error) {
	files := map[string][]byte{}
	secret, err := c.client.CoreV1().Secrets(ns).Get(ctx, "dapr-trust-bundle", metav1.GetOptions{})
	if err == nil {
		files = secret.Data
	} else {
		cm, cmErr := c.client.CoreV1().ConfigMaps(ns).Get(ctx, "dapr-trust-bundle", metav1.GetOptions{})
		if cmErr != nil {
			return nil, fmt.Errorf("read the trust bundle: %w", err)
		}
		files["ca.crt"] = []byte(cm.Data["ca.crt"])
	}
	var certs []CertStatus
	for _, f := range []struct{ key, name string }{{"ca.crt", "root"}, {"issuer.crt", "issuer"}} {
		rest := files[f.key]
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return certs, fmt.Errorf("%s in dapr-trust-bundle: %w", f.key, err)
			}
			certs = append(certs, CertStatus{Name: f.name + " (" + f.key + ")", Subject: cert.Subject.String(), NotAfter: cert.NotAfter})
		}
	}
	if len(certs) == 0 {
		return nil, errors.New("the trust bundle is empty: sentry has not written it yet")
	}
	return certs, nil
}

func webhookState(ctx context.Context, c *cluster) string {
	wh, err := c.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "dapr-sidecar-injector", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "missing"
	case err != nil:
		return "unknown: " + err.Error()
	}
	for _, w := range wh.Webhooks {
		if len(w.ClientConfig.CABundle) == 0 {
			return "registered without a caBundle: the injector sets it when it has its certificate from sentry; until then the API server cannot call it"
		}
	}
	return "registered"
}

// Write prints the report as a person reads it.
func (r Report) Write(w io.Writer, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	health := "healthy"
	if !r.Healthy() {
		health = "NOT healthy"
	}
	fmt.Fprintf(tw, "Release\t%s in %s, revision %d, %s (%s)\n", r.Release, r.Namespace, r.Revision, r.State, health)
	fmt.Fprintf(tw, "Chart\ttandem %s, app version %s, deployed %s\n", r.ChartVersion, r.AppVersion, r.Deployed.Format(time.RFC3339))
	fmt.Fprintf(tw, "Webhook\t%s\n", r.Webhook)
	fmt.Fprintln(tw, "\nSERVICE\tREADY\tHEALTHY\tIMAGE")
	for _, s := range r.Services {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", s.Name, s.Ready, s.Healthy, strings.Join(s.Images, ","))
	}
	fmt.Fprintln(tw, "\nCERTIFICATE\tEXPIRES\tIN\tSUBJECT")
	for _, c := range r.Certificates {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.NotAfter.UTC().Format(time.RFC3339), c.NotAfter.Sub(now).Round(time.Hour), c.Subject)
	}
	if r.CertError != "" {
		fmt.Fprintf(tw, "(%s)\n", r.CertError)
	}
	return tw.Flush()
}
