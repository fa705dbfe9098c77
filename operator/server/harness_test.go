package server

import (
	"context"
	"crypto"
	"net"
	"sync"
	"testing"
	"time"

	operatorv1 "github.com/dapr/dapr/pkg/proto/operator/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/operator/api"
	"github.com/tandemrun/tandem/sentry/ca"
)

// harness is an operator Server on the shared API server, with a test CA
// that signs the sidecars' certificates.
type harness struct {
	k    client.Client
	srv  *Server
	ca   *ca.CA
	opID spiffeid.ID
	mu   sync.Mutex
	sent map[string]int
}

// cacheAndClient returns an unstarted cache and a direct client of the
// shared API server, with the dapr.io kinds in their scheme.
func cacheAndClient(t *testing.T) (cache.Cache, client.Client) {
	t.Helper()
	cfg := kube.Require(t)
	scheme, err := api.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	k, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	c, k := cacheAndClient(t)
	h := &harness{k: k, ca: newTestCA(t), opID: spiffeid.RequireFromString("spiffe://cluster.local/ns/tandem-system/dapr-operator"), sent: map[string]int{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Cache: c, APIReader: k, Source: h.source(t, h.opID), Listener: lis})
	if err != nil {
		t.Fatal(err)
	}
	srv.sent = func(kind string) {
		h.mu.Lock()
		h.sent[kind]++
		h.mu.Unlock()
	}
	h.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Start(ctx); err != nil {
			t.Errorf("cache: %v", err)
		}
	})
	wg.Go(func() {
		if err := srv.Run(ctx); err != nil {
			t.Errorf("server: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return h
}

// newTestCA is a CA of trust domain cluster.local.
func newTestCA(t *testing.T) *ca.CA {
	t.Helper()
	bundle, err := ca.GenerateBundle(ca.GenerateOptions{TrustDomain: "cluster.local", Namespace: "tandem-system"})
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New(bundle, ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return authority
}

// source returns an identity.Source holding an SVID for id from the test CA.
func (h *harness) source(t *testing.T, id spiffeid.ID) *identity.Source {
	t.Helper()
	cert, err := h.ca.IssueTLS(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	svid := &x509svid.SVID{ID: id, PrivateKey: cert.PrivateKey.(crypto.Signer)}
	svid.Certificates = append(svid.Certificates, cert.Leaf)
	svid.Certificates = append(svid.Certificates, h.ca.Bundle().IssuerChain...)
	src := identity.NewSource()
	src.SetTrustAnchors(h.ca.TrustAnchors())
	src.SetSVID(svid)
	return src
}

// dial connects as app in namespace (trust domain "public", as a sidecar
// without a Configuration).
func (h *harness) dial(t *testing.T, namespace, app string) operatorv1.OperatorClient {
	t.Helper()
	id := spiffeid.RequireFromSegments(spiffeid.RequireTrustDomainFromString("public"), "ns", namespace, app)
	tlsCfg := identity.ClientTLS(h.source(t, id), tlsconfig.AuthorizeID(h.opID))
	conn, err := grpc.NewClient(h.srv.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return operatorv1.NewOperatorClient(conn)
}

// namespace creates a namespace for one test.
func (h *harness) namespace(t *testing.T, name string) string {
	t.Helper()
	if err := h.k.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// waitSubscribed waits until n streams of kind are open.
func (h *harness) waitSubscribed(t *testing.T, kind string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.srv.hub.subscribers(kind) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d %s streams open, want %d", h.srv.hub.subscribers(kind), kind, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventually retries f until it returns nil, for up to 10 s: the
// operator reads through an informer cache, a moment behind the API server.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
