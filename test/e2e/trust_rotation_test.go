package e2e

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/sentry/ca"
	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestTrustAnchorRotation replaces sentry's root CA while invocations run
// without pause, following docs/trust-anchor-rotation.md:
//
//  1. append the new root to ca.crt (sentry's and a copy one sidecar
//     watches) and wait until sentry and both sidecars hold both roots;
//  2. switch sentry's issuer to one signed by the new root and wait one
//     workload TTL: every sidecar then presents a certificate chaining to
//     the new root only;
//  3. remove the old root: a client with an old-root certificate is
//     refused.
//
// It requires zero failed requests throughout.
func TestTrustAnchorRotation(t *testing.T) {
	const ttl = 4 * time.Second
	s := framework.StartSentry(t, bins, framework.SentryOptions{WorkloadTTL: ttl.String()})
	sentryCA := filepath.Join(s.CredsDir, "ca.crt")
	oldCreds := readCreds(t, s.CredsDir)
	// The callee watches its own copy of the bundle, the caller sentry's file.
	copyCA := filepath.Join(t.TempDir(), "trust-bundle.pem")
	writeAtomic(t, copyCA, oldCreds.root)

	registry := filepath.Join(t.TempDir(), "r.db")
	start := func(id, anchorsFile string) *framework.Sidecar {
		app := framework.StartApp(t, id+" app", bins.Echo)
		return framework.StartSidecar(t, bins, framework.SidecarOptions{
			AppID: id, AppPort: app.Port, Registry: registry,
			Args: []string{"--enable-mtls", "--sentry-address", s.Addr, "--control-plane-trust-domain", s.TrustDomain,
				"--trust-anchors-file", anchorsFile},
		})
	}
	caller, callee := start("caller", sentryCA), start("callee", copyCA)
	sidecars := []*framework.Sidecar{caller, callee}

	// Continuous load through the whole procedure.
	url := caller.HTTPURL() + "/v1.0/invoke/callee/method/echo"
	loadCtx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	load := framework.StartEchoLoad(loadCtx, url, 4)
	time.Sleep(2 * time.Second)

	// A new root and issuer, made by the documented helper.
	newDir := filepath.Join(t.TempDir(), "next")
	if out, err := exec.Command(bins.Sentry, "--generate-root-into", newDir, "--trust-domain", s.TrustDomain).CombinedOutput(); err != nil {
		t.Fatalf("sentry --generate-root-into: %v\n%s", err, out)
	}
	newCreds := readCreds(t, newDir)
	oldRoot, newRoot := parseOne(t, oldCreds.root), parseOne(t, newCreds.root)

	// Step 1: both roots.
	both := append(append([]byte{}, oldCreds.root...), newCreds.root...)
	writeAtomic(t, sentryCA, both)
	writeAtomic(t, copyCA, both)
	waitOutput(t, s.Process, `issuer credentials changed on disk; reloaded`, 1)
	for _, sc := range sidecars {
		waitOutput(t, sc.Process, `trust anchors reloaded from file.*anchors=2`, 1)
	}
	t.Logf("step 1 done: %d calls ok, %d failed", load.OK.Load(), load.Failed.Load())

	// Step 2: the new issuer. After one TTL every certificate is new.
	writeAtomic(t, filepath.Join(s.CredsDir, "issuer.crt"), newCreds.issuer)
	writeAtomic(t, filepath.Join(s.CredsDir, "issuer.key"), newCreds.key)
	waitOutput(t, s.Process, `issuer credentials changed on disk; reloaded`, 2)
	time.Sleep(ttl + 2*time.Second)
	probe := issue(t, s, spiffeid.RequireFromString("spiffe://public/ns/default/probe"))
	for _, sc := range sidecars {
		chain := peerChain(t, fmt.Sprintf("127.0.0.1:%d", sc.InternalPort), probe)
		if !chainsTo(chain, newRoot) || chainsTo(chain, oldRoot) {
			t.Fatalf("step 2: %s presents a certificate that does not chain to the new root only (issuer %s)", sc.AppID, chain[0].Issuer)
		}
	}
	oldClient := oldRootClient(t, oldCreds, newRoot)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calleeInternal := fmt.Sprintf("127.0.0.1:%d", callee.InternalPort)
	if _, err := callLocal(ctx, calleeInternal, oldClient); err != nil {
		t.Fatalf("step 2: an old-root client must still be accepted while the old root is in the bundle: %v", err)
	}
	t.Logf("step 2 done: %d calls ok, %d failed", load.OK.Load(), load.Failed.Load())

	// Step 3: the old root goes.
	writeAtomic(t, sentryCA, newCreds.root)
	writeAtomic(t, copyCA, newCreds.root)
	waitOutput(t, s.Process, `issuer credentials changed on disk; reloaded`, 3)
	for _, sc := range sidecars {
		waitOutput(t, sc.Process, `trust anchors reloaded from file.*anchors=1`, 1)
	}
	if _, err := callLocal(ctx, calleeInternal, oldClient); err == nil {
		t.Fatal("step 3: a client with an old-root certificate was accepted after the old root was removed")
	} else {
		t.Logf("step 3: old-root client refused: %v", err)
	}
	fresh := issue(t, s, spiffeid.RequireFromString("spiffe://public/ns/default/probe"))
	if _, err := callLocal(ctx, calleeInternal, credentials.NewTLS(identity.ClientTLS(fresh, tlsconfig.AuthorizeAny()))); err != nil {
		t.Fatalf("step 3: a client with a new-root certificate was refused: %v", err)
	}
	time.Sleep(2 * time.Second)
	stopLoad()
	load.Stop()

	t.Logf("%d calls succeeded, %d failed during the rotation", load.OK.Load(), load.Failed.Load())
	if load.Failed.Load() != 0 {
		t.Errorf("%d calls failed during the root rotation (first: %v)", load.Failed.Load(), load.FirstError())
	}
	if load.OK.Load() == 0 {
		t.Fatal("no call succeeded")
	}
}

