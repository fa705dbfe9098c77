package kubernetes

import (
	"context"
	"errors"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
	"github.com/tandemrun/tandem/internal/kubecore"
	"github.com/tandemrun/tandem/internal/kubetest"
)

// kube is the API server the package's tests share.
var kube *kubetest.Env

func TestMain(m *testing.M) {
	kube = kubetest.Start()
	os.Exit(kube.Run(m))
}

func secret(ns, name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// fixture creates namespace ns with Secrets, and a service account
// "app" allowed to get and list them; it returns the store as that
// account, initialised through a kubeconfig file as a sidecar outside
// the cluster finds it.
func fixture(t *testing.T, ns string, secrets ...*corev1.Secret) *Store {
	t.Helper()
	sa := kube.ServiceAccount(t, ns, "app")
	kube.Grant(t, ns, "app", "", []string{"secrets"}, []string{"get", "list"})
	admin, err := k8s.NewForConfig(kube.Require(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if _, err := admin.CoreV1().Secrets(ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	st := New()
	st.getenv = func(string) string { return "" }
	md := components.Metadata{Name: "kubernetes", Properties: map[string]string{"defaultNamespace": ns, "kubeconfigPath": kubetest.Kubeconfig(t, sa)}}
	if err := st.Init(context.Background(), md); err != nil {
		t.Fatal(err)
	}
	// The grant may take a moment to reach the authorizer.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := st.BulkGetSecret(context.Background(), secretstores.BulkGetRequest{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service account never allowed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return st
}

// TestStore reads Secrets with a service account's token, as daprd's
// store does: a secret is all the keys of one Secret, a bulk read is every
// Secret of the namespace.
func TestStore(t *testing.T) {
	const ns = "secrets-shop"
	st := fixture(t, ns,
		secret(ns, "db", map[string]string{"username": "admin", "password": "p@ss:w0rd/ü \"q\"\nline2"}),
		secret(ns, "token", map[string]string{"token": "t0k3n"}),
	)
	ctx := context.Background()
	got, err := st.GetSecret(ctx, secretstores.GetRequest{Name: "db"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"username": "admin", "password": "p@ss:w0rd/ü \"q\"\nline2"}; !maps.Equal(got, want) {
		t.Fatalf("db = %q, want %q", got, want)
	}

	_, err = st.GetSecret(ctx, secretstores.GetRequest{Name: "nope"})
	if !errors.Is(err, secretstores.ErrNotFound) || !strings.Contains(err.Error(), ns) {
		t.Fatalf("missing Secret: %v, want ErrNotFound naming the namespace", err)
	}

	all, err := st.BulkGetSecret(ctx, secretstores.BulkGetRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all["token"]["token"] != "t0k3n" || all["db"]["username"] != "admin" {
		t.Fatalf("bulk = %v", all)
	}

	if f := st.Features(); len(f) != 0 {
		t.Fatalf("features %v, want none (as Dapr)", f)
	}
}

// TestNamespaceAndPermissions: metadata.namespace picks another namespace,
// where the service account has no grant: the API server refuses, and the
// error says what to do. NAMESPACE beats defaultNamespace, as in Dapr.
func TestNamespaceAndPermissions(t *testing.T) {
	const ns = "secrets-own"
	st := fixture(t, ns, secret(ns, "mine", map[string]string{"k": "v"}))
	admin, err := k8s.NewForConfig(kube.Require(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "secrets-other"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = st.GetSecret(ctx, secretstores.GetRequest{Name: "mine", Metadata: map[string]string{"namespace": "secrets-other"}})
	if err == nil || !strings.Contains(err.Error(), "forbidden") || !strings.Contains(err.Error(), "--disable-builtin-k8s-secret-store") {
		t.Fatalf("other namespace: %v, want forbidden with advice", err)
	}
	_, err = st.BulkGetSecret(ctx, secretstores.BulkGetRequest{Metadata: map[string]string{"namespace": "secrets-other"}})
	if err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("bulk in other namespace: %v, want forbidden", err)
	}

	st.getenv = func(k string) string {
		if k == "NAMESPACE" {
			return "secrets-other"
		}
		return ""
	}
	if _, err := st.GetSecret(ctx, secretstores.GetRequest{Name: "mine"}); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("NAMESPACE=secrets-other: %v, want forbidden (NAMESPACE beats defaultNamespace)", err)
	}
}

func TestNoNamespace(t *testing.T) {
	// A client that is never called: the namespace is checked first.
	c, err := kubecore.New(&rest.Config{Host: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	st := NewWithClient(c, func(string) string { return "" })
	if err := st.Init(context.Background(), components.Metadata{Name: "k"}); err != nil {
		t.Fatal(err)
	}
	_, err = st.GetSecret(context.Background(), secretstores.GetRequest{Name: "x"})
	if err == nil || !strings.Contains(err.Error(), "namespace is missing") {
		t.Fatalf("got %v", err)
	}
}

func TestInitWithoutAPIAccess(t *testing.T) {
	st := New()
	err := st.Init(context.Background(), components.Metadata{Name: "k", Properties: map[string]string{"kubeconfigPath": "/nonexistent/kubeconfig"}})
	if err == nil || !components.IsPermanent(err) || !strings.Contains(err.Error(), "/nonexistent/kubeconfig") {
		t.Fatalf("Init: %v, want a permanent error naming the file", err)
	}
}
