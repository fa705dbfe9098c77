package jwtsvid

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var allAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

func mustGenerate(t testing.TB) *Bundle {
	t.Helper()
	b, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verify checks token against the served (public) key set and returns its
// claims and header.
func verify(t *testing.T, b *Bundle, token string) (Claims, jose.Header) {
	t.Helper()
	served, err := b.PublicJWKS()
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(served, &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Fatal("served jwks holds a private key")
		}
	}
	tok, err := jwt.ParseSigned(token, allAlgs)
	if err != nil {
		t.Fatal(err)
	}
	var c Claims
	if err := tok.Claims(set, &c); err != nil {
		t.Fatalf("token does not verify against the served jwks: %v", err)
	}
	return c, tok.Headers[0]
}

func TestGenerateIssueVerify(t *testing.T) {
	b := mustGenerate(t)
	if _, ok := b.Key.(*rsa.PrivateKey); !ok || !strings.Contains(string(b.KeyPEM), "BEGIN PRIVATE KEY") {
		t.Fatalf("generated key %T / %q, want RSA in PKCS#8", b.Key, b.KeyPEM[:30])
	}
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(b.JWKSJSON, &raw); err != nil || len(raw.Keys) != 1 {
		t.Fatalf("jwks %s: %v", b.JWKSJSON, err)
	}
	thumb, _ := Thumbprint(b.Key.Public())
	k := raw.Keys[0]
	if k["kty"] != "RSA" || k["use"] != "sig" || k["alg"] != "RS256" || k["kid"] != thumb || k["n"] == nil || k["e"] != "AQAB" || k["d"] != nil {
		t.Fatalf("generated jwks key = %v", k)
	}
	if _, err := base64.StdEncoding.DecodeString(thumb); err != nil || len(thumb) != 44 {
		t.Fatalf("kid %q is not standard base64 of a SHA-256", thumb)
	}

	now := time.Unix(1_800_000_000, 0)
	iss, err := NewIssuer(IssuerOptions{Bundle: b, Issuer: "https://sentry.example", TTL: 2 * time.Hour, AllowedClockSkew: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://localhost/ns/default/orders")
	token, err := iss.Issue(id, []string{"localhost", "api"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, h := verify(t, b, token)
	if h.KeyID != thumb || h.Algorithm != "RS256" || h.ExtraHeaders["typ"] != "JWT" {
		t.Errorf("header = kid %q alg %q typ %v", h.KeyID, h.Algorithm, h.ExtraHeaders["typ"])
	}
	if c.Subject != id.String() || strings.Join(c.Audience, ",") != "localhost,api" || c.Use != "sig" || c.Issuer != "https://sentry.example" ||
		c.IssuedAt != now.Unix() || c.NotBefore != now.Add(-time.Minute).Unix() || c.Expiry != now.Add(2*time.Hour).Unix() || len(c.ID) != 32 {
		t.Errorf("claims = %+v", c)
	}

	// One audience is still an array; no issuer means no iss claim.
	iss2, err := NewIssuer(IssuerOptions{Bundle: b, KeyID: "custom"})
	if err != nil {
		t.Fatal(err)
	}
	token, err = iss2.Issue(id, []string{"localhost"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["aud"].([]any); !ok {
		t.Errorf("aud = %#v, want an array", m["aud"])
	}
	if _, ok := m["iss"]; ok {
		t.Errorf("iss present without an issuer: %v", m["iss"])
	}
	tok, _ := jwt.ParseSigned(token, allAlgs)
	if tok.Headers[0].KeyID != "custom" {
		t.Errorf("kid = %q, want the configured one", tok.Headers[0].KeyID)
	}
	if exp, iat := int64(m["exp"].(float64)), int64(m["iat"].(float64)); exp-iat != 60 {
		t.Errorf("exp - iat = %d, want 60", exp-iat)
	}

	if _, err := iss.Issue(spiffeid.ID{}, []string{"a"}, 0); err == nil {
		t.Error("issued for an empty id")
	}
	if _, err := iss.Issue(id, nil, 0); err == nil {
		t.Error("issued without audience")
	}
}

func TestAlgorithms(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(ec)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ec.Public(), KeyID: "ec", Use: "sig"}}}
	js, _ := json.Marshal(set)
	b, err := Parse(keyPEM, js, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		alg string
		ok  bool
	}{{"ES256", true}, {"ES384", false}, {"RS256", false}, {"EdDSA", false}, {"HS256", false}} {
		iss, err := NewIssuer(IssuerOptions{Bundle: b, Algorithm: tt.alg, KeyID: "ec"})
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok %v", tt.alg, err, tt.ok)
			continue
		}
		if !tt.ok {
			continue
		}
		token, err := iss.Issue(spiffeid.RequireFromString("spiffe://td/ns/a/b"), []string{"td"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		verify(t, b, token)
	}
	if _, err := NewIssuer(IssuerOptions{Bundle: mustGenerate(t), Algorithm: "ES256"}); err == nil {
		t.Error("RSA key accepted for ES256")
	}
}

func TestParseChecksTheSet(t *testing.T) {
	b := mustGenerate(t)
	other := mustGenerate(t)
	withKid := func(kid string, key any, use string) []byte {
		js, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: kid, Use: use, Algorithm: "RS256"}}})
		return js
	}
	for _, tt := range []struct {
		name  string
		jwks  []byte
		kid   string
		okMsg string // "" = must fail
	}{
		{"generated", b.JWKSJSON, "", "ok"},
		{"empty file", []byte{}, "", ""},
		{"empty set", []byte(`{"keys":[]}`), "", ""},
		{"not json", []byte(`keys`), "", ""},
		{"other key", other.JWKSJSON, "", ""},
		{"key for encryption", withKid("x", b.Key.Public(), "enc"), "", ""},
		{"matching key, any kid", withKid("whatever", b.Key.Public(), "sig"), "", "ok"},
		{"user kid present", withKid("user-kid", b.Key.Public(), "sig"), "user-kid", "ok"},
		{"user kid absent", withKid("whatever", b.Key.Public(), "sig"), "user-kid", ""},
		{"user kid on another key", withKid("user-kid", other.Key.Public(), "sig"), "user-kid", ""},
	} {
		_, err := Parse(b.KeyPEM, tt.jwks, tt.kid)
		if (err == nil) != (tt.okMsg != "") {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
	if _, err := Parse([]byte("not a key"), b.JWKSJSON, ""); err == nil {
		t.Error("accepted a bad key")
	}
}

func TestPublicJWKSDropsPrivateParts(t *testing.T) {
	b := mustGenerate(t)
	js, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: b.Key, Use: "sig"}}}) // the private key, by mistake
	pb, err := Parse(b.KeyPEM, js, "")
	if err != nil {
		t.Fatal(err)
	}
	served, err := pb.PublicJWKS()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(served), `"d"`) || strings.Contains(string(served), `"p"`) {
		t.Fatalf("served jwks has private fields: %s", served)
	}
}

