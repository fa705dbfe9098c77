package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestAuthMiddlewares runs routerchecker and bearer (against a local OpenID
// provider whose key is rotated) in the API pipeline, and
// oauth2clientcredentials (against a local token server) in the app
// pipeline of a real sidecar.
func TestAuthMiddlewares(t *testing.T) {
	var mu sync.Mutex
	var keys []jose.JSONWebKey
	var tokens int
	mux := http.NewServeMux()
	idp := httptest.NewServer(mux)
	defer idp.Close()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": idp.URL, "jwks_uri": idp.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: keys})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "sidecar" || secret != "s3cret" {
			http.Error(w, "bad client", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		tokens++
		n := tokens
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("app-token-%d", n), "token_type": "Bearer", "expires_in": 3600})
	})
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	keys = []jose.JSONWebKey{{Key: &k1.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}
	sign := func(kid string, alg jose.SignatureAlgorithm, priv any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: priv}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := jwt.Signed(s).Claims(jwt.Claims{Issuer: idp.URL, Audience: jwt.Audience{"orders"}, Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + raw
	}

	registry := filepath.Join(t.TempDir(), "r.db")
	resources := t.TempDir()
	cfg := framework.WriteConfig(t, registry, `  httpPipeline:
    handlers:
    - {name: checker, type: middleware.http.routerchecker}
    - {name: jwt, type: middleware.http.bearer}
  appHttpPipeline:
    handlers:
    - {name: oauth, type: middleware.http.oauth2clientcredentials}
`)
	writeAtomic(t, filepath.Join(resources, "auth.yaml"), fmt.Appendf(nil, `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: checker
spec:
  type: middleware.http.routerchecker
  version: v1
  metadata:
  - name: rule
    value: "^/v1.0/(healthz.*|invoke/[a-z]+/method/[a-z]+)$"
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: jwt
spec:
  type: middleware.http.bearer
  version: v1
  metadata:
  - name: issuer
    value: %q
  - name: audience
    value: orders
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: oauth
spec:
  type: middleware.http.oauth2clientcredentials
  version: v1
  metadata:
  - name: clientID
    value: sidecar
  - name: clientSecret
    value: s3cret
  - name: scopes
    value: app
  - name: tokenURL
    value: %q
  - name: headerName
    value: X-Test-Header
  - name: authStyle
    value: "2"
`, idp.URL, idp.URL+"/token"))
	app := framework.StartApp(t, "auth app", bins.Echo)
	// Health checks need a token too (the API pipeline covers them, as in
	// daprd): wait for the first authorised call instead.
	sc := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "orders", AppPort: app.Port, ResourcesDir: resources, Args: []string{"--config", cfg}, NoWait: true})
	url := sc.HTTPURL() + "/v1.0/invoke/orders/method/echo"
	good := map[string]string{"Authorization": sign("k1", jose.RS256, k1)}
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := doMaybe(url, good)
		if code == 200 {
			break
		}
		if exited, _ := sc.Exited(); exited || time.Now().After(deadline) {
			t.Fatalf("authorised call: %d %s\n%s", code, body, sc.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}

	resp, _ := do(t, "POST", url, nil, good)
	if got := resp.Header.Get("X-Echo-Header"); got != "Bearer app-token-1" {
		t.Errorf("the app got %q from oauth2clientcredentials, want the cached first token", got)
	}
	if resp, _ := do(t, "POST", url, nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	if resp, b := do(t, "POST", sc.HTTPURL()+"/v1.0/invoke/orders/method/x1", nil, good); resp.StatusCode != http.StatusBadRequest || string(b) != "invalid router" {
		t.Errorf("path outside the rule: %d %q", resp.StatusCode, b)
	}

	// Rotate the key: a token under the new one is accepted without a
	// restart, the old key no longer.
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mu.Lock()
	keys = []jose.JSONWebKey{{Key: &k2.PublicKey, KeyID: "k2", Algorithm: "ES256", Use: "sig"}}
	mu.Unlock()
	rotated := map[string]string{"Authorization": sign("k2", jose.ES256, k2)}
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, body := doMaybe(url, rotated)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token under the rotated key: %d %s", code, body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if resp, _ := do(t, "POST", url, nil, good); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token under the retired key: %d", resp.StatusCode)
	}
}
