package state

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/tandemrun/tandem/components"
)

// The component metadata that turns on Dapr's automatic state encryption.
// Each names a secret (secretKeyRef) holding a hex AES key of 16, 24 or 32
// bytes; values are written with the primary key and read with whichever
// key wrote them, so keys can be rotated.
const (
	MetadataPrimaryEncryptionKey   = "primaryEncryptionKey"
	MetadataSecondaryEncryptionKey = "secondaryEncryptionKey"
)

// encryptionSeparator ends a stored value, before the name of its key.
const encryptionSeparator = "||"

// Encryption encrypts state values with AES-GCM in Dapr's layout, so that
// daprd and Tandem read each other's data: base64(nonce || ciphertext ||
// tag), then "||", then the name of the secret holding the key.
type Encryption struct {
	primary, secondary encryptionKey
}

type encryptionKey struct {
	name string
	aead cipher.AEAD
}

// NewEncryption returns the encryption a component's metadata configures,
// nil when it configures none. md holds the resolved keys (Properties) and
// the names of their secrets (SecretRefs).
func NewEncryption(md components.Metadata) (*Encryption, error) {
	var e Encryption
	found := false
	for _, k := range []struct {
		prop string
		dst  *encryptionKey
	}{{MetadataPrimaryEncryptionKey, &e.primary}, {MetadataSecondaryEncryptionKey, &e.secondary}} {
		v, ok := md.Get(k.prop)
		if !ok {
			continue
		}
		if v == "" {
			return nil, fmt.Errorf("%s: encryption key cannot be empty", k.prop)
		}
		raw, err := hex.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("%s: the key must be hex-encoded: %w", k.prop, err)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w (an AES key is 16, 24 or 32 bytes, 32, 48 or 64 hex digits)", k.prop, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k.prop, err)
		}
		*k.dst = encryptionKey{name: md.SecretRefs[k.prop], aead: aead}
		found = true
	}
	if !found {
		return nil, nil
	}
	if e.primary.aead == nil {
		return nil, fmt.Errorf("%s is set without %s", MetadataSecondaryEncryptionKey, MetadataPrimaryEncryptionKey)
	}
	return &e, nil
}

// Encrypt seals value with the primary key.
func (e *Encryption) Encrypt(value []byte) ([]byte, error) {
	k := e.primary
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	sealed := k.aead.Seal(nonce, nonce, value, nil)
	out := make([]byte, 0, base64.StdEncoding.EncodedLen(len(sealed))+len(encryptionSeparator)+len(k.name))
	out = base64.StdEncoding.AppendEncode(out, sealed)
	out = append(out, encryptionSeparator...)
	return append(out, k.name...), nil
}

// Decrypt opens a value written by Encrypt (or by daprd) with the key its
// suffix names. An empty value stays empty.
func (e *Encryption) Decrypt(value []byte) ([]byte, error) {
	if len(value) == 0 {
		return []byte{}, nil
	}
	i := bytes.LastIndex(value, []byte(encryptionSeparator))
	if i < 0 {
		return nil, errors.New("decrypt: the value is not encrypted (no key name after \"||\")")
	}
	name := string(value[i+len(encryptionSeparator):])
	var k encryptionKey
	switch {
	case e.primary.aead != nil && name == e.primary.name:
		k = e.primary
	case e.secondary.aead != nil && name == e.secondary.name:
		k = e.secondary
	default:
		return nil, fmt.Errorf("decrypt: the value was encrypted with key %q, which is neither %s nor %s", name,
			MetadataPrimaryEncryptionKey, MetadataSecondaryEncryptionKey)
	}
	sealed, err := base64.StdEncoding.DecodeString(string(value[:i]))
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	n := k.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("decrypt: the value is too short")
	}
	plain, err := k.aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return plain, nil
}
