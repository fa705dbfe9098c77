package kube

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/sentry/ca"
	sentryclient "github.com/tandemrun/tandem/sentry/client"
	"github.com/tandemrun/tandem/sentry/server"
	"github.com/tandemrun/tandem/sentry/validator"
)

func testClient(t *testing.T) (client.Client, *kubernetes.Clientset, cache.Cache) {
	t.Helper()
	cfg := kube.Require(t)
	k, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cfg, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return k, cs, c
}

func mkNamespace(t *testing.T, k client.Client, name string) {
	t.Helper()
	if err := k.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

// TestSecretStore: the first start generates and stores the credentials
// in Dapr's layout, the next one reads the same, and an empty Secret (as
// Dapr's chart creates) is filled.
func TestSecretStore(t *testing.T) {
	k, _, _ := testClient(t)
	ctx := context.Background()
	mkNamespace(t, k, "store")
	s := &SecretStore{Client: k, Namespace: "store"}
	opts := ca.GenerateOptions{TrustDomain: "cluster.local", Namespace: "store"}
	first, generated, err := s.LoadOrGenerate(ctx, opts)
	if err != nil || !generated {
		t.Fatalf("first start: generated %v, %v", generated, err)
	}
	again, generated, err := s.LoadOrGenerate(ctx, opts)
	if err != nil || generated || !bytes.Equal(Digest(first), Digest(again)) {
		t.Fatalf("second start: generated %v, %v", generated, err)
	}
	var sec corev1.Secret
	if err := k.Get(ctx, types.NamespacedName{Namespace: "store", Name: TrustBundleName}, &sec); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{KeyRootCert, KeyIssuerCert, KeyIssuerKey} {
		if len(sec.Data[key]) == 0 {
			t.Errorf("secret lacks %s", key)
		}
	}
	empty := &SecretStore{Client: k, Namespace: "store", Name: "empty"}
	if err := k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "store", Name: "empty"}}); err != nil {
		t.Fatal(err)
	}
	if _, generated, err := empty.LoadOrGenerate(ctx, opts); err != nil || !generated {
		t.Fatalf("empty secret: generated %v, %v", generated, err)
	}

	// The JWT signing key and key set join the X.509 credentials.
	jb, generated, err := s.LoadOrGenerateJWT(ctx, JWTKeys{}, "")
	if err != nil || !generated {
		t.Fatalf("jwt: generated %v, %v", generated, err)
	}
	jagain, generated, err := s.LoadOrGenerateJWT(ctx, JWTKeys{}, "")
	if err != nil || generated || !bytes.Equal(jagain.KeyPEM, jb.KeyPEM) || !bytes.Equal(jagain.JWKSJSON, jb.JWKSJSON) {
		t.Fatalf("jwt again: generated %v, %v", generated, err)
	}
	if err := k.Get(ctx, types.NamespacedName{Namespace: "store", Name: TrustBundleName}, &sec); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sec.Data[KeyJWTKey], jb.KeyPEM) || !bytes.Equal(sec.Data[KeyJWKS], jb.JWKSJSON) || !bytes.Equal(sec.Data[KeyIssuerKey], first.IssuerKeyPEM) {
		t.Fatal("secret does not hold the jwt key, the jwks and the issuer key")
	}
	if _, _, err := s.LoadOrGenerateJWT(ctx, JWTKeys{}, "not-in-the-set"); err == nil {
		t.Fatal("a kid the stored set lacks was accepted")
	}
	// Half of it is refused, not replaced.
	delete(sec.Data, KeyJWKS)
	if err := k.Update(ctx, &sec); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.LoadOrGenerateJWT(ctx, JWTKeys{}, ""); err == nil {
		t.Fatal("a secret with the key but no jwks was accepted")
	}
	// Storing X.509 credentials keeps the other keys.
	if err := empty.store(ctx, first); err != nil {
		t.Fatal(err)
	}
	if _, generated, err := empty.LoadOrGenerateJWT(ctx, JWTKeys{Key: "k", JWKS: "j"}, "my-kid"); err != nil || !generated {
		t.Fatalf("jwt in the second secret: %v %v", generated, err)
	}
	if err := empty.store(ctx, first); err != nil {
		t.Fatal(err)
	}
	if b, generated, err := empty.LoadOrGenerateJWT(ctx, JWTKeys{Key: "k", JWKS: "j"}, "my-kid"); err != nil || generated || b.JWKS.Keys[0].KeyID != "my-kid" {
		t.Fatalf("jwt keys lost by a store: %v %v", generated, err)
	}
}

