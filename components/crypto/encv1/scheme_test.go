package encv1

import (
	"bytes"
	"crypto/aes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	daprenc "github.com/dapr/kit/schemes/enc/v1"
	josecipher "github.com/go-jose/go-jose/v4/cipher"
)

// keyring wraps file keys the way daprd's local key stores do: A256KW
// with a 32-byte key, RSA-OAEP-256 with an RSA key.
type keyring struct {
	aes []byte
	rsa *rsa.PrivateKey
}

func newKeyring(t testing.TB) *keyring {
	t.Helper()
	k := &keyring{aes: make([]byte, 32)}
	rand.Read(k.aes)
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *keyring) wrap(fileKey []byte, alg, name string) ([]byte, error) {
	switch alg {
	case A256KW:
		b, _ := aes.NewCipher(k.aes)
		return josecipher.KeyWrap(b, fileKey)
	case RSAOAEP256:
		return rsa.EncryptOAEP(sha256.New(), rand.Reader, &k.rsa.PublicKey, fileKey, nil)
	}
	return nil, fmt.Errorf("algorithm %s not supported by the test keyring", alg)
}

func (k *keyring) unwrap(wrapped []byte, alg, name string) ([]byte, error) {
	switch alg {
	case A256KW:
		b, _ := aes.NewCipher(k.aes)
		return josecipher.KeyUnwrap(b, wrapped)
	case RSAOAEP256:
		return rsa.DecryptOAEP(sha256.New(), rand.Reader, k.rsa, wrapped, nil)
	}
	return nil, fmt.Errorf("algorithm %s not supported by the test keyring", alg)
}

// sizes crosses every segment boundary case: empty, short, exactly one
// segment, one byte more, several segments and a ragged end.
var sizes = []int{0, 1, 100, SegmentSize - 1, SegmentSize, SegmentSize + 1, 2 * SegmentSize, 3*SegmentSize + 12345}