type creds struct{ root, issuer, key []byte }

func readCreds(t *testing.T, dir string) creds {
	t.Helper()
	var c creds
	for name, dst := range map[string]*[]byte{"ca.crt": &c.root, "issuer.crt": &c.issuer, "issuer.key": &c.key} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		*dst = b
	}
	return c
}

// writeAtomic replaces path in one step, as an operator should (write a
// temporary file, then rename it over the old one).
func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func parseOne(t *testing.T, pemData []byte) *x509.Certificate {
	t.Helper()
	certs, err := identity.ParseCertificates(pemData)
	if err != nil || len(certs) != 1 {
		t.Fatalf("want one certificate: %d, %v", len(certs), err)
	}
	return certs[0]
}

// waitOutput waits until pattern has matched p's output at least n times.
func waitOutput(t *testing.T, p *framework.Process, pattern string, n int) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(10 * time.Second)
	for len(re.FindAllString(p.Output(), -1)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q %d times in 10s:\n%s", p.Name, pattern, n, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// peerChain handshakes with addr as src and returns the chain the server
// presented.
func peerChain(t *testing.T, addr string, src *identity.Source) []*x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, identity.ClientTLS(src, tlsconfig.AuthorizeAny()))
	if err != nil {
		t.Fatalf("probe %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates
}

func chainsTo(chain []*x509.Certificate, root *x509.Certificate) bool {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

// oldRootClient returns credentials holding a certificate from the old
// issuer (chaining to the old root) that trust the new root.
func oldRootClient(t *testing.T, old creds, newRoot *x509.Certificate) credentials.TransportCredentials {
	t.Helper()
	b, err := ca.ParseBundle(old.root, old.issuer, old.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.New(b, ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://public/ns/default/tester")
	cert, err := c.IssueTLS(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	src := identity.NewSource()
	src.SetSVID(&x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cert.Leaf, c.Issuer()}, PrivateKey: cert.PrivateKey.(crypto.Signer)})
	src.SetTrustAnchors([]*x509.Certificate{b.TrustAnchors[0], newRoot})
	return credentials.NewTLS(identity.ClientTLS(src, tlsconfig.AuthorizeAny()))
}
