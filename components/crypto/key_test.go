package crypto

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

func pemOf(t *testing.T, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParseKey(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	pkcs8 := func(k any) []byte { b, _ := x509.MarshalPKCS8PrivateKey(k); return b }
	pkix, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	ecder, _ := x509.MarshalECPrivateKey(ek)
	raw32 := make([]byte, 32)
	for i := range raw32 {
		raw32[i] = byte(i)
	}
	secret := bytes.Repeat([]byte{0xab}, 32)

	for _, c := range []struct {
		name string
		raw  []byte
		ct   string
		want func(any) bool
	}{
		{"raw 32 bytes", raw32, "", func(m any) bool { b, ok := m.([]byte); return ok && bytes.Equal(b, raw32) }},
		{"base64 secret", []byte(base64.StdEncoding.EncodeToString(secret) + "\n"), "", func(m any) bool { b, ok := m.([]byte); return ok && bytes.Equal(b, secret) }},
		{"base64url secret", []byte(base64.RawURLEncoding.EncodeToString(secret)), "", func(m any) bool { b, ok := m.([]byte); return ok && bytes.Equal(b, secret) }},
		{"PKCS8 RSA", pemOf(t, "PRIVATE KEY", pkcs8(rk)), "", func(m any) bool { _, ok := m.(*rsa.PrivateKey); return ok }},
		{"PKCS1 RSA", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), ContentTypePEM, func(m any) bool { _, ok := m.(*rsa.PrivateKey); return ok }},
		{"SEC1 EC", pemOf(t, "EC PRIVATE KEY", ecder), "", func(m any) bool { _, ok := m.(*ecdsa.PrivateKey); return ok }},
		{"PKCS8 Ed25519", pemOf(t, "PRIVATE KEY", pkcs8(edk)), "", func(m any) bool { _, ok := m.(ed25519.PrivateKey); return ok }},
		{"PKIX RSA", pemOf(t, "PUBLIC KEY", pkix), "", func(m any) bool { _, ok := m.(*rsa.PublicKey); return ok }},
		{"JWK oct", []byte(`{"kty":"oct","k":"` + base64.RawURLEncoding.EncodeToString(secret) + `","kid":"s1","alg":"A256KW"}`), "", func(m any) bool { b, ok := m.([]byte); return ok && bytes.Equal(b, secret) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, err := ParseKey(c.raw, c.ct)
			if err != nil {
				t.Fatal(err)
			}
			if !c.want(k.Material) {
				t.Fatalf("material %T", k.Material)
			}
		})
	}
	if _, err := ParseKey(nil, ""); err == nil {
		t.Fatal("empty key parsed")
	}
	if _, err := ParseKey([]byte("-----BEGIN NOTHING-----\nAAAA\n-----END NOTHING-----\n"), ""); err == nil {
		t.Fatal("unknown PEM block parsed")
	}
}

