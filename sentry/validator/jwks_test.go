package validator

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const testAudience = "spiffe://localhost/ns/default/dapr-sentry"

// jwksKey is a signing key and the key set that publishes it.
type jwksKey struct {
	signer jose.Signer
	set    []byte
}

func newJWKSKey(t *testing.T, kid string) jwksKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: kid, Algorithm: string(jose.EdDSA)}}})
	if err != nil {
		t.Fatal(err)
	}
	return jwksKey{signer: signer, set: set}
}

func (k jwksKey) token(t *testing.T, edit func(*jwt.Claims)) string {
	t.Helper()
	now := time.Now()
	c := jwt.Claims{Audience: jwt.Audience{testAudience}, Subject: "spiffe://public/ns/default/myapp",
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Hour))}
	if edit != nil {
		edit(&c)
	}
	s, err := jwt.Signed(k.signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func jwksRequest(token string) *sentryv1.SignCertificateRequest {
	return &sentryv1.SignCertificateRequest{Id: "myapp", Namespace: "default", CertificateSigningRequest: []byte("csr"),
		TokenValidator: sentryv1.SignCertificateRequest_JWKS, Token: token}
}

func TestJWKS(t *testing.T) {
	key := newJWKSKey(t, "mykey")
	v, err := NewJWKS(JWKSOptions{Source: string(key.set), Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	id, err := v.Validate(t.Context(), jwksRequest(key.token(t, nil)))
	if err != nil || id.String() != "spiffe://public/ns/default/myapp" {
		t.Fatalf("a good token: %v, %v", id, err)
	}
	hour := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name, token, want string
	}{
		{"no token", "", "does not contain a token"},
		{"not a JWT", "abc", "token validation failed"},
		{"another audience", key.token(t, func(c *jwt.Claims) { c.Audience = jwt.Audience{"invalid"} }), `"aud"`},
		{"another subject", key.token(t, func(c *jwt.Claims) { c.Subject = "invalid" }), `"sub"`},
		{"expired", key.token(t, func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(-time.Hour)) }), `"exp"`},
		{"not valid yet", key.token(t, func(c *jwt.Claims) { c.NotBefore = jwt.NewNumericDate(hour) }), `"nbf"`},
		{"signed by another key", newJWKSKey(t, "mykey").token(t, nil), "could not verify message"},
		{"a key the set lacks", newJWKSKey(t, "other").token(t, nil), "could not verify message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Validate(t.Context(), jwksRequest(tc.token))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %s", err, tc.want)
			}
		})
	}
}

// TestJWKSSources: the key set may be a file or an https URL verified with
// caCertificate; a source that cannot be read leaves the validator not
// ready, and a key new at the source is read again.
func TestJWKSSources(t *testing.T) {
	key := newJWKSKey(t, "mykey")
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, key.set, 0o600); err != nil {
		t.Fatal(err)
	}
	fv, err := NewJWKS(JWKSOptions{Source: file, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fv.Validate(t.Context(), jwksRequest(key.token(t, nil))); err != nil {
		t.Fatalf("file source: %v", err)
	}

	var served atomic.Pointer[[]byte]
	served.Store(&key.set)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(*served.Load()) }))
	defer srv.Close()
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	uv, err := NewJWKS(JWKSOptions{Source: srv.URL, CACertificate: caPEM, Audience: testAudience, MinRefreshInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uv.Validate(t.Context(), jwksRequest(key.token(t, nil))); err != nil {
		t.Fatalf("https source: %v", err)
	}
	rotated := newJWKSKey(t, "next")
	served.Store(&rotated.set)
	if _, err := uv.Validate(t.Context(), jwksRequest(rotated.token(t, nil))); err != nil {
		t.Fatalf("a key added at the source: %v", err)
	}

	untrusted, err := NewJWKS(JWKSOptions{Source: srv.URL, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := untrusted.Validate(t.Context(), jwksRequest(key.token(t, nil))); err == nil || !strings.Contains(err.Error(), "not ready") {
		t.Fatalf("a source whose certificate is not trusted: %v", err)
	}
	if _, err := NewJWKS(JWKSOptions{Source: `{"keys":[]}`, Audience: testAudience}); err == nil {
		t.Fatal("an empty inline key set was accepted")
	}
}