func TestLoadOrGenerate(t *testing.T) {
	dir := t.TempDir()
	p := PathsIn(dir, "", "")
	if p.Key != filepath.Join(dir, "jwt.key") || p.JWKS != filepath.Join(dir, "jwks.json") {
		t.Fatalf("paths = %+v", p)
	}
	if abs := PathsIn(dir, "/etc/k", "j.json"); abs.Key != "/etc/k" || abs.JWKS != filepath.Join(dir, "j.json") {
		t.Fatalf("paths = %+v", abs)
	}
	if _, err := Load(p, ""); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of nothing: %v", err)
	}
	b, generated, err := LoadOrGenerate(p, "")
	if err != nil || !generated {
		t.Fatalf("generated %v, %v", generated, err)
	}
	if st, err := os.Stat(p.Key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	again, generated, err := LoadOrGenerate(p, "")
	if err != nil || generated || string(again.KeyPEM) != string(b.KeyPEM) || string(again.JWKSJSON) != string(b.JWKSJSON) {
		t.Fatalf("reload: generated %v, err %v", generated, err)
	}
	// A given kid must be in the stored set.
	if _, _, err := LoadOrGenerate(p, "nope"); err == nil {
		t.Fatal("accepted a kid the stored set lacks")
	}
	// Half a bundle is an error, never silently replaced.
	if err := os.Remove(p.JWKS); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrGenerate(p, ""); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing jwks: %v", err)
	}
	got, _ := os.ReadFile(p.Key)
	if string(got) != string(b.KeyPEM) {
		t.Fatal("the key was replaced")
	}

	// Generated with a configured kid: the set carries it.
	p2 := PathsIn(t.TempDir(), "", "")
	b2, _, err := LoadOrGenerate(p2, "my-kid")
	if err != nil {
		t.Fatal(err)
	}
	if b2.JWKS.Keys[0].KeyID != "my-kid" {
		t.Fatalf("kid = %q", b2.JWKS.Keys[0].KeyID)
	}
	if _, err := Load(p2, "my-kid"); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	// EC and Ed25519 seeds: a mutated RSA private key can make the standard
	// library's key validation take seconds, which stalls the fuzzer
	// without finding anything in this package.
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	ecSet, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ec.Public(), KeyID: "k", Use: "sig"}}})
	f.Add(ecPEM, ecSet, "")
	f.Add(ecPEM, ecSet, "k")
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	der, _ = x509.MarshalPKCS8PrivateKey(ed)
	edSet, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ed.Public()}}})
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), edSet, "")
	f.Add(ecPEM, []byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`), "x")
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), []byte(`{"keys":[]}`), "")
	f.Fuzz(func(t *testing.T, key, jwks []byte, kid string) {
		got, err := Parse(key, jwks, kid)
		if err != nil {
			return
		}
		if got.Key == nil || len(got.JWKS.Keys) == 0 {
			t.Fatal("Parse accepted a bundle without key or key set")
		}
		if err := matchKey(got.JWKS, got.Key.Public(), kid); err != nil {
			t.Fatalf("accepted bundle does not match: %v", err)
		}
		if _, err := got.PublicJWKS(); err != nil {
			t.Fatalf("accepted bundle cannot be served: %v", err)
		}
	})
}