func TestOperations(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	sym := func(n int) *Key { b := make([]byte, n); rand.Read(b); return &Key{Material: b} }
	nonce := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	msg := []byte("the quick brown fox jumps over the lazy dog")
	block := bytes.Repeat([]byte("0123456789abcdef"), 2)

	for _, c := range []struct {
		alg   string
		key   *Key
		nonce []byte
		plain []byte
	}{
		{"A128CBC", sym(16), nonce(16), msg},
		{"A256CBC", sym(32), nonce(16), msg},
		{"A128GCM", sym(16), nonce(12), msg},
		{"A256GCM", sym(32), nonce(12), msg},
		{"A128CBC-HS256", sym(32), nonce(16), msg},
		{"A256CBC-HS512", sym(64), nonce(16), msg},
		{"A128KW", sym(16), nil, block},
		{"A256KW", sym(32), nil, block},
		{"C20P", sym(32), nonce(12), msg},
		{"XC20P", sym(32), nonce(24), msg},
		{"RSA-OAEP", &Key{Material: rk}, nil, msg},
		{"RSA-OAEP-256", &Key{Material: rk}, nil, msg},
	} {
		t.Run(c.alg, func(t *testing.T) {
			ct, tag, err := c.key.Encrypt(c.plain, c.alg, c.nonce, nil)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := c.key.Decrypt(ct, c.alg, c.nonce, tag, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pt, c.plain) {
				t.Fatal("round trip changed the text")
			}
			if _, _, err := (&Key{Material: []byte("short")}).Encrypt(c.plain, c.alg, c.nonce, nil); err == nil {
				t.Fatal("wrong key accepted")
			}
		})
	}
	if _, _, err := sym(16).Encrypt(msg, "ROT13", nil, nil); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Fatalf("unknown algorithm: %v", err)
	}

	digest := sha256.Sum256(msg)
	for _, c := range []struct {
		alg string
		key *Key
		in  []byte
	}{
		{"RS256", &Key{Material: rk}, digest[:]},
		{"PS256", &Key{Material: rk}, digest[:]},
		{"ES256", &Key{Material: ek}, digest[:]},
		{"EdDSA", &Key{Material: edk}, msg},
	} {
		t.Run(c.alg, func(t *testing.T) {
			sig, err := c.key.Sign(c.in, c.alg)
			if err != nil {
				t.Fatal(err)
			}
			pub, _ := c.key.Public()
			if ok, err := pub.Verify(c.in, sig, c.alg); err != nil || !ok {
				t.Fatalf("valid signature: %v %v", ok, err)
			}
			sig[len(sig)/2] ^= 1
			if ok, _ := pub.Verify(c.in, sig, c.alg); ok {
				t.Fatal("changed signature verified")
			}
		})
	}
}

func TestKeyRestrictions(t *testing.T) {
	k := &Key{Material: make([]byte, 32), Use: "sig"}
	if _, _, err := k.WrapKey(make([]byte, 32), "A256KW", nil, nil); err == nil {
		t.Fatal("a signing key wrapped a key")
	}
	k = &Key{Material: make([]byte, 32), Ops: []string{"unwrapKey"}}
	if _, _, err := k.WrapKey(make([]byte, 32), "A256KW", nil, nil); err == nil {
		t.Fatal("key_ops without wrapKey wrapped a key")
	}
	k = &Key{Material: make([]byte, 32), Algorithm: "A256GCM"}
	if _, _, err := k.WrapKey(make([]byte, 32), "A256KW", nil, nil); err == nil || !strings.Contains(err.Error(), "algorithm") {
		t.Fatalf("alg A256GCM used for A256KW: %v", err)
	}
}

func TestPublicForms(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	k := &Key{Material: rk, ID: "r1"}
	p, err := k.PEM()
	if err != nil || !bytes.HasPrefix(p, []byte("-----BEGIN PUBLIC KEY-----")) {
		t.Fatalf("PEM: %v %s", err, p)
	}
	j, err := k.JWK()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil || m["kty"] != "RSA" || m["kid"] != "r1" || m["d"] != nil {
		t.Fatalf("JWK %s", j)
	}
	if _, err := (&Key{Material: []byte("secret")}).PEM(); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("a symmetric key was disclosed: %v", err)
	}
}

// FuzzParseKey: any bytes parse to a key with supported material or fail.
func FuzzParseKey(f *testing.F) {
	f.Add([]byte(`{"kty":"oct","k":"AAAA"}`), "")
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), "")
	f.Add([]byte("c2VjcmV0"), "")
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA","kid":"a"}]}`), ContentTypeJWK)
	f.Fuzz(func(t *testing.T, raw []byte, ct string) {
		k, err := ParseKey(raw, ct)
		if err != nil {
			return
		}
		if _, err := k.Serialize(); err != nil {
			t.Fatalf("parsed key of %T cannot be serialised: %v", k.Material, err)
		}
		_, _ = ParseJWKS(raw)
	})
}
