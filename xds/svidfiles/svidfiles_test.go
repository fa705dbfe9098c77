package svidfiles_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"go.uber.org/goleak"
	"google.golang.org/grpc/credentials/tls/certprovider/pemfile"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/sentry/ca"
	"github.com/tandemrun/tandem/xds/svidfiles"
)

// caIssuer signs with a real sentry CA in process, ttl per certificate.
type caIssuer struct {
	ca   *ca.CA
	ttl  time.Duration
	fail atomic.Bool
}

func (c *caIssuer) Issue(_ context.Context, id spiffeid.ID, csrDER []byte) (*identity.Issued, error) {
	if c.fail.Load() {
		return nil, errors.New("sentry is down")
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, err
	}
	chain, err := c.ca.Sign(csr, id, c.ttl)
	if err != nil {
		return nil, err
	}
	return &identity.Issued{Chain: chain[:len(chain)-1], TrustAnchors: c.ca.TrustAnchors(), ValidUntil: chain[0].NotAfter}, nil
}

func newIssuer(t *testing.T, ttl time.Duration) *caIssuer {
	t.Helper()
	b, err := ca.GenerateBundle(ca.GenerateOptions{TrustDomain: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New(b, ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &caIssuer{ca: authority, ttl: ttl}
}

var appID = spiffeid.RequireFromString("spiffe://public/ns/default/proxyless")

// serialOf reads cert.pem and key.pem as a pair and returns the leaf's
// serial number. A reader that opens the two files just as they are
// replaced may see a new certificate with the old key; like grpc-go's
// file_watcher it reads again, and fails only if they still do not match
// after 20 ms.
func serialOf(t *testing.T, dir string) string {
	t.Helper()
	p := svidfiles.Paths(dir)
	pair, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	for i := 0; err != nil && i < 10; i++ {
		time.Sleep(2 * time.Millisecond)
		pair, err = tls.LoadX509KeyPair(p.Cert, p.Key)
	}
	if err != nil {
		t.Fatalf("the files do not hold a certificate and its key: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber.String()
}

func TestWriteLayout(t *testing.T) {
	iss := newIssuer(t, time.Hour)
	dir := t.TempDir()
	k := &svidfiles.Keeper{Dir: dir, ID: appID, Issuer: iss,
		ExtraTrustDomains: []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("xds.example")}}
	if _, err := k.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := svidfiles.Paths(dir)
	serialOf(t, dir)
	svid, err := x509svid.Load(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	if svid.ID != appID {
		t.Errorf("cert.pem is for %s, want %s", svid.ID, appID)
	}
	caPEM, _ := os.ReadFile(p.CA)
	anchors, err := identity.ParseCertificates(caPEM)
	if err != nil || len(anchors) != 1 || !anchors[0].Equal(iss.ca.TrustAnchors()[0]) {
		t.Errorf("ca.pem holds %d certificates (%v), want the CA's root", len(anchors), err)
	}
	var bmap struct {
		TrustDomains map[string]json.RawMessage `json:"trust_domains"`
	}
	b, _ := os.ReadFile(p.SPIFFEBundleMap)
	if err := json.Unmarshal(b, &bmap); err != nil || bmap.TrustDomains["public"] == nil || bmap.TrustDomains["xds.example"] == nil {
		t.Errorf("bundle map %s: %v", b, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
		if info, _ := e.Info(); info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
	if len(entries) != 4 {
		t.Errorf("%d files, want cert.pem, key.pem, ca.pem and the bundle map", len(entries))
	}
}

func TestWriteRefusesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := svidfiles.Write(dir, nil, nil); err == nil {
		t.Error("Write with no SVID succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a failed Write left %d files", len(entries))
	}
}

// TestKeeperRotatesAtHalfLife: with 2 s certificates the files change about
// every second, each time to a new certificate whose key matches, and
// grpc-go's file_watcher provider (what the bootstrap names) follows them.
func TestKeeperRotatesAtHalfLife(t *testing.T) {
	const ttl = 2 * time.Second
	iss := newIssuer(t, ttl)
	dir := t.TempDir()
	var mu sync.Mutex
	var writes []time.Time
	var serials []string
	var notAfters []time.Time
	k := &svidfiles.Keeper{Dir: dir, ID: appID, Issuer: iss, OnWrite: func(s *x509svid.SVID) {
		mu.Lock()
		writes = append(writes, time.Now())
		serials = append(serials, s.Certificates[0].SerialNumber.String())
		notAfters = append(notAfters, s.Certificates[0].NotAfter)
		mu.Unlock()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(svidfiles.Paths(dir).CA); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no files after 5s")
		}
	}
	p := svidfiles.Paths(dir)
	prov, err := pemfile.NewProvider(pemfile.Options{CertFile: p.Cert, KeyFile: p.Key, RootFile: p.CA, RefreshDuration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer prov.Close()

	// Read the pair continuously while it rotates: never a mismatch.
	seen := map[string]bool{}
	for end := time.Now().Add(3500 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		seen[serialOf(t, dir)] = true
	}
	if len(seen) < 3 {
		t.Errorf("saw %d certificates in 3.5 s of 2 s certificates renewed at half life, want >= 3", len(seen))
	}
	mu.Lock()
	for i := 1; i < len(writes); i++ {
		// X.509 times are whole seconds: the lifetime the certificate
		// states is what is halved.
		half := notAfters[i-1].Sub(writes[i-1]) / 2
		if gap := writes[i].Sub(writes[i-1]); gap < half-100*time.Millisecond || gap > half+400*time.Millisecond {
			t.Errorf("renewal %d came %v after the previous one, want about %v (half the certificate's remaining lifetime)", i, gap, half)
		}
		if serials[i] == serials[i-1] {
			t.Errorf("renewal %d kept serial %s", i, serials[i])
		}
	}
	last := serials[len(serials)-1]
	mu.Unlock()

	// file_watcher serves the newest certificate within its refresh.
	var got string
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		km, err := prov.KeyMaterial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(km.Certs[0].Certificate[0])
		got = leaf.SerialNumber.String()
		mu.Lock()
		last = serials[len(serials)-1]
		mu.Unlock()
		if got == last || seen[got] && got != serials[0] {
			break
		}
	}
	if got == serials[0] {
		t.Errorf("file_watcher still serves the first certificate %s after rotations (newest %s)", got, last)
	}
}

// TestKeeperKeepsFilesWhenRenewalFails: sentry down at renewal time leaves
// the current files in place, and the next successful renewal replaces
// them.
func TestKeeperKeepsFilesWhenRenewalFails(t *testing.T) {
	iss := newIssuer(t, 1*time.Second)
	dir := t.TempDir()
	var logs bytes.Buffer
	var lmu sync.Mutex
	k := &svidfiles.Keeper{Dir: dir, ID: appID, Issuer: iss, RetryInterval: 100 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &lmu}, nil))}
	next, err := k.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	first := serialOf(t, dir)
	iss.fail.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Follow(ctx, next) }()
	time.Sleep(1200 * time.Millisecond)
	if got := serialOf(t, dir); got != first {
		t.Errorf("the files changed while sentry was down: %s, want %s", got, first)
	}
	lmu.Lock()
	if !strings.Contains(logs.String(), "sentry is down") {
		t.Errorf("the failed renewal was not logged: %s", logs.String())
	}
	lmu.Unlock()
	iss.fail.Store(false)
	for deadline := time.Now().Add(2 * time.Second); serialOf(t, dir) == first; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the files were not renewed once sentry was back")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Follow: %v", err)
	}
}

func TestStartFailsWithoutSentry(t *testing.T) {
	iss := newIssuer(t, time.Hour)
	iss.fail.Store(true)
	dir := filepath.Join(t.TempDir(), "id")
	k := &svidfiles.Keeper{Dir: dir, ID: appID, Issuer: iss}
	if err := k.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "sentry is down") {
		t.Errorf("Run = %v, want the issuer's error", err)
	}
	if _, err := os.Stat(svidfiles.Paths(dir).Cert); err == nil {
		t.Error("cert.pem written without a certificate")
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