func payload(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestRoundTrip(t *testing.T) {
	k := newKeyring(t)
	for _, alg := range []string{"AES", "rsa", A256KW, RSAOAEP256} {
		for _, ciph := range []string{"", AESGCM, "chacha20-poly1305"} {
			for _, n := range sizes {
				t.Run(fmt.Sprintf("%s/%s/%d", alg, ciph, n), func(t *testing.T) {
					in := payload(n)
					enc, err := Encrypt(bytes.NewReader(in), EncryptOptions{Wrap: k.wrap, KeyName: "k1", Algorithm: alg, Cipher: ciph})
					if err != nil {
						t.Fatal(err)
					}
					ct, err := io.ReadAll(enc)
					if err != nil {
						t.Fatal(err)
					}
					segs := (n + SegmentSize - 1) / SegmentSize
					h, rest, err := ReadHeader(bytes.NewReader(ct))
					if err != nil {
						t.Fatal(err)
					}
					body, _ := io.ReadAll(rest)
					if len(body) != n+segs*SegmentOverhead {
						t.Fatalf("payload is %d bytes, want %d", len(body), n+segs*SegmentOverhead)
					}
					if h.Manifest.KeyName != "k1" {
						t.Fatalf("manifest key name %q", h.Manifest.KeyName)
					}
					dec, err := Decrypt(bytes.NewReader(ct), DecryptOptions{Unwrap: k.unwrap})
					if err != nil {
						t.Fatal(err)
					}
					out, err := io.ReadAll(dec)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(out, in) {
						t.Fatal("decrypted text differs")
					}
				})
			}
		}
	}
}

// TestDaprCompatible checks both directions against daprd's own
// implementation (github.com/dapr/kit, used here only as the reference).
func TestDaprCompatible(t *testing.T) {
	k := newKeyring(t)
	daprWrap := func(fk []byte, alg, name string, _ []byte) ([]byte, []byte, error) {
		w, err := k.wrap(fk, alg, name)
		return w, nil, err
	}
	daprUnwrap := func(w []byte, alg, name string, _, _ []byte) ([]byte, error) { return k.unwrap(w, alg, name) }
	for _, alg := range []string{A256KW, RSAOAEP256} {
		for _, ciph := range []string{AESGCM, ChaCha20Poly1305} {
			for _, n := range sizes {
				t.Run(fmt.Sprintf("%s/%s/%d", alg, ciph, n), func(t *testing.T) {
					in := payload(n)

					// Dapr encrypts, we decrypt.
					c := daprenc.Cipher(ciph)
					denc, err := daprenc.Encrypt(bytes.NewReader(in), daprenc.EncryptOptions{
						WrapKeyFn: daprWrap, Algorithm: daprenc.KeyAlgorithm(alg), KeyName: "dk", Cipher: &c,
					})
					if err != nil {
						t.Fatal(err)
					}
					ct, err := io.ReadAll(denc)
					if err != nil {
						t.Fatal(err)
					}
					dec, err := Decrypt(bytes.NewReader(ct), DecryptOptions{Unwrap: k.unwrap})
					if err != nil {
						t.Fatalf("ours cannot decrypt daprd's document: %v", err)
					}
					out, err := io.ReadAll(dec)
					if err != nil || !bytes.Equal(out, in) {
						t.Fatalf("ours decrypted daprd's document wrong: %v", err)
					}

					// We encrypt, Dapr decrypts.
					enc, err := Encrypt(bytes.NewReader(in), EncryptOptions{Wrap: k.wrap, KeyName: "dk", Algorithm: alg, Cipher: ciph})
					if err != nil {
						t.Fatal(err)
					}
					ct, err = io.ReadAll(enc)
					if err != nil {
						t.Fatal(err)
					}
					ddec, err := daprenc.Decrypt(bytes.NewReader(ct), daprenc.DecryptOptions{UnwrapKeyFn: daprUnwrap})
					if err != nil {
						t.Fatalf("daprd cannot decrypt our document: %v", err)
					}
					out, err = io.ReadAll(ddec)
					if err != nil || !bytes.Equal(out, in) {
						t.Fatalf("daprd decrypted our document wrong: %v", err)
					}
				})
			}
		}
	}
}

// TestHeaderBytes checks that our header has daprd's shape: the manifest
// line is what daprd's encoder writes for the same values.
func TestHeaderBytes(t *testing.T) {
	k := newKeyring(t)
	enc, err := Encrypt(strings.NewReader("hi"), EncryptOptions{Wrap: k.wrap, KeyName: "a<b", Algorithm: "aes", DecryptionKeyName: "other"})
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := io.ReadAll(enc)
	h, _, err := ReadHeader(bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"k":"other","kw":1,"wfk":"%s","cph":1,"np":"%s"}`, b64(h.Manifest.WrappedKey), b64(h.Manifest.NoncePrefix))
	if string(h.RawManifest) != want {
		t.Fatalf("manifest\n got %s\nwant %s", h.RawManifest, want)
	}
	if !bytes.HasPrefix(ct, []byte(SchemeName+"\n"+want+"\n")) {
		t.Fatal("header does not start with the scheme and manifest lines")
	}
	enc, _ = Encrypt(strings.NewReader("hi"), EncryptOptions{Wrap: k.wrap, KeyName: "a", Algorithm: "aes", OmitKeyName: true})
	ct, _ = io.ReadAll(enc)
	if bytes.Contains(ct[:200], []byte(`"k":`)) {
		t.Fatal("OmitKeyName left the key name in")
	}
	if _, err := Decrypt(bytes.NewReader(ct), DecryptOptions{Unwrap: k.unwrap}); !errors.Is(err, ErrDecryptionKeyMissing) {
		t.Fatalf("decrypting without a key name: %v", err)
	}
	if _, err := Decrypt(bytes.NewReader(ct), DecryptOptions{Unwrap: k.unwrap, KeyName: "a"}); err != nil {
		t.Fatalf("decrypting with the key name given: %v", err)
	}
}

func TestTampered(t *testing.T) {
	k := newKeyring(t)
	in := payload(2*SegmentSize + 10)
	enc, _ := Encrypt(bytes.NewReader(in), EncryptOptions{Wrap: k.wrap, KeyName: "k", Algorithm: A256KW})
	ct, _ := io.ReadAll(enc)
	hlen := bytes.Index(ct, []byte("\n")) + 1
	hlen += bytes.Index(ct[hlen:], []byte("\n")) + 1
	manifestEnd := hlen
	hlen += bytes.Index(ct[hlen:], []byte("\n")) + 1
	seg := SegmentSize + SegmentOverhead

	cases := map[string]func([]byte) []byte{
		"flipped payload byte": func(b []byte) []byte { b[hlen+5] ^= 1; return b },
		"flipped last byte":    func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"dropped last segment": func(b []byte) []byte { return b[:hlen+2*seg] },
		"dropped a segment":    func(b []byte) []byte { return append(b[:hlen:hlen], b[hlen+seg:]...) },
		"swapped segments": func(b []byte) []byte {
			out := append([]byte{}, b[:hlen]...)
			out = append(out, b[hlen+seg:hlen+2*seg]...)
			out = append(out, b[hlen:hlen+seg]...)
			return append(out, b[hlen+2*seg:]...)
		},
		"truncated mid segment": func(b []byte) []byte { return b[:len(b)-3] },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			dec, err := Decrypt(bytes.NewReader(mutate(bytes.Clone(ct))), DecryptOptions{Unwrap: k.unwrap})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(dec); !errors.Is(err, ErrDecryptionFailed) {
				t.Fatalf("got %v, want %v", err, ErrDecryptionFailed)
			}
		})
	}
	t.Run("changed manifest", func(t *testing.T) {
		b := bytes.Clone(ct)
		b = bytes.Replace(b[:manifestEnd], []byte(`"k":"k"`), []byte(`"k":"x"`), 1)
		b = append(b, ct[manifestEnd:]...)
		if _, err := Decrypt(bytes.NewReader(b), DecryptOptions{Unwrap: k.unwrap, KeyName: "k"}); !errors.Is(err, ErrDecryptionSignature) {
			t.Fatalf("got %v, want %v", err, ErrDecryptionSignature)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		other := newKeyring(t)
		if _, err := Decrypt(bytes.NewReader(ct), DecryptOptions{Unwrap: other.unwrap}); !errors.Is(err, ErrDecryptionSignature) {
			t.Fatalf("got %v, want %v", err, ErrDecryptionSignature)
		}
	})
}

func TestEncryptOptions(t *testing.T) {
	k := newKeyring(t)
	for name, o := range map[string]EncryptOptions{
		"no key name":   {Wrap: k.wrap, Algorithm: "AES"},
		"no algorithm":  {Wrap: k.wrap, KeyName: "k"},
		"bad algorithm": {Wrap: k.wrap, KeyName: "k", Algorithm: "ROT13"},
		"bad cipher":    {Wrap: k.wrap, KeyName: "k", Algorithm: "AES", Cipher: "DES"},
		"no wrap":       {KeyName: "k", Algorithm: "AES"},
		"wrap fails":    {Wrap: k.wrap, KeyName: "k", Algorithm: A128CBCNoPad},
	} {
		if _, err := Encrypt(strings.NewReader("x"), o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
