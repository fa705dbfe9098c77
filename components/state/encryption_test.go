package state

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components"
)

const (
	key1 = "00112233445566778899aabbccddeeff"
	key2 = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
)

func encMeta(props, refs map[string]string) components.Metadata {
	return components.Metadata{Name: "s", Properties: props, SecretRefs: refs}
}

// daprSeal writes a value the way daprd's pkg/encryption does.
func daprSeal(t *testing.T, hexKey, name string, value []byte) []byte {
	t.Helper()
	raw, _ := hex.DecodeString(hexKey)
	block, err := aes.NewCipher(raw)
	if err != nil {
		t.Fatal(err)
	}
	gcm, _ := cipher.NewGCM(block)
	nonce := make([]byte, gcm.NonceSize())
	return []byte(base64.StdEncoding.EncodeToString(gcm.Seal(nonce, nonce, value, nil)) + "||" + name)
}

func TestEncryptionRoundTripAndDaprLayout(t *testing.T) {
	e, err := NewEncryption(encMeta(map[string]string{MetadataPrimaryEncryptionKey: key1}, map[string]string{MetadataPrimaryEncryptionKey: "k1"}))
	if err != nil || e == nil {
		t.Fatalf("NewEncryption = %v, %v", e, err)
	}
	sealed, err := e.Encrypt([]byte("value1"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(sealed, []byte("||k1")) || bytes.Contains(sealed, []byte("value1")) {
		t.Fatalf("sealed = %q", sealed)
	}
	if _, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(string(sealed), "||k1")); err != nil {
		t.Fatalf("not base64 before the key name: %v", err)
	}
	if plain, err := e.Decrypt(sealed); err != nil || string(plain) != "value1" {
		t.Fatalf("Decrypt = %q, %v", plain, err)
	}
	// A value daprd wrote reads back.
	if plain, err := e.Decrypt(daprSeal(t, key1, "k1", []byte(`{"a":1}`))); err != nil || string(plain) != `{"a":1}` {
		t.Fatalf("Decrypt(daprd's) = %q, %v", plain, err)
	}
	if plain, err := e.Decrypt(nil); err != nil || len(plain) != 0 {
		t.Fatalf("Decrypt(empty) = %q, %v", plain, err)
	}
}

func TestEncryptionRotation(t *testing.T) {
	old, _ := NewEncryption(encMeta(map[string]string{MetadataPrimaryEncryptionKey: key1}, map[string]string{MetadataPrimaryEncryptionKey: "k1"}))
	sealed, _ := old.Encrypt([]byte("v"))
	rotated, err := NewEncryption(encMeta(
		map[string]string{MetadataPrimaryEncryptionKey: key2, MetadataSecondaryEncryptionKey: key1},
		map[string]string{MetadataPrimaryEncryptionKey: "k2", MetadataSecondaryEncryptionKey: "k1"}))
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := rotated.Decrypt(sealed); err != nil || string(plain) != "v" {
		t.Fatalf("old value with the secondary key: %q, %v", plain, err)
	}
	resealed, _ := rotated.Encrypt([]byte("v"))
	if !bytes.HasSuffix(resealed, []byte("||k2")) {
		t.Fatalf("new writes use the primary key: %q", resealed)
	}
	if _, err := old.Decrypt(resealed); err == nil {
		t.Fatal("a value of an unknown key decrypted")
	}
}

func TestNewEncryptionErrors(t *testing.T) {
	tests := []struct {
		name  string
		props map[string]string
		want  string
	}{
		{"none", map[string]string{"other": "x"}, ""},
		{"empty", map[string]string{MetadataPrimaryEncryptionKey: ""}, "cannot be empty"},
		{"not hex", map[string]string{MetadataPrimaryEncryptionKey: "zz"}, "hex"},
		{"bad size", map[string]string{MetadataPrimaryEncryptionKey: "0011"}, "16, 24 or 32 bytes"},
		{"secondary only", map[string]string{MetadataSecondaryEncryptionKey: key1}, "without primaryEncryptionKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewEncryption(encMeta(tt.props, nil))
			if tt.want == "" {
				if e != nil || err != nil {
					t.Fatalf("got %v, %v; want none", e, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func FuzzDecrypt(f *testing.F) {
	e, _ := NewEncryption(encMeta(map[string]string{MetadataPrimaryEncryptionKey: key1}, map[string]string{MetadataPrimaryEncryptionKey: "k1"}))
	sealed, _ := e.Encrypt([]byte("seed"))
	for _, s := range []string{string(sealed), "", "||", "||k1", "AAAA||k1", "not base64!||k1", "x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		plain, err := e.Decrypt(in)
		if err != nil {
			return
		}
		// Whatever decrypts must re-encrypt and decrypt to the same bytes.
		again, err := e.Encrypt(plain)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := e.Decrypt(again); err != nil || !bytes.Equal(back, plain) {
			t.Fatalf("round trip of %q: %q, %v", plain, back, err)
		}
	})
}
