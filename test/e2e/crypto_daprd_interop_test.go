package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestCryptoInteropWithDaprd: a document encrypted through tandemd's
// crypto API is decrypted by a real daprd 1.18.2, and the other way round,
// with the same keys (crypto.dapr.localstorage on one folder): an RSA key
// (RSA-OAEP-256) and a symmetric one (A256KW), both ciphers, and a document
// of several 64 KiB segments. Tampering with one byte makes the other side
// refuse it.
func TestCryptoInteropWithDaprd(t *testing.T) {
	daprd := daprdBinary(t)
	if tags, _ := os.ReadFile(daprd + ".tags"); !strings.Contains(string(tags), "crypto_localstorage") {
		msg := "the daprd at " + daprd + " has no crypto.dapr.localstorage: run scripts/build-daprd.sh again"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	keys := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	sym := make([]byte, 32)
	_, _ = rand.Read(sym)
	for name, data := range map[string][]byte{
		"rsa.pem": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		"sym.key": sym,
	} {
		if err := os.WriteFile(filepath.Join(keys, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	res := t.TempDir()
	if err := os.WriteFile(filepath.Join(res, "crypto.yaml"), fmt.Appendf(nil, `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: keys
spec:
  type: crypto.dapr.localstorage
  version: v1
  metadata:
  - name: path
    value: %q
`, keys), 0o600); err != nil {
		t.Fatal(err)
	}
	tan := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "tan", ResourcesDir: res})
	dap := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "dap", ResourcesDir: res, Binary: daprd,
		Args: []string{"--placement-host-address", "", "--scheduler-host-address", ""}})
	client := func(s *framework.Sidecar) dapr.Client {
		c, err := dapr.NewClientWithAddress(s.GRPCAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	clients := map[string]dapr.Client{"tandemd": client(tan), "daprd": client(dap)}

	doc := make([]byte, 200<<10+17) // four segments, the last one short
	_, _ = rand.Read(doc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, k := range []struct{ key, alg string }{{"rsa.pem", "RSA-OAEP-256"}, {"sym.key", "A256KW"}} {
		for _, cipher := range []string{"aes-gcm", "chacha20-poly1305"} {
			for _, dir := range [][2]string{{"tandemd", "daprd"}, {"daprd", "tandemd"}} {
				name := fmt.Sprintf("%s %s %s: %s encrypts, %s decrypts", k.key, k.alg, cipher, dir[0], dir[1])
				enc, err := clients[dir[0]].Encrypt(ctx, bytes.NewReader(doc), dapr.EncryptOptions{
					ComponentName: "keys", KeyName: k.key, KeyWrapAlgorithm: k.alg, DataEncryptionCipher: cipher})
				if err != nil {
					t.Fatalf("%s: encrypt: %v", name, err)
				}
				sealed, err := io.ReadAll(enc)
				if err != nil {
					t.Fatalf("%s: encrypt: %v", name, err)
				}
				dec, err := clients[dir[1]].Decrypt(ctx, bytes.NewReader(sealed), dapr.DecryptOptions{ComponentName: "keys"})
				if err != nil {
					t.Fatalf("%s: decrypt: %v", name, err)
				}
				plain, err := io.ReadAll(dec)
				if err != nil || !bytes.Equal(plain, doc) {
					t.Fatalf("%s: decrypted %d bytes (equal: %v), %v", name, len(plain), bytes.Equal(plain, doc), err)
				}
				// One flipped byte in a middle segment's ciphertext.
				bad := bytes.Clone(sealed)
				bad[len(bad)-len(doc)/2] ^= 1
				if dec, err := clients[dir[1]].Decrypt(ctx, bytes.NewReader(bad), dapr.DecryptOptions{ComponentName: "keys"}); err == nil {
					if out, err := io.ReadAll(dec); err == nil && bytes.Equal(out, doc) {
						t.Errorf("%s: a tampered document was decrypted", name)
					}
				}
			}
		}
	}
}
