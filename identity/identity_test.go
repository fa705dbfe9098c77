package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func TestAppIDRoundTrip(t *testing.T) {
	tests := []struct {
		td, ns, app string
		wantErr     bool
	}{
		{"public", "default", "orders", false},
		{"example.org", "prod", "checkout-v2", false},
		{"public", "", "orders", true},
		{"public", "default", "", true},
		{"Not A Domain", "default", "x", true},
		{"public", "default", "a/b", true},
	}
	for _, tt := range tests {
		id, err := AppID(tt.td, tt.ns, tt.app)
		if (err != nil) != tt.wantErr {
			t.Fatalf("AppID(%q,%q,%q) err = %v, wantErr %v", tt.td, tt.ns, tt.app, err, tt.wantErr)
		}
		if err != nil {
			continue
		}
		got, err := ParseApp(id)
		if err != nil {
			t.Fatalf("ParseApp(%s): %v", id, err)
		}
		want := App{TrustDomain: tt.td, Namespace: tt.ns, AppID: tt.app}
		if got != want || got.String() != id.String() {
			t.Fatalf("ParseApp(%s) = %+v (%s), want %+v", id, got, got.String(), want)
		}
	}
}

func TestParseAppRejectsOtherShapes(t *testing.T) {
	for _, s := range []string{"spiffe://public/orders", "spiffe://public/ns/default", "spiffe://public/ns/default/a/b", "spiffe://public/x/default/a"} {
		id := spiffeid.RequireFromString(s)
		if _, err := ParseApp(id); err == nil {
			t.Errorf("ParseApp(%s) succeeded, want error", s)
		}
	}
}

func TestRenewalTimeIsHalfOfRemainingLifetime(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got, want := RenewalTime(now, now.Add(24*time.Hour)), now.Add(12*time.Hour); !got.Equal(want) {
		t.Fatalf("RenewalTime = %v, want %v", got, want)
	}
	if got, want := RenewalTime(now, now.Add(4*time.Second)), now.Add(2*time.Second); !got.Equal(want) {
		t.Fatalf("RenewalTime = %v, want %v", got, want)
	}
}

// testCA is a throwaway root that signs SVIDs, standing in for sentry.
type testCA struct {
	cert  *x509.Certificate
	key   *ecdsa.PrivateKey
	ttl   time.Duration
	calls atomic.Int64
	fail  atomic.Bool
	// issueFor, if set, is the SPIFFE ID put in certificates instead of
	// the requested one (a sentry with its own trust domain, or a bad one).
	issueFor string
	// jwtAudience, if set, gets a JWT SVID with every certificate.
	jwtAudience string
}

func newTestCA(t *testing.T, ttl time.Duration) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, ttl: ttl}
}

