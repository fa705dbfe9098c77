// Package kubeplane runs Tandem's Kubernetes control plane for tests on a
// real API server (envtest): sentry --mode kubernetes and the operator as
// processes, with the credentials sentry generated, and pods with
// projected tokens bound to them, as the kubelet would give them.
package kubeplane

import (
	"context"
	"crypto"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/kubetest"
	"github.com/tandemrun/tandem/sentry/ca"
	"github.com/tandemrun/tandem/sentry/kube"
	"github.com/tandemrun/tandem/sentry/validator"
	"github.com/tandemrun/tandem/test/e2e/framework"
)

// The control plane's namespace and trust domain.
const (
	ControlNamespace = "tandem-system"
	TrustDomain      = "cluster.local"
)

// Plane is sentry (--mode kubernetes) on a real API server, started as a
// process, with the credentials it generated.
type Plane struct {
	t *testing.T
	// Config reaches the API server as an administrator; Kubeconfig is
	// the same as a file.
	Config     *rest.Config
	Clientset  kubernetes.Interface
	Kubeconfig string
	Bins       *framework.Binaries
	Sentry     *framework.Process
	SentryAddr string
	// CA is sentry's, from the dapr-trust-bundle Secret.
	CA *ca.CA
	// Anchors is a file holding the trust anchors.
	Anchors string
}

// Start starts the API server, with Tandem's CRDs, and sentry, and
// creates the namespaces. sentryEnv is added to sentry's environment.
func Start(t *testing.T, bins *framework.Binaries, namespaces []string, sentryEnv ...string) *Plane {
	t.Helper()
	ctrllog.SetLogger(logr.Discard())
	env := kubetest.Start(filepath.Join(framework.RepoRoot(), "deploy", "helm", "tandem", "crds"))
	t.Cleanup(env.Stop)
	cfg := env.Require(t)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &Plane{t: t, Config: cfg, Clientset: cs, Kubeconfig: kubetest.Kubeconfig(t, cfg), Bins: bins}
	for _, ns := range append([]string{ControlNamespace}, namespaces...) {
		if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	port := framework.FreePort(t)
	p.SentryAddr = fmt.Sprintf("127.0.0.1:%d", port)
	p.Sentry = framework.Start(t, "sentry", bins.Sentry, []string{
		"--mode", "kubernetes", "--kubeconfig", p.Kubeconfig, "--trust-domain", TrustDomain,
		"--listen-address", "127.0.0.1", "--port", strconv.Itoa(port),
		"--healthz-listen-address", "127.0.0.1", "--healthz-port", strconv.Itoa(framework.FreePort(t)),
		"--enable-metrics=false", "--log-level", "warn",
	}, append([]string{"NAMESPACE=" + ControlNamespace}, sentryEnv...)...)
	if err := framework.WaitTCP(p.SentryAddr, 60*time.Second); err != nil {
		t.Fatalf("sentry: %v\n%s", err, p.Sentry.Output())
	}
	// The credentials sentry generated on first start, to sign the
	// benchmark's own sidecar certificates and to verify sentry.
	kc, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store := &kube.SecretStore{Client: kc, Namespace: ControlNamespace}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, ok, err := store.Load(context.Background())
		if err == nil && ok {
			if p.CA, err = ca.New(b, ca.Options{}); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no trust bundle Secret from sentry (%v)\n%s", err, p.Sentry.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.Anchors = filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(p.Anchors, p.CA.TrustAnchorsPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Pod creates a pod (and its service account) and returns a projected
// token bound to it for sentry, as the injector mounts one.
func (p *Plane) Pod(ns, name string, annotations map[string]string) string {
	t := p.t
	t.Helper()
	ctx := context.Background()
	sa := name + "-sa"
	if _, err := p.Clientset.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := p.Clientset.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ttl := int64(3600)
	tr, err := p.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		Audiences: []string{validator.ServiceAccountAudience}, ExpirationSeconds: &ttl,
		BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// StartOperator builds and starts the operator as a process with its own
// identity from sentry, and returns it with its API address. env is added
// to its environment.
func (p *Plane) StartOperator(env ...string) (*framework.Process, string) {
	t := p.t
	t.Helper()
	bin := filepath.Join(p.Bins.Dir, "operator")
	args := append([]string{"build"}, framework.ReleaseFlags...)
	cmd := exec.Command("go", append(args, "-o", bin, "./cmd/operator")...)
	cmd.Dir = framework.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the operator: %v\n%s", err, out)
	}
	token := p.Pod(ControlNamespace, "dapr-operator-0", map[string]string{validator.AnnotationControlPlane: "operator"})
	tokenFile := p.TokenFile(token)
	port := framework.FreePort(t)
	op := framework.Start(t, "operator", bin, []string{
		"--kubeconfig", p.Kubeconfig, "--sentry-address", p.SentryAddr, "--sentry-token-file", tokenFile,
		"--trust-anchors-file", p.Anchors, "--listen-address", "127.0.0.1", "--port", strconv.Itoa(port),
		"--healthz-listen-address", "127.0.0.1", "--healthz-port", strconv.Itoa(framework.FreePort(t)),
		"--enable-metrics=false", "--disable-leader-election", "--disable-service-reconciler", "--log-level", "warn",
	}, append([]string{"NAMESPACE=" + ControlNamespace}, env...)...)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := framework.WaitTCP(addr, 60*time.Second); err != nil {
		t.Fatalf("operator: %v\n%s", err, op.Output())
	}
	return op, addr
}

// Source returns an identity with an SVID for id signed by sentry's issuer.
func (p *Plane) Source(id spiffeid.ID) *identity.Source {
	p.t.Helper()
	cert, err := p.CA.IssueTLS(id, time.Hour)
	if err != nil {
		p.t.Fatal(err)
	}
	svid := &x509svid.SVID{ID: id, PrivateKey: cert.PrivateKey.(crypto.Signer)}
	svid.Certificates = append(append(svid.Certificates, cert.Leaf), p.CA.Bundle().IssuerChain...)
	src := identity.NewSource()
	src.SetTrustAnchors(p.CA.TrustAnchors())
	src.SetSVID(svid)
	return src
}

// TokenFile writes a token to a file of the test and returns its path.
func (p *Plane) TokenFile(token string) string {
	p.t.Helper()
	f, err := os.CreateTemp(p.t.TempDir(), "token")
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(token); err != nil {
		p.t.Fatal(err)
	}
	return f.Name()
}

// OperatorID is the operator's SPIFFE ID.
func OperatorID() spiffeid.ID {
	return spiffeid.RequireFromString("spiffe://" + TrustDomain + "/ns/" + ControlNamespace + "/dapr-operator")
}
