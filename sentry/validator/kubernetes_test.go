package validator

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// kubeFixture is a namespace with a service account and pods on the shared
// API server, and a validator reading it.
type kubeFixture struct {
	cs  *kubernetes.Clientset
	k   client.Client
	val *Kubernetes
}

func newKubeFixture(t *testing.T) *kubeFixture {
	t.Helper()
	cfg := kube.Require(t)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	k, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	val, err := NewKubernetes(KubernetesOptions{
		TokenReviews: cs.AuthenticationV1().TokenReviews(), Reader: k,
		SentryID:              spiffeid.RequireFromString("spiffe://cluster.local/ns/tandem-system/dapr-sentry"),
		ControlPlaneNamespace: "tandem-system",
	})
	if err != nil {
		t.Fatal(err)
	}
	return &kubeFixture{cs: cs, k: k, val: val}
}

func (f *kubeFixture) create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := f.k.Create(context.Background(), obj); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
}

// pod creates a pod running as service account sa and returns a token
// bound to it, for audience.
func (f *kubeFixture) pod(t *testing.T, ns, name, sa string, annotations map[string]string, audience string) (*corev1.Pod, string) {
	t.Helper()
	f.create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	f.create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
	f.create(t, pod)
	return pod, f.token(t, pod, audience)
}

func (f *kubeFixture) token(t *testing.T, pod *corev1.Pod, audience string) string {
	t.Helper()
	ttl := int64(600)
	tr, err := f.cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(context.Background(), pod.Spec.ServiceAccountName, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{
			Audiences: []string{audience}, ExpirationSeconds: &ttl,
			BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

func signReq(ns, id, token string) *sentryv1.SignCertificateRequest {
	return &sentryv1.SignCertificateRequest{
		Id: id, Namespace: ns, Token: token, TokenValidator: sentryv1.SignCertificateRequest_KUBERNETES,
		CertificateSigningRequest: []byte("csr"),
	}
}

// TestKubernetesValidator validates real projected tokens from the API
// server against the pods they are bound to.
func TestKubernetesValidator(t *testing.T) {
	f := newKubeFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, orders := f.pod(t, "shop", "orders-0", "orders-sa", map[string]string{"dapr.io/app-id": "orders"}, ServiceAccountAudience)
	_, sentryAud := f.pod(t, "shop", "orders-1", "orders-sa", map[string]string{"dapr.io/app-id": "orders"}, "spiffe://cluster.local/ns/tandem-system/dapr-sentry")
	_, wrongAud := f.pod(t, "shop", "orders-2", "orders-sa", map[string]string{"dapr.io/app-id": "orders"}, "https://kubernetes.default.svc")
	_, noAppID := f.pod(t, "shop", "plain", "orders-sa", nil, ServiceAccountAudience)
	_, operator := f.pod(t, "tandem-system", "operator-0", "operator", map[string]string{AnnotationControlPlane: "operator"}, ServiceAccountAudience)
	_, injector := f.pod(t, "tandem-system", "injector-0", "injector", map[string]string{AnnotationControlPlane: "injector"}, "spiffe://cluster.local/ns/tandem-system/dapr-sentry")
	_, scaler := f.pod(t, "tandem-system", "scaler-0", "scaler", map[string]string{AnnotationControlPlane: "scaler"}, "spiffe://cluster.local/ns/tandem-system/dapr-sentry")
	_, impostor := f.pod(t, "tandem-system", "impostor", "default", map[string]string{"dapr.io/app-id": "dapr-injector"}, ServiceAccountAudience)
	_, rogue := f.pod(t, "shop", "rogue", "orders-sa", map[string]string{AnnotationControlPlane: "operator"}, ServiceAccountAudience)
	cfg := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "dapr.io/v1alpha1", "kind": "Configuration",
		"metadata": map[string]any{"namespace": "shop", "name": "prodcfg"},
		"spec":     map[string]any{"accessControl": map[string]any{"trustDomain": "prod.example"}},
	}}
	f.create(t, cfg)
	_, withCfg := f.pod(t, "shop", "configured", "orders-sa", map[string]string{"dapr.io/app-id": "billing", "dapr.io/config": "prodcfg"}, ServiceAccountAudience)
	deleted, deletedTok := f.pod(t, "shop", "gone", "orders-sa", map[string]string{"dapr.io/app-id": "gone"}, ServiceAccountAudience)
	if err := f.k.Delete(ctx, deleted); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name       string
		req        *sentryv1.SignCertificateRequest
		want       string
		wantErrHas string
	}{
		{"own app id", signReq("shop", "orders", orders), "spiffe://public/ns/shop/orders", ""},
		{"audience is sentry's id", signReq("shop", "orders", sentryAud), "spiffe://public/ns/shop/orders", ""},
		{"pod name without app-id annotation", signReq("shop", "plain", noAppID), "spiffe://public/ns/shop/plain", ""},
		{"configuration trust domain", signReq("shop", "billing", withCfg), "spiffe://prod.example/ns/shop/billing", ""},
		{"control plane", signReq("tandem-system", "dapr-operator", operator), "spiffe://cluster.local/ns/tandem-system/dapr-operator", ""},
		{"injector", signReq("tandem-system", "dapr-injector", injector), "spiffe://cluster.local/ns/tandem-system/dapr-injector", ""},
		{"KEDA scaler", signReq("tandem-system", "dapr-scaler", scaler), "spiffe://cluster.local/ns/tandem-system/dapr-scaler", ""},
		{"app pod taking a control-plane id", signReq("tandem-system", "dapr-injector", impostor), "", "app ID dapr-injector is reserved for the control plane's injector"},
		{"another app's id", signReq("shop", "billing", orders), "", "app-id mismatch. expected: orders, received: billing"},
		{"another namespace", signReq("other", "orders", orders), "", "namespace mismatch; received namespace: other"},
		{"wrong audience", signReq("shop", "orders", wrongAud), "", "token"},
		{"forged token", signReq("shop", "orders", orders[:len(orders)-4]+"AAAA"), "", "token"},
		{"pod deleted", signReq("shop", "gone", deletedTok), "", "token"},
		{"no token", signReq("shop", "orders", ""), "", "no Kubernetes service account token"},
		{"control plane outside its namespace", signReq("shop", "dapr-operator", rogue), "", "control plane service in namespace 'shop' is not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := f.val.Validate(ctx, tc.req)
			if tc.wantErrHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrHas) {
					t.Fatalf("Validate = %v, %v; want an error containing %q", id, err, tc.wantErrHas)
				}
				return
			}
			if err != nil || id.String() != tc.want {
				t.Fatalf("Validate = %v, %v; want %s", id, err, tc.want)
			}
		})
	}
}

func TestPodClaim(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tok := enc(`{"alg":"RS256"}`) + "." + enc(`{"kubernetes.io":{"namespace":"ns","pod":{"name":"app-1","uid":"u-1"}}}`) + ".sig"
	if name, uid := podClaim(tok); name != "app-1" || uid != "u-1" {
		t.Fatalf("podClaim = %q, %q; want app-1, u-1", name, uid)
	}
	if name, _ := podClaim(`{"kubernetes.io":{"pod":{"name":"mypod"}}}`); name != "mypod" {
		t.Fatalf("podClaim of claims in the clear = %q, want mypod", name)
	}
	for _, bad := range []string{"", "a.b", enc(`{}`) + "." + enc(`{"sub":"x"}`) + ".s", "a.!!.c"} {
		if name, _ := podClaim(bad); name != "" {
			t.Errorf("podClaim(%q) = %q, want none", bad, name)
		}
	}
}
