package bearer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tandemrun/tandem/components"
)

// issuer is a local OpenID provider: discovery document and JWKS.
type issuer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	keys []jose.JSONWebKey
}

func newIssuer(t *testing.T) *issuer {
	is := &issuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		is.mu.Lock()
		defer is.mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: is.keys})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

// publish makes pub the only key of the set, under kid.
func (is *issuer) publish(kid string, pub any, alg jose.SignatureAlgorithm) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = []jose.JSONWebKey{{Key: pub, KeyID: kid, Algorithm: string(alg), Use: "sig"}}
}

func token(t *testing.T, kid string, alg jose.SignatureAlgorithm, priv any, c jwt.Claims) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: priv}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestBearer(t *testing.T) {
	is := newIssuer(t)
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	is.publish("k1", &k1.PublicKey, jose.RS256)
	m := New(nil)().(*Middleware)
	if err := m.Init(context.Background(), components.Metadata{Properties: map[string]string{"issuer": is.srv.URL, "audience": "app"}}); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	call := func(auth string) int {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	now := time.Now()
	good := jwt.Claims{Issuer: is.srv.URL, Audience: jwt.Audience{"app"}, Expiry: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now)}
	if c := call("Bearer " + token(t, "k1", jose.RS256, k1, good)); c != http.StatusNoContent {
		t.Fatalf("valid token: %d", c)
	}
	bad := map[string]jwt.Claims{
		"audience": {Issuer: is.srv.URL, Audience: jwt.Audience{"other"}, Expiry: good.Expiry},
		"issuer":   {Issuer: "https://evil", Audience: good.Audience, Expiry: good.Expiry},
		"expired":  {Issuer: is.srv.URL, Audience: good.Audience, Expiry: jwt.NewNumericDate(now.Add(-time.Hour))},
	}
	for name, c := range bad {
		if code := call("Bearer " + token(t, "k1", jose.RS256, k1, c)); code != http.StatusUnauthorized {
			t.Errorf("%s: %d", name, code)
		}
	}
	for _, auth := range []string{"", "Basic abc", "Bearer short", "Bearer " + token(t, "k1", jose.RS256, k1, good) + "x"} {
		if code := call(auth); code != http.StatusUnauthorized {
			t.Errorf("%q: %d", auth, code)
		}
	}
	// A key rotation: a token under a new key is accepted once the set is
	// fetched again; the old key is refused.
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	is.publish("k2", &k2.PublicKey, jose.ES256)
	m.refreshMu.Lock()
	m.lastRefresh = time.Time{}
	m.refreshMu.Unlock()
	if c := call("Bearer " + token(t, "k2", jose.ES256, k2, good)); c != http.StatusNoContent {
		t.Fatalf("token under the rotated key: %d", c)
	}
	if c := call("Bearer " + token(t, "k1", jose.RS256, k1, good)); c != http.StatusUnauthorized {
		t.Fatalf("token under the retired key: %d", c)
	}
}

func TestBearerMetadata(t *testing.T) {
	for _, props := range []map[string]string{{"audience": "a"}, {"issuer": "https://x"}} {
		err := New(nil)().Init(context.Background(), components.Metadata{Properties: props})
		if !components.IsPermanent(err) {
			t.Errorf("%v: %v", props, err)
		}
	}
	// An issuer that does not answer is retried (not permanent).
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	err := New(nil)().Init(context.Background(), components.Metadata{Properties: map[string]string{"issuer": srv.URL, "audience": "a"}})
	if err == nil || components.IsPermanent(err) {
		t.Errorf("unreachable discovery: %v", err)
	}
}
