package vault

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/tandemrun/tandem/internal/kubetest"
	"github.com/tandemrun/tandem/internal/vaulttest"
)

// TestKubernetesAuth logs in with a service account token that a real
// Kubernetes API server issued and Vault's kubernetes auth method checks
// against that API server (TokenReview), as a sidecar in a pod does.
func TestKubernetesAuth(t *testing.T) {
	d := vaulttest.Start(t)
	kube := kubetest.Start()
	t.Cleanup(kube.Stop)
	admin := kube.Require(t)

	// Vault reviews tokens as the service account vault-reviewer, which may
	// create TokenReviews (system:auth-delegator).
	reviewer := kube.ServiceAccount(t, "vault", "vault-reviewer")
	cs, err := k8s.NewForConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "vault-reviewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "vault", Name: "vault-reviewer"}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(context.Background(), crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	app := kube.ServiceAccount(t, "shop", "checkout")
	jwtFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(jwtFile, []byte(app.BearerToken), 0o600); err != nil {
		t.Fatal(err)
	}

	d.Policy(t, "reader", "secret/data/*", "secret/metadata/*")
	d.Put(t, "secret", 2, "dapr/db", map[string]any{"password": "from-k8s"})
	if err := d.Admin.Sys().EnableAuthWithOptions("k8s", &api.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Admin.Logical().Write("auth/k8s/config", map[string]any{
		"kubernetes_host": admin.Host, "kubernetes_ca_cert": string(admin.CAData),
		"token_reviewer_jwt": reviewer.BearerToken, "disable_local_ca_jwt": true,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Admin.Logical().Write("auth/k8s/role/checkout", map[string]any{
		"bound_service_account_names": "checkout", "bound_service_account_namespaces": "shop",
		"token_policies": "reader", "token_ttl": "1h",
	}); err != nil {
		t.Fatal(err)
	}

	props := map[string]string{"vaultAddr": d.Addr, "vaultAuthMethod": "kubernetes", "vaultKubernetesRole": "checkout",
		"vaultKubernetesMountPath": "k8s", "vaultServiceAccountTokenPath": jwtFile}
	s := open(t, props)
	if got, err := get(t, s, "db", nil); err != nil || got["password"] != "from-k8s" {
		t.Fatalf("GetSecret = %v, %v", got, err)
	}

	// A role the service account is not bound to: Init fails.
	if _, err := d.Admin.Logical().Write("auth/k8s/role/other", map[string]any{
		"bound_service_account_names": "someone-else", "bound_service_account_namespaces": "shop", "token_policies": "reader",
	}); err != nil {
		t.Fatal(err)
	}
	props["vaultKubernetesRole"] = "other"
	if err := New().Init(ctxT(t), md(props)); err == nil || !strings.Contains(err.Error(), "login") {
		t.Fatalf("Init with a role not bound to the service account: err = %v", err)
	}
}
