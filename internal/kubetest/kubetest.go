// Package kubetest starts a real Kubernetes API server (and etcd) for a
// test package, with controller-runtime's envtest and the binaries that
// scripts/build-kube.sh builds. A package starts one in its TestMain and
// shares it between its tests:
//
//	var kube *kubetest.Env
//
//	func TestMain(m *testing.M) {
//		kube = kubetest.Start("../../deploy/helm/tandem/crds")
//		code := m.Run()
//		kube.Stop()
//		os.Exit(code)
//	}
//
// and each test calls kube.Require(t) for the rest.Config. Without the
// binaries the tests skip and say how to get them; with CI=true they fail.
package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Versions of the binaries scripts/build-kube.sh caches.
const cacheFolder = "v1.37.2-etcd-v3.7.3"

// Env is a running API server, or the reason there is none.
type Env struct {
	// Config reaches the API server as an administrator.
	Config  *rest.Config
	env     *envtest.Environment
	missing string // why there is no API server
	failed  error  // it was there but did not start
}

// Assets returns the folder holding kube-apiserver, etcd and kubectl:
// $KUBEBUILDER_ASSETS, else $TANDEM_KUBE_BIN, else build-kube.sh's cache.
func Assets() (string, error) {
	dirs := []string{os.Getenv("KUBEBUILDER_ASSETS"), os.Getenv("TANDEM_KUBE_BIN")}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "tandem", "kube", cacheFolder))
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "kube-apiserver")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("kube-apiserver, etcd and kubectl not found: run `export KUBEBUILDER_ASSETS=$(bash scripts/build-kube.sh)` (a cold build takes 8-18 minutes)")
}

// Start starts an API server with the CRDs of crdDirs installed. It never
// fails: a missing binary or a failed start is reported by Require.
func Start(crdDirs ...string) *Env {
	return StartWith(Options{CRDDirs: crdDirs})
}

// Options of StartWith.
type Options struct {
	CRDDirs []string
	// APIServerFlags are set on kube-apiserver (name without the dashes),
	// for example "enable-aggregator-routing": "true" so that the API
	// server calls a webhook's Service at its EndpointSlices' addresses.
	APIServerFlags map[string]string
}

// StartWith is Start with flags for the API server.
func StartWith(o Options) *Env {
	dir, err := Assets()
	if err != nil {
		return &Env{missing: err.Error()}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     o.CRDDirs,
		ErrorIfCRDPathMissing: true,
	}
	for k, v := range o.APIServerFlags {
		env.ControlPlane.GetAPIServer().Configure().Set(k, v)
	}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		return &Env{failed: fmt.Errorf("start the API server from %s: %w", dir, err)}
	}
	return &Env{Config: cfg, env: env}
}

// Require returns a copy of the administrator's rest.Config, or skips the
// test when there is no API server (fails it under CI=true).
func (e *Env) Require(t testing.TB) *rest.Config {
	t.Helper()
	switch {
	case e.failed != nil:
		t.Fatal(e.failed)
	case e.missing != "" && os.Getenv("CI") == "true":
		t.Fatalf("CI=true and no API server: %s", e.missing)
	case e.missing != "":
		t.Skip("no API server: " + e.missing)
	}
	return rest.CopyConfig(e.Config)
}

// Stop stops the API server and etcd.
func (e *Env) Stop() {
	if e.env != nil {
		_ = e.env.Stop()
	}
}

// Run runs the package's tests (a TestMain's m), stops the API server, and
// fails the run when a goroutine the tests started is still running. It
// returns the exit code for os.Exit.
func (e *Env) Run(m *testing.M) int {
	code := m.Run()
	e.Stop()
	if code == 0 {
		if err := goleak.Find(IgnoreClientGo()...); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	return code
}

// IgnoreClientGo lists the goroutines client-go and controller-runtime
// leave running for the life of the process (log flushing, the shared
// watch-cache metrics), for goleak.
func IgnoreClientGo() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
		goleak.IgnoreAnyFunction("k8s.io/client-go/util/workqueue.(*Typed[...]).updateUnfinishedWorkLoop"),
		goleak.IgnoreAnyFunction("k8s.io/apimachinery/pkg/util/wait.BackoffUntil"),
		goleak.IgnoreAnyFunction("k8s.io/client-go/tools/cache.(*processorListener).run"),
		goleak.IgnoreAnyFunction("k8s.io/client-go/tools/cache.(*processorListener).pop"),
		goleak.IgnoreAnyFunction("k8s.io/client-go/transport.(*dynamicClientCert).run"),
		goleak.IgnoreAnyFunction("k8s.io/apimachinery/pkg/watch.(*filteredWatch).loop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("k8s.io/client-go/util/flowcontrol.(*tokenBucketPassiveRateLimiter).Wait"),
	}
}

// ServiceAccount returns a rest.Config that calls the API server as the
// ServiceAccount ns/name (created, with its namespace, if missing), with a
// token from the TokenRequest API, as a pod running under it would. It
// has only the permissions RBAC grants it; see Grant.
func (e *Env) ServiceAccount(t testing.TB, ns, name string) *rest.Config {
	t.Helper()
	admin := e.Require(t)
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create service account %s/%s: %v", ns, name, err)
	}
	ttl := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &ttl},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for service account %s/%s: %v", ns, name, err)
	}
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = tr.Status.Token
	return cfg
}

// Grant gives the ServiceAccount ns/name the verbs on resources (of API
// group group, "" for the core group) in its namespace, with a Role and a
// RoleBinding named after it.
func (e *Env) Grant(t testing.TB, ns, name, group string, resources, verbs []string) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(e.Require(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-" + strings.Join(resources, "-")},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{group}, Resources: resources, Verbs: verbs}},
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role %s/%s: %v", ns, role.Name, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role binding %s/%s: %v", ns, binding.Name, err)
	}
}

// Kubeconfig writes cfg (a bearer token or client certificate config, as
// Require and ServiceAccount return) as a kubeconfig file in a test
// folder and returns its path, for code that finds the API server through
// a kubeconfig, as a sidecar started outside the cluster does.
func Kubeconfig(t testing.TB, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken, ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "user"}
	kc.CurrentContext = "envtest"
	file := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, file); err != nil {
		t.Fatal(err)
	}
	return file
}
