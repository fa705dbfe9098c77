package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/tandemrun/tandem/internal/syncbuf"
	"github.com/tandemrun/tandem/sentry/client"
	"github.com/tandemrun/tandem/sentry/jwtsvid"
)

// TestJWTAndOIDC runs sentry as Dapr's suite does with --jwt-enabled and
// --oidc-enabled (plain HTTP) on an empty credentials folder: it generates
// jwt.key and jwks.json beside the CA files, answers healthz only once the
// OIDC server serves, and the JWT of a signed certificate verifies against
// the key set the discovery document points to. A second start reuses the
// stored key.
func TestJWTAndOIDC(t *testing.T) {
	creds := t.TempDir()
	start := func() (listening map[string]any, stop func()) {
		t.Helper()
		out := &syncbuf.Buffer{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		args := []string{"-issuer-credentials=" + creds, "-listen-address=127.0.0.1", "-port=0",
			"-healthz-listen-address=127.0.0.1", "-healthz-port=0", "-enable-metrics=false", "-log-as-json",
			"-jwt-enabled=true", "-jwt-ttl=2h0m0s", "-oidc-enabled=true", "-oidc-server-listen-address=127.0.0.1",
			"-oidc-server-listen-port=0", "-oidc-server-tls-enabled=false", "-oidc-path-prefix=/auth",
			"-issuer-credentials-reload-interval=50ms"}
		go func() { done <- run(ctx, args, out, out, func(string) string { return "" }) }()
		deadline := time.Now().Add(20 * time.Second)
		for listening == nil {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("sentry did not start:\n%s", out.String())
			}
			sc := bufio.NewScanner(strings.NewReader(out.String()))
			for sc.Scan() {
				var m map[string]any
				if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "sentry listening" {
					listening = m
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		return listening, func() {
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("sentry exited %d:\n%s", code, out.String())
			}
		}
	}
	listening, stop := start()
	for _, f := range []string{"jwt.key", "jwks.json", "ca.crt"} {
		if _, err := os.Stat(filepath.Join(creds, f)); err != nil {
			t.Fatalf("%s not written: %v", f, err)
		}
	}
	healthz := "http://" + listening["healthz_address"].(string) + "/healthz"
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(healthz)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("healthz never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	oidcAddr := listening["oidc_address"].(string)
	_, port, _ := net.SplitHostPort(oidcAddr)
	base := "http://localhost:" + port
	var doc struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	getJSON(t, base+"/auth/.well-known/openid-configuration", &doc)
	if doc.Issuer != base || doc.JWKSURI != base+"/auth/jwks.json" || len(doc.Algs) != 1 || doc.Algs[0] != "RS256" {
		t.Fatalf("discovery = %+v", doc)
	}
	var set jose.JSONWebKeySet
	getJSON(t, doc.JWKSURI, &set)

	// A Dapr-style request (insecure validator: no token file, no Configuration).
	rootPEM, err := os.ReadFile(filepath.Join(creds, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	anchors, err := client.ParseTrustAnchors(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	sentryID := spiffeid.RequireFromString(listening["sentry_spiffe_id"].(string))
	conn, err := grpc.NewClient(listening["grpc_address"].(string), grpc.WithTransportCredentials(credentials.NewTLS(
		tlsconfig.TLSClientConfig(x509bundle.FromX509Authorities(sentryID.TrustDomain(), anchors), tlsconfig.AuthorizeID(sentryID)))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	resp, err := sentryv1.NewCAClient(conn).SignCertificate(context.Background(), &sentryv1.SignCertificateRequest{
		Id: "orders", Namespace: "default", TrustDomain: "localhost",
		CertificateSigningRequest: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
		TokenValidator:            sentryv1.SignCertificateRequest_INSECURE, JwtAudiences: []string{"api"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseSigned(resp.GetJwt().GetValue(), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	if err := tok.Claims(set, &c); err != nil {
		t.Fatalf("jwt does not verify against the served key set: %v", err)
	}
	if err := c.Validate(jwt.Expected{Subject: "spiffe://localhost/ns/default/orders", AnyAudience: jwt.Audience{"api"}}); err != nil {
		t.Fatal(err)
	}
	if left := time.Until(c.Expiry.Time()); left < 119*time.Minute || left > 2*time.Hour {
		t.Fatalf("jwt valid for %v, want 2h (--jwt-ttl)", left)
	}
	if len(resp.GetPerAudienceJwts()) != 2 {
		t.Fatalf("per_audience_jwts = %d entries, want 2", len(resp.GetPerAudienceJwts()))
	}

	// Key rotation on disk, without a restart: the new public key joins
	// the set, then the new key signs.
	next, err := jwtsvid.Generate()
	if err != nil {
		t.Fatal(err)
	}
	both, _ := json.Marshal(jose.JSONWebKeySet{Keys: append(append([]jose.JSONWebKey{}, set.Keys...), next.JWKS.Keys...)})
	if err := os.WriteFile(filepath.Join(creds, "jwks.json"), both, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not reloaded", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("new key set", func() bool {
		var s jose.JSONWebKeySet
		getJSON(t, doc.JWKSURI, &s)
		return len(s.Keys) == 2
	})
	if err := os.WriteFile(filepath.Join(creds, "jwt.key"), next.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor("new signing key", func() bool {
		resp, err := sentryv1.NewCAClient(conn).SignCertificate(context.Background(), &sentryv1.SignCertificateRequest{
			Id: "orders", Namespace: "default", TrustDomain: "localhost",
			CertificateSigningRequest: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			TokenValidator:            sentryv1.SignCertificateRequest_INSECURE,
		})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.ParseSigned(resp.GetJwt().GetValue(), []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatal(err)
		}
		return tok.Headers[0].KeyID == next.JWKS.Keys[0].KeyID
	})
	stop()
	set = jose.JSONWebKeySet{Keys: next.JWKS.Keys}

	keyBefore, _ := os.ReadFile(filepath.Join(creds, "jwt.key"))
	listening, stop = start()
	defer stop()
	keyAfter, _ := os.ReadFile(filepath.Join(creds, "jwt.key"))
	if string(keyBefore) != string(keyAfter) {
		t.Fatal("the stored jwt key was replaced on restart")
	}
	var set2 jose.JSONWebKeySet
	_, port, _ = net.SplitHostPort(listening["oidc_address"].(string))
	for time.Now().Before(deadline.Add(10 * time.Second)) {
		if r, err := http.Get("http://127.0.0.1:" + port + "/auth/jwks.json"); err == nil {
			r.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	getJSON(t, "http://127.0.0.1:"+port+"/auth/jwks.json", &set2)
	if len(set2.Keys) != 2 || set2.Keys[1].KeyID != set.Keys[0].KeyID {
		t.Fatal("the restarted sentry serves another key set")
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s = %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