func (ca *testCA) Issue(_ context.Context, id spiffeid.ID, csrDER []byte) (*Issued, error) {
	n := ca.calls.Add(1)
	if ca.fail.Load() {
		return nil, errors.New("ca down")
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, err
	}
	if len(csr.URIs) != 1 || csr.URIs[0].String() != id.String() {
		return nil, errors.New("csr does not name the id")
	}
	uris := csr.URIs
	if ca.issueFor != "" {
		u, err := url.Parse(ca.issueFor)
		if err != nil {
			return nil, err
		}
		uris = []*url.URL{u}
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(n + 1),
		NotBefore:    time.Now().Add(-15 * time.Minute),
		NotAfter:     time.Now().Add(ca.ttl),
		URIs:         uris,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	leaf, _ := x509.ParseCertificate(der)
	var jwts map[string]string
	if ca.jwtAudience != "" {
		jwts = map[string]string{ca.jwtAudience: fmt.Sprintf("jwt-%d", n)}
	}
	return &Issued{Chain: []*x509.Certificate{leaf}, TrustAnchors: []*x509.Certificate{ca.cert}, ValidUntil: leaf.NotAfter, JWTs: jwts}, nil
}

func newRotator(t *testing.T, ca *testCA, app string) (*Rotator, *Source) {
	t.Helper()
	id, err := AppID("public", "default", app)
	if err != nil {
		t.Fatal(err)
	}
	src := NewSource()
	return &Rotator{ID: id, Issuer: ca, Source: src, RetryInterval: 50 * time.Millisecond}, src
}

// The JWT SVIDs issued with a certificate are served by audience and
// replaced at every renewal; an audience not asked for is an error that
// names the flag.
func TestSourceJWTFollowsRenewals(t *testing.T) {
	ca := newTestCA(t, time.Hour)
	ca.jwtAudience = "mcp://server"
	r, src := newRotator(t, ca, "app")
	if _, err := src.JWT("mcp://server"); !errors.Is(err, ErrNoSVID) {
		t.Fatalf("JWT before the first SVID: %v, want ErrNoSVID", err)
	}
	for want := 1; want <= 2; want++ {
		if _, err := r.Renew(context.Background()); err != nil {
			t.Fatal(err)
		}
		tok, err := src.JWT("mcp://server")
		if err != nil || tok != fmt.Sprintf("jwt-%d", want) {
			t.Fatalf("after renewal %d: %q, %v", want, tok, err)
		}
	}
	if _, err := src.JWT("other"); err == nil || !strings.Contains(err.Error(), "--sentry-request-jwt-audiences") {
		t.Fatalf("unknown audience: %v", err)
	}
}

func TestSourceEmptyFailsClearly(t *testing.T) {
	src := NewSource()
	if _, err := src.GetX509SVID(); !errors.Is(err, ErrNoSVID) {
		t.Fatalf("GetX509SVID on empty source = %v, want ErrNoSVID", err)
	}
	if _, err := src.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("public")); err == nil {
		t.Fatal("bundle from empty source: want error")
	}
}

// TestMTLSAndRotationKeepsConnections checks that two sources handshake, that
// the server sees the client's SPIFFE ID, and that a rotation neither breaks
// an open connection nor stops new handshakes, which then use the new cert.
func TestMTLSAndRotationKeepsConnections(t *testing.T) {
	ca := newTestCA(t, 2*time.Second)
	srvRot, srvSrc := newRotator(t, ca, "server")
	cliRot, cliSrc := newRotator(t, ca, "client")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var next [2]time.Time
	var err error
	if next[0], err = srvRot.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if next[1], err = cliRot.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	// NotAfter is kept to whole seconds, so the 2s certificate has 1-2s
	// left when issued and its renewal is 0.5-1s away, less the time spent
	// since (this flaked at the exact lower bound).
	if d := time.Until(next[0]); d > 1100*time.Millisecond || d < 250*time.Millisecond {
		t.Fatalf("next renewal in %v, want about 1s (half of 2s)", d)
	}
	var wg sync.WaitGroup
	for i, r := range []*Rotator{srvRot, cliRot} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Run(ctx, next[i]) }()
	}
	td := spiffeid.RequireTrustDomainFromString("public")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerTLS(srvSrc, SameTrustDomain(td)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peers := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					peers <- "handshake error: " + err.Error()
					return
				}
				id, err := PeerID(tc.ConnectionState())
				if err != nil {
					peers <- "peer id error: " + err.Error()
					return
				}
				peers <- id.String()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	dial := func() *tls.Conn {
		c, err := tls.Dial("tcp", ln.Addr().String(), ClientTLS(cliSrc, SameTrustDomain(td)))
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		return c
	}
	first := dial()
	defer first.Close()
	if got := <-peers; got != "spiffe://public/ns/default/client" {
		t.Fatalf("server saw %q", got)
	}
	serial := first.ConnectionState().PeerCertificates[0].SerialNumber
	// Wait for at least two rotations of each side (renewal every ~1 s).
	deadline := time.Now().Add(5 * time.Second)
	for ca.calls.Load() < 6 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if ca.calls.Load() < 6 {
		t.Fatalf("only %d issuances in 5s, want rotations", ca.calls.Load())
	}
	// The first connection still works.
	if _, err := first.Write([]byte("ping")); err != nil {
		t.Fatalf("write on old connection after rotation: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(first, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read on old connection after rotation: %q %v", buf, err)
	}
	second := dial()
	defer second.Close()
	<-peers
	if second.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(serial) == 0 {
		t.Fatal("new connection still uses the first server certificate")
	}
	cancel()
	wg.Wait()
}

