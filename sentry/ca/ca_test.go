package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func newCSR(t *testing.T) *x509.CertificateRequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func TestLoadOrGenerateRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	p := DefaultPaths(dir)
	b1, generated, err := LoadOrGenerate(p, GenerateOptions{TrustDomain: "example.org", Namespace: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if !generated {
		t.Fatal("first call: generated = false, want true")
	}
	for f, mode := range map[string]os.FileMode{"ca.crt": 0o644, "issuer.crt": 0o644, "issuer.key": 0o600} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("%s not written: %v", f, err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s mode = %v, want %v", f, st.Mode().Perm(), mode)
		}
	}
	b2, generated, err := LoadOrGenerate(p, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if generated {
		t.Fatal("second call regenerated the CA")
	}
	if !b1.TrustAnchors[0].Equal(b2.TrustAnchors[0]) || !b1.IssuerChain[0].Equal(b2.IssuerChain[0]) {
		t.Fatal("loaded bundle differs from the generated one")
	}
	root := b1.TrustAnchors[0]
	if ttl := root.NotAfter.Sub(root.NotBefore); ttl < DefaultCATTL || ttl > DefaultCATTL+time.Hour {
		t.Errorf("root validity = %v, want about one year", ttl)
	}
	if got := b1.IssuerChain[0].Subject.Organization; len(got) != 1 || got[0] != "spiffe://example.org/ns/ops/dapr-sentry" {
		t.Errorf("issuer organisation = %v", got)
	}
	if _, ok := b2.IssuerKey.(*ecdsa.PrivateKey); !ok {
		t.Errorf("issuer key type %T, want ECDSA", b2.IssuerKey)
	}
}

func TestLoadBundleErrors(t *testing.T) {
	a, err := GenerateBundle(GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateBundle(GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		files    map[string][]byte
		notExist bool
	}{
		{"empty folder", map[string][]byte{}, true},
		{"only ca.crt", map[string][]byte{"ca.crt": a.TrustAnchorsPEM}, false},
		{"key of another issuer", map[string][]byte{"ca.crt": a.TrustAnchorsPEM, "issuer.crt": a.IssuerChainPEM, "issuer.key": b.IssuerKeyPEM}, false},
		{"issuer not signed by anchors", map[string][]byte{"ca.crt": a.TrustAnchorsPEM, "issuer.crt": b.IssuerChainPEM, "issuer.key": b.IssuerKeyPEM}, false},
		{"garbage", map[string][]byte{"ca.crt": []byte("x"), "issuer.crt": []byte("y"), "issuer.key": []byte("z")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadBundle(DefaultPaths(dir))
			if err == nil {
				t.Fatal("LoadBundle succeeded, want error")
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tt.notExist {
				t.Fatalf("errors.Is(err, fs.ErrNotExist) = %v, want %v (err: %v)", got, tt.notExist, err)
			}
			if !tt.notExist {
				// LoadOrGenerate must not overwrite partial or bad credentials.
				if _, _, err := LoadOrGenerate(DefaultPaths(dir), GenerateOptions{}); err == nil {
					t.Fatal("LoadOrGenerate replaced invalid credentials")
				}
			}
		})
	}
}

func TestPathsIn(t *testing.T) {
	p := PathsIn("/creds", "root.pem", "/abs/iss.pem", "k.pem")
	want := Paths{RootCert: "/creds/root.pem", IssuerCert: "/abs/iss.pem", IssuerKey: "/creds/k.pem"}
	if p != want {
		t.Fatalf("PathsIn = %+v, want %+v", p, want)
	}
}

func TestSign(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	b, err := GenerateBundle(GenerateOptions{Now: now, TTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://public/ns/default/app1")
	tests := []struct {
		name         string
		opts         Options
		ttl          time.Duration
		wantNotAfter time.Time
		wantSkew     time.Duration
	}{
		{"defaults", Options{}, 0, now.Add(24 * time.Hour), 15 * time.Minute},
		{"explicit short ttl", Options{}, 5 * time.Second, now.Add(5 * time.Second), 15 * time.Minute},
		{"configured ttl and skew", Options{WorkloadCertTTL: time.Hour, AllowedClockSkew: time.Minute}, 0, now.Add(time.Hour), time.Minute},
		{"no skew", Options{AllowedClockSkew: -1}, time.Minute, now.Add(time.Minute), 0},
		{"capped at issuer expiry", Options{}, 72 * time.Hour, now.Add(48 * time.Hour), 15 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Now = func() time.Time { return now }
			c, err := New(b, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			chain, err := c.Sign(newCSR(t), id, tt.ttl)
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) != 2 || !chain[1].Equal(b.IssuerChain[0]) {
				t.Fatalf("chain = %d certs, want leaf + issuer", len(chain))
			}
			leaf := chain[0]
			if !leaf.NotAfter.Equal(tt.wantNotAfter) {
				t.Errorf("NotAfter = %v, want %v", leaf.NotAfter, tt.wantNotAfter)
			}
			if want := now.Add(-tt.wantSkew); !leaf.NotBefore.Equal(want) {
				t.Errorf("NotBefore = %v, want %v", leaf.NotBefore, want)
			}
			got, err := x509svid.IDFromCert(leaf)
			if err != nil || got != id {
				t.Errorf("URI SAN = %v (%v), want %v", got, err, id)
			}
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
				t.Errorf("KeyUsage = %v", leaf.KeyUsage)
			}
			if leaf.IsCA {
				t.Error("leaf is a CA")
			}
			roots := x509.NewCertPool()
			roots.AddCert(c.ActiveRoot())
			inter := x509.NewCertPool()
			inter.AddCert(chain[1])
			for _, eku := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
					t.Errorf("leaf does not verify for %v: %v", eku, err)
				}
			}
		})
	}
}

// TestSignDNS: the DNS names the caller allows are in the leaf, which then serves TLS for them (the injector's
// webhook), and a leaf signed without them names no host.
func TestSignDNS(t *testing.T) {
	b, err := GenerateBundle(GenerateOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/dapr-system/dapr-injector")
	roots := x509.NewCertPool()
	roots.AddCert(c.ActiveRoot())
	for _, dns := range [][]string{{"dapr-sidecar-injector.dapr-system.svc"}, nil} {
		chain, err := c.Sign(newCSR(t), id, 0, dns...)
		if err != nil {
			t.Fatal(err)
		}
		inter := x509.NewCertPool()
		inter.AddCert(chain[1])
		_, err = chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "dapr-sidecar-injector.dapr-system.svc"})
		if (err == nil) != (len(dns) > 0) {
			t.Errorf("DNS names %v: verify for the injector's Service: %v", dns, err)
		}
	}
}

