package identity

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tandemrun/tandem/internal/syncbuf"
)

func selfSignedRoot(t *testing.T, name string, notAfter time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func pemOf(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

func TestWatchTrustAnchorsFile(t *testing.T) {
	oldRoot := selfSignedRoot(t, "old", time.Now().Add(24*time.Hour)) // expires soon: warned
	newRoot := selfSignedRoot(t, "new", time.Now().Add(365*24*time.Hour))
	path := filepath.Join(t.TempDir(), "ca.crt")
	write := func(data []byte) {
		t.Helper()
		// Write to a temporary name and rename, as operators should.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(pemOf(oldRoot))
	src := NewSource()
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	changes := make(chan int, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- WatchTrustAnchorsFile(ctx, path, src, 10*time.Millisecond, log, func(c []*x509.Certificate) { changes <- len(c) })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	expect := func(what string, n int, want ...*x509.Certificate) {
		t.Helper()
		select {
		case got := <-changes:
			if got != n {
				t.Fatalf("%s: %d anchors, want %d", what, got, n)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: no change seen", what)
		}
		if !sameCerts(src.TrustAnchors(), want) {
			t.Fatalf("%s: source anchors differ", what)
		}
		// The bundle handed to TLS follows.
		b, err := src.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("public"))
		if err != nil || len(b.X509Authorities()) != len(want) {
			t.Fatalf("%s: bundle %v, %v", what, b, err)
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case <-changes:
			t.Fatalf("%s: unexpected change", what)
		case <-time.After(80 * time.Millisecond):
		}
	}

	expect("initial read", 1, oldRoot)
	write(pemOf(oldRoot))
	quiet("same content rewritten")
	write(pemOf(oldRoot, newRoot))
	expect("new root appended", 2, oldRoot, newRoot)
	write([]byte("-----BEGIN CERTIFICATE-----\ngarbage"))
	quiet("half-written file")
	if got := len(src.TrustAnchors()); got != 2 {
		t.Fatalf("a bad file replaced the anchors (%d left)", got)
	}
	write(pemOf(newRoot))
	expect("old root removed", 1, newRoot)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	quiet("file removed")
	if got := len(src.TrustAnchors()); got != 1 {
		t.Fatal("a missing file cleared the anchors")
	}
	out := logs.String()
	for _, want := range []string{"trust anchors reloaded from file", "holds no valid certificates", "a trust anchor expires soon"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestWatchTrustAnchorsFileNeedsArguments(t *testing.T) {
	if err := WatchTrustAnchorsFile(context.Background(), "", NewSource(), 0, nil, nil); err == nil {
		t.Fatal("want error without a path")
	}
}

func TestReadTrustAnchorsFile(t *testing.T) {
	dir := t.TempDir()
	a, b := selfSignedRoot(t, "a", time.Now().Add(time.Hour)), selfSignedRoot(t, "b", time.Now().Add(2*time.Hour))
	good := filepath.Join(dir, "good.pem")
	_ = os.WriteFile(good, append([]byte("# bundle\n"), pemOf(a, b)...), 0o600)
	bad := filepath.Join(dir, "bad.pem")
	_ = os.WriteFile(bad, []byte("nothing"), 0o600)
	certs, err := ReadTrustAnchorsFile(good)
	if err != nil || len(certs) != 2 {
		t.Fatalf("good: %d, %v", len(certs), err)
	}
	if !EarliestExpiry(certs).Equal(a.NotAfter) {
		t.Fatalf("EarliestExpiry = %v, want %v", EarliestExpiry(certs), a.NotAfter)
	}
	if !EarliestExpiry(nil).IsZero() {
		t.Fatal("EarliestExpiry(nil) must be zero")
	}
	for _, p := range []string{bad, filepath.Join(dir, "missing.pem")} {
		if _, err := ReadTrustAnchorsFile(p); err == nil {
			t.Errorf("%s: want error", p)
		}
	}
}

type anchorIssuer struct{ anchors []*x509.Certificate }

func (a anchorIssuer) Issue(context.Context, spiffeid.ID, []byte) (*Issued, error) {
	return &Issued{TrustAnchors: a.anchors}, nil
}

func TestAnchorsFromFileOnly(t *testing.T) {
	root := selfSignedRoot(t, "r", time.Now().Add(time.Hour))
	iss := AnchorsFromFileOnly(anchorIssuer{[]*x509.Certificate{root}})
	got, err := iss.Issue(context.Background(), spiffeid.ID{}, nil)
	if err != nil || got.TrustAnchors != nil {
		t.Fatalf("anchors %v, err %v; want none", got.TrustAnchors, err)
	}
}
