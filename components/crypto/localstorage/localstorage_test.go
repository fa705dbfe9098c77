package localstorage

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/crypto"
)

func TestStore(t *testing.T) {
	dir := t.TempDir()
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i)
	}
	os.WriteFile(filepath.Join(dir, "sym"), raw, 0o600)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKCS8PrivateKey(rk)
	os.WriteFile(filepath.Join(dir, "rsa.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "jwk.json"), []byte(`{"kty":"oct","k":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8","use":"enc"}`), 0o600)

	s := New()
	if err := s.Init(context.Background(), components.Metadata{Name: "ls", Properties: map[string]string{"path": dir}}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"sym": "[]uint8", "rsa.pem": "*rsa.PrivateKey", "jwk.json": "[]uint8"} {
		k, err := s.Key(context.Background(), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := typeName(k.Material); got != want {
			t.Fatalf("%s: %s, want %s", name, got, want)
		}
	}
	if _, err := s.Key(context.Background(), "missing"); !errors.Is(err, crypto.ErrKeyNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := s.Key(context.Background(), "../etc/passwd"); err == nil {
		t.Fatal("a path outside the folder was read")
	}
	for _, p := range []map[string]string{{}, {"path": filepath.Join(dir, "nope")}, {"path": filepath.Join(dir, "sym")}} {
		if err := New().Init(context.Background(), components.Metadata{Name: "bad", Properties: p}); err == nil {
			t.Fatalf("Init(%v) accepted", p)
		}
	}
}

func typeName(v any) string {
	switch v.(type) {
	case []byte:
		return "[]uint8"
	case *rsa.PrivateKey:
		return "*rsa.PrivateKey"
	}
	return "other"
}