func TestSignAfterIssuerExpiry(t *testing.T) {
	start := time.Now().Add(-2 * time.Hour)
	b, err := GenerateBundle(GenerateOptions{Now: start, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(b, Options{Now: func() time.Time { return start.Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	c.now = time.Now
	if _, err := c.Sign(newCSR(t), spiffeid.RequireFromString("spiffe://public/ns/default/a"), 0); err == nil {
		t.Fatal("Sign with an expired issuer succeeded")
	}
}

// TestMultiRootBundle rotates a root: ca.crt holds the new and the old root,
// the issuer is still the old one's; certificates of both CAs verify
// against the same anchors.
func TestMultiRootBundle(t *testing.T) {
	oldCA, err := GenerateBundle(GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newCA, err := GenerateBundle(GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rootsPEM := append(append([]byte(nil), newCA.TrustAnchorsPEM...), oldCA.TrustAnchorsPEM...)
	dir := t.TempDir()
	for name, data := range map[string][]byte{"ca.crt": rootsPEM, "issuer.crt": oldCA.IssuerChainPEM, "issuer.key": oldCA.IssuerKeyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	loaded, err := LoadBundle(DefaultPaths(dir))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(loaded, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.TrustAnchors()); n != 2 {
		t.Fatalf("TrustAnchors = %d, want 2", n)
	}
	if !c.ActiveRoot().Equal(oldCA.TrustAnchors[0]) {
		t.Fatal("active root is not the root that signed issuer.crt")
	}
	if !bytes.Equal(c.TrustAnchorsPEM(), rootsPEM) {
		t.Fatal("TrustAnchorsPEM does not hold both roots")
	}
	cNew, err := New(newCA, Options{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	for _, r := range c.TrustAnchors() {
		roots.AddCert(r)
	}
	id := spiffeid.RequireFromString("spiffe://public/ns/default/app")
	for name, signer := range map[string]*CA{"old": c, "new": cNew} {
		chain, err := signer.Sign(newCSR(t), id, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		inter := x509.NewCertPool()
		inter.AddCert(chain[1])
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
			t.Errorf("%s CA's certificate does not verify against both anchors: %v", name, err)
		}
	}
}

func TestIssueTLS(t *testing.T) {
	b, err := GenerateBundle(GenerateOptions{TrustDomain: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := SentryID("localhost", "default")
	if err != nil {
		t.Fatal(err)
	}
	if id.String() != "spiffe://localhost/ns/default/dapr-sentry" {
		t.Fatalf("SentryID = %s", id)
	}
	cert, err := c.IssueTLS(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.Certificate) != 2 || cert.Leaf == nil {
		t.Fatalf("tls certificate has %d certs", len(cert.Certificate))
	}
	got, err := x509svid.IDFromCert(cert.Leaf)
	if err != nil || got != id {
		t.Fatalf("serving cert id = %v (%v)", got, err)
	}
}
