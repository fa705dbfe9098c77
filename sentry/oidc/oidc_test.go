package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tandemrun/tandem/sentry/jwtsvid"
)

func newServer(t *testing.T, o Options) *Server {
	t.Helper()
	if o.JWKS == nil {
		o.JWKS = []byte(`{"keys":[]}`)
	}
	if o.Algorithm == "" {
		o.Algorithm = "RS256"
	}
	if o.Address == "" && o.Listener == nil {
		o.Address = "127.0.0.1:0"
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.lis.Close() })
	return s
}

type result struct {
	code int
	ct   string
	doc  map[string]any
	body string
}

func do(t *testing.T, h http.Handler, method, target, host, fwd string) result {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	if host != "" {
		r.Host = host
	}
	if fwd != "" {
		r.Header.Set("X-Forwarded-Host", fwd)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := result{code: w.Code, ct: w.Header().Get("Content-Type"), body: w.Body.String()}
	if w.Code == http.StatusOK && strings.HasSuffix(target, "openid-configuration") {
		if err := json.Unmarshal(w.Body.Bytes(), &res.doc); err != nil {
			t.Fatalf("discovery body %q: %v", w.Body.String(), err)
		}
	}
	return res
}

func TestDiscoveryDerivedFromRequest(t *testing.T) {
	h := newServer(t, Options{JWKS: []byte(`{"keys":[{"kty":"RSA"}]}`)}).Handler()
	r := do(t, h, "GET", "/.well-known/openid-configuration", "localhost:9080", "")
	if r.code != 200 || r.ct != "application/json" {
		t.Fatalf("code %d content-type %q", r.code, r.ct)
	}
	want := map[string]any{
		"issuer": "http://localhost:9080", "jwks_uri": "http://localhost:9080/jwks.json",
		"response_types_supported": []any{"id_token"}, "subject_types_supported": []any{"public"},
		"id_token_signing_alg_values_supported": []any{"RS256"}, "scopes_supported": []any{"openid"},
		"claims_supported": []any{"sub", "iss", "aud", "exp", "iat", "nbf", "use"},
	}
	got, _ := json.Marshal(r.doc)
	exp, _ := json.Marshal(want)
	if string(got) != string(exp) {
		t.Errorf("doc = %s\nwant %s", got, exp)
	}
	// Without an allow list X-Forwarded-Host never reaches the document
	// (suite case sentry/oidc/hostinjection/forwarded).
	r = do(t, h, "GET", "/.well-known/openid-configuration", "localhost:9080", "attacker.example.com")
	if r.doc["issuer"] != "http://localhost:9080" || r.doc["jwks_uri"] != "http://localhost:9080/jwks.json" {
		t.Errorf("forwarded host leaked: %v", r.doc)
	}
	r = do(t, h, "GET", "/jwks.json", "localhost:9080", "")
	if r.code != 200 || r.ct != "application/json" || r.body != `{"keys":[{"kty":"RSA"}]}` {
		t.Errorf("jwks: %d %q %q", r.code, r.ct, r.body)
	}
	for _, p := range []string{"/", "/invalid-endpoint", "/.well-known/invalid", "/jwks.json/x"} {
		if r := do(t, h, "GET", p, "", ""); r.code != 404 {
			t.Errorf("GET %s = %d, want 404", p, r.code)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "HEAD"} {
		for _, p := range []string{"/jwks.json", "/.well-known/openid-configuration"} {
			if r := do(t, h, m, p, "", ""); r.code != 405 {
				t.Errorf("%s %s = %d, want 405", m, p, r.code)
			}
		}
	}
}

func TestWildcardIgnoresForwardedHost(t *testing.T) {
	h := newServer(t, Options{AllowedHosts: []string{"*"}}).Handler()
	r := do(t, h, "GET", "/.well-known/openid-configuration", "localhost:1234", "attacker.example.com")
	if r.code != 200 || r.doc["issuer"] != "http://localhost:1234" || r.doc["jwks_uri"] != "http://localhost:1234/jwks.json" {
		t.Errorf("wildcard: %d %v", r.code, r.doc)
	}
}

func TestAllowedHostsPrefixAndConfiguredURIs(t *testing.T) {
	s := newServer(t, Options{
		Issuer: "https://localhost:9443/auth", JWKSURI: "https://external.example.com/jwks", PathPrefix: "/auth/",
		AllowedHosts: []string{"localhost", "example.com", "api.example.com"},
	})
	h := s.Handler()
	const doc = "/auth/.well-known/openid-configuration"
	for _, tt := range []struct {
		host, fwd string
		code      int
	}{
		{"localhost", "", 200}, {"example.com", "", 200}, {"forbidden.com", "", 403}, {"api.example.com:8443", "", 200},
		{"forbidden.com", "example.com", 200}, {"localhost", "forbidden.com", 403},
	} {
		if r := do(t, h, "GET", doc, tt.host, tt.fwd); r.code != tt.code {
			t.Errorf("host %q fwd %q: %d, want %d", tt.host, tt.fwd, r.code, tt.code)
		}
	}
	r := do(t, h, "GET", doc, "localhost", "")
	if r.doc["issuer"] != "https://localhost:9443/auth" || r.doc["jwks_uri"] != "https://external.example.com/jwks" {
		t.Errorf("configured uris: %v", r.doc)
	}
	if r := do(t, h, "GET", "/auth/jwks.json", "localhost", ""); r.code != 200 {
		t.Errorf("prefixed jwks = %d", r.code)
	}
	if r := do(t, h, "GET", "/.well-known/openid-configuration", "localhost", ""); r.code != 404 {
		t.Errorf("unprefixed discovery = %d, want 404", r.code)
	}

	// A concrete allow list trusts X-Forwarded-Host for derived URIs; the
	// jwks_uri follows a configured issuer's host.
	h = newServer(t, Options{AllowedHosts: []string{"localhost", "proxy.example.com"}}).Handler()
	r = do(t, h, "GET", "/.well-known/openid-configuration", "localhost", "proxy.example.com")
	if r.doc["issuer"] != "http://proxy.example.com" || r.doc["jwks_uri"] != "http://proxy.example.com/jwks.json" {
		t.Errorf("forwarded: %v", r.doc)
	}
	h = newServer(t, Options{Issuer: "https://issuer.example.com/x", PathPrefix: "p"}).Handler()
	r = do(t, h, "GET", "/p/.well-known/openid-configuration", "localhost", "")
	if r.doc["jwks_uri"] != "https://issuer.example.com/p/jwks.json" {
		t.Errorf("jwks_uri from issuer: %v", r.doc)
	}
}

func TestNewRefuses(t *testing.T) {
	for name, o := range map[string]Options{
		"no jwks":      {Algorithm: "RS256"},
		"no algorithm": {JWKS: []byte("{}")},
		"cert no key":  {JWKS: []byte("{}"), Algorithm: "RS256", TLSCertFile: "c"},
		"bad issuer":   {JWKS: []byte("{}"), Algorithm: "RS256", Issuer: "://x"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	if _, err := New(Options{JWKS: []byte("{}"), Algorithm: "RS256", Address: lis.Addr().String()}); err == nil {
		t.Error("busy port accepted")
	}
}

func writeCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "oidc"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, pool
}

// TestTLSServesVerifiableTokens runs the server over HTTPS on files that
// appear only after Run started, fetches the discovery document and the
// key set as a verifier would, and verifies a token sentry's issuer signed.
func TestTLSServesVerifiableTokens(t *testing.T) {
	b, err := jwtsvid.Generate()
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := b.PublicJWKS()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	s := newServer(t, Options{JWKS: jwks, TLSCertFile: certFile, TLSKeyFile: keyFile})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if s.Ready() {
		t.Fatal("ready before the TLS files exist")
	}
	_, _, pool := writeCert(t, dir)
	deadline := time.Now().Add(5 * time.Second)
	for !s.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("not serving after the TLS files appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	_, port, _ := net.SplitHostPort(s.Addr().String())
	base := "https://localhost:" + port
	get := func(u string) []byte {
		t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d %s", u, resp.StatusCode, body)
		}
		return body
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(get(base+DiscoveryPath), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != base || doc.JWKSURI != base+"/jwks.json" {
		t.Fatalf("doc = %+v", doc)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(get(doc.JWKSURI), &set); err != nil {
		t.Fatal(err)
	}
	iss, err := jwtsvid.NewIssuer(jwtsvid.IssuerOptions{Bundle: b, Issuer: doc.Issuer})
	if err != nil {
		t.Fatal(err)
	}
	token, err := iss.Issue(spiffeid.RequireFromString("spiffe://localhost/ns/default/app"), []string{"localhost", "bank"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	if err := tok.Claims(set, &c); err != nil {
		t.Fatalf("token does not verify against the served key set: %v", err)
	}
	if err := c.Validate(jwt.Expected{Issuer: base, AnyAudience: jwt.Audience{"bank"}, Subject: "spiffe://localhost/ns/default/app"}); err != nil {
		t.Fatal(err)
	}

	// A replaced certificate is served at the next handshake.
	time.Sleep(10 * time.Millisecond) // a different modification time
	_, _, pool2 := writeCert(t, dir)
	client2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool2, MinVersion: tls.VersionTLS12}}, Timeout: 5 * time.Second}
	defer client2.CloseIdleConnections()
	resp, err := client2.Get(base + JWKSPath)
	if err != nil {
		t.Fatalf("renewed certificate not served: %v", err)
	}
	resp.Body.Close()
}

func FuzzDiscoveryHosts(f *testing.F) {
	for _, s := range [][2]string{{"localhost:9080", ""}, {"example.com", "attacker.example.com"}, {"[::1]:80", "a/b"}, {"x@y", "%zz"}} {
		f.Add(s[0], s[1], false)
		f.Add(s[0], s[1], true)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer lis.Close()
	open, err := New(Options{JWKS: []byte("{}"), Algorithm: "RS256", Listener: lis})
	if err != nil {
		f.Fatal(err)
	}
	listed, err := New(Options{JWKS: []byte("{}"), Algorithm: "RS256", Listener: lis, AllowedHosts: []string{"example.com", "proxy"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, host, fwd string, withList bool) {
		s := open
		if withList {
			s = listed
		}
		r := httptest.NewRequest("GET", "/.well-known/openid-configuration", nil)
		r.Host = host
		if fwd != "" {
			r.Header.Set("X-Forwarded-Host", fwd)
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != 200 {
			return
		}
		var doc discovery
		if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
			t.Fatalf("invalid document %q: %v", w.Body.String(), err)
		}
		effective := host
		if withList && fwd != "" {
			effective = fwd
		}
		if doc.Issuer != "http://"+effective {
			t.Fatalf("issuer %q for host %q forwarded %q", doc.Issuer, host, fwd)
		}
		if !strings.HasPrefix(doc.JWKSURI, "http://") || !strings.HasSuffix(doc.JWKSURI, JWKSPath) {
			t.Fatalf("jwks_uri %q", doc.JWKSURI)
		}
	})
}

func TestSetKeys(t *testing.T) {
	s := newServer(t, Options{JWKS: []byte(`{"keys":["a"]}`)})
	s.SetKeys([]byte(`{"keys":["b"]}`), "ES256")
	s.SetKeys(nil, "RS256") // ignored
	h := s.Handler()
	if r := do(t, h, "GET", "/jwks.json", "", ""); r.body != `{"keys":["b"]}` {
		t.Errorf("jwks after SetKeys = %s", r.body)
	}
	r := do(t, h, "GET", "/.well-known/openid-configuration", "localhost", "")
	if algs, _ := r.doc["id_token_signing_alg_values_supported"].([]any); len(algs) != 1 || algs[0] != "ES256" {
		t.Errorf("algorithms after SetKeys = %v", r.doc["id_token_signing_alg_values_supported"])
	}
}
