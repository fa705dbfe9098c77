package encv1

import (
	"bytes"
	"crypto/aes"
	"io"
	"strings"
	"testing"

	josecipher "github.com/go-jose/go-jose/v4/cipher"
)

// fuzzKey is a fixed A256KW key, so that seeds made with it get past the
// MAC check and the fuzzer reaches the segment reader too.
var fuzzKey = bytes.Repeat([]byte{7}, 32)

func fuzzWrap(fk []byte, _, _ string) ([]byte, error) {
	b, _ := aes.NewCipher(fuzzKey)
	return josecipher.KeyWrap(b, fk)
}

func fuzzUnwrap(w []byte, _, _ string) ([]byte, error) {
	b, _ := aes.NewCipher(fuzzKey)
	return josecipher.KeyUnwrap(b, w)
}

// FuzzDecrypt feeds arbitrary documents to the header parser and the
// segment reader: they must return an error or a plaintext, never panic or
// loop, and a header that parses must have a manifest that validates.
func FuzzDecrypt(f *testing.F) {
	for _, n := range []int{0, 1, 64, SegmentSize + 1} {
		for _, c := range []string{AESGCM, ChaCha20Poly1305} {
			enc, err := Encrypt(bytes.NewReader(bytes.Repeat([]byte("a"), n)), EncryptOptions{Wrap: fuzzWrap, KeyName: "k", Algorithm: "AES", Cipher: c})
			if err != nil {
				f.Fatal(err)
			}
			ct, _ := io.ReadAll(enc)
			f.Add(ct)
		}
	}
	f.Add([]byte(SchemeName + "\n{}\nAAAA\n"))
	f.Add([]byte(SchemeName + "\n\n\n"))
	f.Add([]byte("dapr.io/enc/v2\n"))
	f.Add([]byte(SchemeName + "\n" + `{"kw":5,"wfk":"AA==","cph":2,"np":"AAAAAAAAAA=="}` + "\n" + strings.Repeat("A", 44) + "\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if h, _, err := ReadHeader(bytes.NewReader(doc)); err == nil {
			if err := h.Manifest.validate(); err != nil {
				t.Fatalf("ReadHeader accepted a manifest that does not validate: %v", err)
			}
			if !bytes.Contains(doc, h.RawManifest) {
				t.Fatal("raw manifest is not from the document")
			}
		}
		dec, err := Decrypt(bytes.NewReader(doc), DecryptOptions{Unwrap: fuzzUnwrap, KeyName: "k"})
		if err != nil {
			return
		}
		out, err := io.ReadAll(dec)
		if err == nil && len(out) > len(doc) {
			t.Fatalf("plaintext of %d bytes from a %d-byte document", len(out), len(doc))
		}
	})
}