// TestPublisher: namespaces with annotated pods get the ConfigMap, and a
// rotated Secret reaches the CA first and then every ConfigMap.
func TestPublisher(t *testing.T) {
	k, _, c := testClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, ns := range []string{"pub-ctl", "pub-a", "pub-b"} {
		mkNamespace(t, k, ns)
	}
	store := &SecretStore{Client: k, Namespace: "pub-ctl"}
	b, _, err := store.LoadOrGenerate(ctx, ca.GenerateOptions{TrustDomain: "cluster.local", Namespace: "pub-ctl"})
	if err != nil {
		t.Fatal(err)
	}
	pod := func(ns, name string, ann map[string]string) {
		if err := k.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	pod("pub-a", "orders", map[string]string{"dapr.io/enabled": "true"})
	pod("pub-b", "plain", nil)
	var mu sync.Mutex
	var reloaded []*ca.Bundle
	p := &Publisher{Client: k, Cache: c, Store: store, Interval: 100 * time.Millisecond, JWKS: []byte(`{"keys":[]}`), OnReload: func(nb *ca.Bundle) error {
		mu.Lock()
		reloaded = append(reloaded, nb)
		mu.Unlock()
		return nil
	}}
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.Start(ctx) })
	wg.Go(func() {
		if err := p.Run(ctx, b); err != nil {
			t.Errorf("publisher: %v", err)
		}
	})
	defer func() { cancel(); wg.Wait() }()

	waitAnchors := func(ns string, want []byte) {
		t.Helper()
		for ctx.Err() == nil {
			var cm corev1.ConfigMap
			if err := k.Get(ctx, types.NamespacedName{Namespace: ns, Name: TrustBundleName}, &cm); err == nil && cm.Data[KeyRootCert] == string(want) && cm.Data[KeyJWKS] == `{"keys":[]}` {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s never got the trust bundle", ns)
	}
	waitAnchors("pub-a", b.TrustAnchorsPEM)
	waitAnchors("pub-ctl", b.TrustAnchorsPEM) // the control plane's own, which the operator and the injector mount
	var cm corev1.ConfigMap
	if err := k.Get(ctx, types.NamespacedName{Namespace: "pub-b", Name: TrustBundleName}, &cm); err == nil {
		t.Error("a namespace without annotated pods got the trust bundle")
	}

	// Rotation: a second root is added next to the first.
	next, err := ca.GenerateBundle(ca.GenerateOptions{TrustDomain: "cluster.local", Namespace: "pub-ctl"})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := ca.ParseBundle(append(append([]byte{}, b.TrustAnchorsPEM...), next.TrustAnchorsPEM...), b.IssuerChainPEM, b.IssuerKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.store(ctx, rotated); err != nil {
		t.Fatal(err)
	}
	waitAnchors("pub-a", rotated.TrustAnchorsPEM)
	waitAnchors("pub-ctl", rotated.TrustAnchorsPEM)
	mu.Lock()
	defer mu.Unlock()
	if len(reloaded) != 1 || len(reloaded[0].TrustAnchors) != 2 {
		t.Fatalf("OnReload got %d bundles", len(reloaded))
	}
}

// TestSignWithServiceAccountToken: sentry in Kubernetes mode signs for a
// pod that presents its projected token, and refuses another app ID.
func TestSignWithServiceAccountToken(t *testing.T) {
	k, cs, _ := testClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mkNamespace(t, k, "sign-ctl")
	mkNamespace(t, k, "sign")
	if err := k.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "sign", Name: "orders"}}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "sign", Name: "orders-0", Annotations: map[string]string{"dapr.io/app-id": "orders"}},
		Spec: corev1.PodSpec{ServiceAccountName: "orders", Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
	if err := k.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	ttl := int64(600)
	tr, err := cs.CoreV1().ServiceAccounts("sign").CreateToken(ctx, "orders", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		Audiences: []string{validator.ServiceAccountAudience}, ExpirationSeconds: &ttl,
		BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := (&SecretStore{Client: k, Namespace: "sign-ctl"}).LoadOrGenerate(ctx, ca.GenerateOptions{TrustDomain: "cluster.local", Namespace: "sign-ctl"})
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New(b, ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sentryID := spiffeid.RequireFromString("spiffe://cluster.local/ns/sign-ctl/dapr-sentry")
	val, err := validator.NewKubernetes(validator.KubernetesOptions{TokenReviews: cs.AuthenticationV1().TokenReviews(), Reader: k, SentryID: sentryID, ControlPlaneNamespace: "sign-ctl"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{CA: authority, TrustDomain: "cluster.local", Namespace: "sign-ctl", Address: "127.0.0.1:0",
		Validators:       map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator{sentryv1.SignCertificateRequest_KUBERNETES: val},
		DefaultValidator: sentryv1.SignCertificateRequest_KUBERNETES})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	issue := func(app string) (*identity.Issued, error) {
		c, err := sentryclient.New(sentryclient.Config{Address: srv.Addr().String(), TrustAnchors: authority.TrustAnchors(), SentryID: sentryID,
			Token: tr.Status.Token, TokenValidator: sentryv1.SignCertificateRequest_KUBERNETES, MaxAttempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		id := spiffeid.RequireFromSegments(spiffeid.RequireTrustDomainFromString("public"), "ns", "sign", app)
		csr, err := identity.NewCSR(key, id)
		if err != nil {
			t.Fatal(err)
		}
		return c.Issue(ctx, id, csr)
	}
	issued, err := issue("orders")
	if err != nil {
		t.Fatal(err)
	}
	if got := issued.Chain[0].URIs[0].String(); got != "spiffe://public/ns/sign/orders" {
		t.Fatalf("certificate for %s", got)
	}
	_, err = issue("billing")
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "app-id mismatch") {
		t.Fatalf("another app's identity: %v, want PermissionDenied app-id mismatch", err)
	}
}

// TestPublisherWaitsForTheAPIServer: with no API server reachable (sentry
// often starts first), the publisher retries instead of failing, which
// would take sentry down, and ends cleanly with its context.
func TestPublisherWaitsForTheAPIServer(t *testing.T) {
	c, err := cache.New(&rest.Config{Host: "https://127.0.0.1:1"}, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	b, err := ca.GenerateBundle(ca.GenerateOptions{TrustDomain: "cluster.local", Namespace: "ctl"})
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Publisher{Cache: c}).Run(ctx, b); err != nil {
		t.Fatalf("Run with the API server down: %v, want it to wait and end with its context", err)
	}
}
