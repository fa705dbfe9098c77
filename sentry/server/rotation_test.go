package server_test

import (
	"context"
	"crypto/x509"
	"net"
	"os"
	"testing"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/sentry/ca"
	"github.com/tandemrun/tandem/sentry/client"
	"github.com/tandemrun/tandem/sentry/server"
)

// TestRootRotationFromFiles runs a sentry whose credential files are
// rotated in the three documented steps while a Reloader feeds SetCA, and
// checks after each step what a workload receives and how sentry itself is
// verified.
func TestRootRotationFromFiles(t *testing.T) {
	paths := ca.DefaultPaths(t.TempDir())
	oldB, err := ca.GenerateBundle(ca.GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := oldB.Write(paths); err != nil {
		t.Fatal(err)
	}
	newB, err := ca.GenerateBundle(ca.GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := ca.Options{WorkloadCertTTL: time.Minute}
	loaded, err := ca.LoadBundle(paths)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.New(loaded, opts)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{CA: c, Validators: insecureOnly(), DefaultValidator: sentryv1.SignCertificateRequest_INSECURE, Listener: lis})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 2)
	go func() { done <- srv.Run(ctx) }()
	rl := &ca.Reloader{Paths: paths, Options: opts, Interval: 10 * time.Millisecond, OnReload: srv.SetCA}
	go func() { done <- rl.Run(ctx) }()
	defer func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}()
	time.Sleep(30 * time.Millisecond) // the reloader's baseline

	// A workload's anchors, as a sidecar keeps them current.
	src := identity.NewSource()
	src.SetTrustAnchors(oldB.TrustAnchors)
	id := spiffeid.RequireFromString("spiffe://public/ns/default/app")
	issue := func() *identity.Issued {
		t.Helper()
		cl, err := client.New(client.Config{Address: srv.Addr().String(), SentryID: srv.ID(), MaxAttempts: 1, CurrentTrustAnchors: src.TrustAnchors})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		issued, err := cl.Issue(context.Background(), id, csrFor(t, id))
		if err != nil {
			t.Fatalf("issue: %v", err)
		}
		return issued
	}
	waitFor := func(what string, ok func(*identity.Issued) bool) *identity.Issued {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for {
			issued := issue()
			if ok(issued) {
				return issued
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not seen in 3s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	verifies := func(leaf *x509.Certificate, chain []*x509.Certificate, roots ...*x509.Certificate) bool {
		pool, inter := x509.NewCertPool(), x509.NewCertPool()
		for _, r := range roots {
			pool.AddCert(r)
		}
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err == nil
	}
	write := func(path string, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	oldRoot, newRoot := oldB.TrustAnchors[0], newB.TrustAnchors[0]

	// Step 1: both roots in the bundle; SVIDs still from the old issuer.
	write(paths.RootCert, append(append([]byte{}, oldB.TrustAnchorsPEM...), newB.TrustAnchorsPEM...))
	got := waitFor("both roots served", func(i *identity.Issued) bool { return len(i.TrustAnchors) == 2 })
	if !verifies(got.Chain[0], got.Chain, oldRoot) {
		t.Fatal("step 1: SVID does not chain to the old root")
	}
	src.SetTrustAnchors(got.TrustAnchors)

	// Step 2: new issuer; SVIDs chain to the new root only.
	write(paths.IssuerCert, newB.IssuerChainPEM)
	write(paths.IssuerKey, newB.IssuerKeyPEM)
	got = waitFor("new issuer", func(i *identity.Issued) bool { return i.Chain[1].Equal(newB.IssuerChain[0]) })
	if !verifies(got.Chain[0], got.Chain, newRoot) || verifies(got.Chain[0], got.Chain, oldRoot) {
		t.Fatal("step 2: SVID must chain to the new root and not the old one")
	}
	if len(got.TrustAnchors) != 2 {
		t.Fatalf("step 2: %d anchors, want both roots until step 3", len(got.TrustAnchors))
	}

	// Step 3: old root removed. A workload that dropped it still verifies
	// sentry, whose own certificate now comes from the new issuer.
	write(paths.RootCert, newB.TrustAnchorsPEM)
	got = waitFor("old root gone", func(i *identity.Issued) bool { return len(i.TrustAnchors) == 1 })
	if !got.TrustAnchors[0].Equal(newRoot) {
		t.Fatal("step 3: the remaining anchor is not the new root")
	}
	src.SetTrustAnchors(got.TrustAnchors)
	issue()
	if srv.CA().ActiveRoot() == nil || !srv.CA().ActiveRoot().Equal(newRoot) {
		t.Fatal("step 3: active root is not the new root")
	}
}