func TestClientFromOtherTrustDomainRefused(t *testing.T) {
	ca := newTestCA(t, time.Hour)
	srvRot, srvSrc := newRotator(t, ca, "server")
	if _, err := srvRot.Renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	otherID := spiffeid.RequireFromString("spiffe://evil.example/ns/default/client")
	cliSrc := NewSource()
	cliRot := &Rotator{ID: otherID, Issuer: ca, Source: cliSrc}
	if _, err := cliRot.Renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	public := spiffeid.RequireTrustDomainFromString("public")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerTLS(srvSrc, SameTrustDomain(public)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, ClientTLS(cliSrc, tlsconfigAny()))
	defer tc.Close()
	err = tc.Handshake()
	if err == nil {
		// TLS 1.3: the server's verdict arrives with the first read.
		_, err = tc.Read(make([]byte, 1))
	}
	if err == nil {
		t.Fatal("client from another trust domain was accepted")
	}
}

// TestRotatorUsesEd25519 pins daprd's workload key type: peers (and Dapr's
// mtls/servingcerted case) see an Ed25519 certificate on the internal port.
func TestRotatorUsesEd25519(t *testing.T) {
	ca := newTestCA(t, time.Hour)
	r, src := newRotator(t, ca, "app")
	if _, err := r.Renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	svid, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := svid.PrivateKey.(ed25519.PrivateKey); !ok {
		t.Fatalf("workload key is %T, want ed25519.PrivateKey", svid.PrivateKey)
	}
	if got := svid.Certificates[0].PublicKeyAlgorithm; got != x509.Ed25519 {
		t.Fatalf("certificate key algorithm = %v, want Ed25519", got)
	}
}

func TestRotatorRetriesAfterFailure(t *testing.T) {
	ca := newTestCA(t, time.Hour)
	r, src := newRotator(t, ca, "app")
	if _, err := r.Renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	before, _ := src.GetX509SVID()
	ca.fail.Store(true)
	var failures atomic.Int64
	r.OnFailure = func(error) { failures.Add(1) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx, time.Now()) }()
	deadline := time.Now().Add(3 * time.Second)
	for failures.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if failures.Load() < 3 {
		t.Fatalf("failures = %d, want retries every 50ms", failures.Load())
	}
	if cur, _ := src.GetX509SVID(); cur != before {
		t.Fatal("failed renewal replaced the SVID")
	}
	ca.fail.Store(false)
	deadline = time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if cur, _ := src.GetX509SVID(); cur != before {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if cur, _ := src.GetX509SVID(); cur == before {
		t.Fatal("renewal did not succeed once the CA came back")
	}
	cancel()
	<-done
}

// TestRotatorTakesSentrysTrustDomain: sentry decides the trust domain of
// the certificate (daprd takes what it issues); a certificate for another
// app is refused.
func TestRotatorTakesSentrysTrustDomain(t *testing.T) {
	for _, tc := range []struct {
		name, issueFor string
		wantID         string // empty: refused
	}{
		{"requested", "", "spiffe://public/ns/default/app"},
		{"sentry's trust domain", "spiffe://localhost/ns/default/app", "spiffe://localhost/ns/default/app"},
		{"other app", "spiffe://public/ns/default/other", ""},
		{"other namespace", "spiffe://public/ns/prod/app", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := newTestCA(t, time.Hour)
			ca.issueFor = tc.issueFor
			r, src := newRotator(t, ca, "app")
			_, err := r.Renew(context.Background())
			if tc.wantID == "" {
				if err == nil {
					t.Fatal("certificate for another identity accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			svid, err := src.GetX509SVID()
			if err != nil {
				t.Fatal(err)
			}
			if svid.ID.String() != tc.wantID {
				t.Fatalf("SVID %s, want %s", svid.ID, tc.wantID)
			}
		})
	}
}
