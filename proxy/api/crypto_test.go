package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/crypto"
	"github.com/tandemrun/tandem/components/crypto/localstorage"
	"github.com/tandemrun/tandem/proxy/apierr"
)

func TestCryptoAPI(t *testing.T) {
	ctx := context.Background()
	none := NewCrypto(CryptoConfig{})
	if _, err := none.Encrypt(ctx, strings.NewReader("x"), EncryptOptions{Component: "c", KeyName: "k", KeyWrapAlgorithm: "AES"}); !errors.Is(err, apierr.CryptoProvidersNotConfigured()) {
		t.Fatalf("no components: %v", err)
	}

	dir := t.TempDir()
	key := make([]byte, 32)
	rand.Read(key)
	os.WriteFile(filepath.Join(dir, "sym"), key, 0o600)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ek)
	os.WriteFile(filepath.Join(dir, "ec.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)

	newFn, types := components.FactoryFromMap(map[string]func() crypto.KeyStore{localstorage.Type: func() crypto.KeyStore { return localstorage.New() }})
	m := components.NewManager(crypto.Kind(newFn, types), components.ManagerOptions{Resolve: components.Env{AppID: "me"}.Resolve})
	t.Cleanup(func() { _ = m.Close() })
	m.Apply([]components.Component{{Name: "keys", Type: localstorage.Type, InitTimeout: components.DefaultInitTimeout, Metadata: md("path", dir)}})
	waitUntil(t, "keys ready", func() bool { _, err := m.Registry().Ready("keys"); return err == nil })
	c := NewCrypto(CryptoConfig{Registry: m.Registry()})

	for _, tc := range []struct {
		o    EncryptOptions
		want *apierr.Error
	}{
		{EncryptOptions{Component: "nope", KeyName: "sym", KeyWrapAlgorithm: "AES"}, apierr.CryptoProviderNotFound("nope")},
		{EncryptOptions{Component: "keys", KeyWrapAlgorithm: "AES"}, apierr.BadRequest("")},
		{EncryptOptions{Component: "keys", KeyName: "sym"}, apierr.BadRequest("")},
		{EncryptOptions{Component: "keys", KeyName: "missing", KeyWrapAlgorithm: "AES"}, apierr.CryptoOperation("")},
		{EncryptOptions{Component: "keys", KeyName: "sym", KeyWrapAlgorithm: "RSA"}, apierr.CryptoOperation("")},
	} {
		if _, err := c.Encrypt(ctx, strings.NewReader("x"), tc.o); !errors.Is(err, tc.want) {
			t.Errorf("Encrypt(%+v) = %v, want %v", tc.o, err, tc.want)
		}
	}

	plain := bytes.Repeat([]byte("tandem "), 30000) // more than three segments
	enc, err := c.Encrypt(ctx, bytes.NewReader(plain), EncryptOptions{Component: "keys", KeyName: "sym", KeyWrapAlgorithm: "aes", Cipher: "chacha20-poly1305"})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := io.ReadAll(enc)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.Decrypt(ctx, bytes.NewReader(doc), DecryptOptions{Component: "keys"})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := io.ReadAll(dec); err != nil || !bytes.Equal(out, plain) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := c.Decrypt(ctx, strings.NewReader("not a document\n"), DecryptOptions{Component: "keys"}); !errors.Is(err, apierr.CryptoOperation("")) {
		t.Fatalf("garbage: %v", err)
	}

	// Subtle: a symmetric key is never disclosed; an EC key is, as PEM or JWK.
	if _, err := c.SubtleGetKey(ctx, &runtimev1.SubtleGetKeyRequest{ComponentName: "keys", Name: "sym", Format: runtimev1.SubtleGetKeyRequest_PEM}); !errors.Is(err, apierr.CryptoGetKey("", nil)) {
		t.Fatalf("symmetric key disclosed: %v", err)
	}
	gk, err := c.SubtleGetKey(ctx, &runtimev1.SubtleGetKeyRequest{ComponentName: "keys", Name: "ec.pem", Format: runtimev1.SubtleGetKeyRequest_JSON})
	if err != nil || !strings.Contains(gk.GetPublicKey(), `"kty":"EC"`) || strings.Contains(gk.GetPublicKey(), `"d"`) {
		t.Fatalf("JWK: %v %v", gk, err)
	}
	digest := sha256.Sum256(plain)
	sig, err := c.SubtleSign(ctx, &runtimev1.SubtleSignRequest{ComponentName: "keys", KeyName: "ec.pem", Algorithm: "ES256", Digest: digest[:]})
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.SubtleVerify(ctx, &runtimev1.SubtleVerifyRequest{ComponentName: "keys", KeyName: "ec.pem", Algorithm: "ES256", Digest: digest[:], Signature: sig.GetSignature()})
	if err != nil || !v.GetValid() {
		t.Fatalf("verify: %v %v", v, err)
	}
	nonce := make([]byte, 12)
	se, err := c.SubtleEncrypt(ctx, &runtimev1.SubtleEncryptRequest{ComponentName: "keys", KeyName: "sym", Algorithm: "A256GCM", Nonce: nonce, Plaintext: []byte("hi")})
	if err != nil {
		t.Fatal(err)
	}
	sd, err := c.SubtleDecrypt(ctx, &runtimev1.SubtleDecryptRequest{ComponentName: "keys", KeyName: "sym", Algorithm: "A256GCM", Nonce: nonce, Ciphertext: se.GetCiphertext(), Tag: se.GetTag()})
	if err != nil || string(sd.GetPlaintext()) != "hi" {
		t.Fatalf("subtle decrypt: %v %v", sd, err)
	}
	wk, err := c.SubtleWrapKey(ctx, &runtimev1.SubtleWrapKeyRequest{ComponentName: "keys", KeyName: "sym", Algorithm: "A256KW", PlaintextKey: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	uk, err := c.SubtleUnwrapKey(ctx, &runtimev1.SubtleUnwrapKeyRequest{ComponentName: "keys", KeyName: "sym", Algorithm: "A256KW", WrappedKey: wk.GetWrappedKey()})
	if err != nil || !bytes.Equal(uk.GetPlaintextKey(), bytes.Repeat([]byte{1}, 32)) {
		t.Fatalf("unwrap: %v", err)
	}
	if _, err := c.SubtleDecrypt(ctx, &runtimev1.SubtleDecryptRequest{ComponentName: "keys", KeyName: "sym", Algorithm: "A256GCM", Nonce: nonce, Ciphertext: se.GetCiphertext(), Tag: make([]byte, 16)}); err == nil || !strings.Contains(err.Error(), "failed to decrypt") {
		t.Fatalf("bad tag: %v", err)
	}
}
