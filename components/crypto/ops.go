package crypto

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"

	josecipher "github.com/go-jose/go-jose/v4/cipher"
	"golang.org/x/crypto/chacha20poly1305"
)

// JWK key operations (RFC 7517 "key_ops").
const (
	opEncrypt   = "encrypt"
	opDecrypt   = "decrypt"
	opWrapKey   = "wrapKey"
	opUnwrapKey = "unwrapKey"
	opSign      = "sign"
	opVerify    = "verify"
)

// Errors of the operations, in daprd's words.
var (
	ErrUnsupportedAlgorithm = errors.New("unsupported algorithm")
	ErrKeyTypeMismatch      = errors.New("key type mismatch")
	ErrInvalidNonce         = errors.New("invalid nonce")
	ErrInvalidTag           = errors.New("invalid tag")
	ErrInvalidPlaintext     = errors.New("invalid plaintext length")
	ErrInvalidCiphertext    = errors.New("invalid ciphertext length")
)

// Encrypt encrypts plaintext with k. Symmetric algorithms: A128CBC,
// A192CBC, A256CBC (PKCS #7 padding, nonce is the IV), A128GCM, A192GCM,
// A256GCM, A128CBC-HS256, A192CBC-HS384, A256CBC-HS512, A128KW, A192KW,
// A256KW, C20P, C20PKW, XC20P, XC20PKW; RSA: RSA-OAEP, RSA-OAEP-256,
// RSA-OAEP-384, RSA-OAEP-512 (associatedData is the OAEP label). AEAD
// ciphers return their tag apart. Unlike daprd, RSA1_5 is refused: Go
// deprecates PKCS #1 v1.5 encryption as unsafe (its errors leak the key).
func (k *Key) Encrypt(plaintext []byte, alg string, nonce, associatedData []byte) (ciphertext, tag []byte, err error) {
	if err := k.allows(opEncrypt, alg); err != nil {
		return nil, nil, err
	}
	return k.encrypt(plaintext, alg, nonce, associatedData)
}

// Decrypt reverses Encrypt.
func (k *Key) Decrypt(ciphertext []byte, alg string, nonce, tag, associatedData []byte) ([]byte, error) {
	if err := k.allows(opDecrypt, alg); err != nil {
		return nil, err
	}
	return k.decrypt(ciphertext, alg, nonce, tag, associatedData)
}

// WrapKey encrypts a serialised key (see Key.Serialize) with k.
func (k *Key) WrapKey(plaintextKey []byte, alg string, nonce, associatedData []byte) (wrapped, tag []byte, err error) {
	if err := k.allows(opWrapKey, alg); err != nil {
		return nil, nil, err
	}
	return k.encrypt(plaintextKey, alg, nonce, associatedData)
}

// UnwrapKey reverses WrapKey.
func (k *Key) UnwrapKey(wrapped []byte, alg string, nonce, tag, associatedData []byte) ([]byte, error) {
	if err := k.allows(opUnwrapKey, alg); err != nil {
		return nil, err
	}
	return k.decrypt(wrapped, alg, nonce, tag, associatedData)
}

func keySize(alg string) int {
	switch alg[1:4] {
	case "128":
		return 16
	case "192":
		return 24
	case "256":
		return 32
	}
	return 0
}

func shaOf(alg string) crypto.Hash {
	switch alg[len(alg)-3:] {
	case "256":
		return crypto.SHA256
	case "384":
		return crypto.SHA384
	case "512":
		return crypto.SHA512
	}
	return 0
}

// aeadOf returns the AEAD for a symmetric AEAD algorithm.
func aeadOf(alg string, key []byte) (cipher.AEAD, error) {
	switch alg {
	case "A128GCM", "A192GCM", "A256GCM":
		if len(key) != keySize(alg) {
			return nil, ErrKeyTypeMismatch
		}
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, ErrKeyTypeMismatch
		}
		return cipher.NewGCM(b)
	case "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512":
		if len(key) != 2*keySize(alg) {
			return nil, ErrKeyTypeMismatch
		}
		return josecipher.NewCBCHMAC(key, aes.NewCipher)
	case "C20P", "C20PKW":
		return chacha20poly1305.New(key)
	case "XC20P", "XC20PKW":
		return chacha20poly1305.NewX(key)
	}
	return nil, ErrUnsupportedAlgorithm
}

func (k *Key) encrypt(plaintext []byte, alg string, nonce, ad []byte) ([]byte, []byte, error) {
	switch alg {
	case "A128CBC", "A192CBC", "A256CBC":
		key, err := k.secret(alg)
		if err != nil {
			return nil, nil, err
		}
		if len(nonce) != aes.BlockSize {
			return nil, nil, ErrInvalidNonce
		}
		b, _ := aes.NewCipher(key)
		pad := aes.BlockSize - len(plaintext)%aes.BlockSize
		in := append(bytes.Clone(plaintext), bytes.Repeat([]byte{byte(pad)}, pad)...)
		out := make([]byte, len(in))
		cipher.NewCBCEncrypter(b, nonce).CryptBlocks(out, in)
		return out, nil, nil
	case "A128KW", "A192KW", "A256KW":
		key, err := k.secret(alg)
		if err != nil {
			return nil, nil, err
		}
		b, _ := aes.NewCipher(key)
		out, err := josecipher.KeyWrap(b, plaintext)
		return out, nil, err
	case "A128GCM", "A192GCM", "A256GCM", "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512", "C20P", "C20PKW", "XC20P", "XC20PKW":
		key, ok := k.Material.([]byte)
		if !ok {
			return nil, nil, ErrKeyTypeMismatch
		}
		aead, err := aeadOf(alg, key)
		if err != nil {
			return nil, nil, ErrKeyTypeMismatch
		}
		if len(nonce) != aead.NonceSize() {
			return nil, nil, ErrInvalidNonce
		}
		out := aead.Seal(nil, nonce, plaintext, ad)
		t := len(out) - aead.Overhead()
		return out[:t], out[t:], nil
	case "RSA-OAEP", "RSA-OAEP-256", "RSA-OAEP-384", "RSA-OAEP-512":
		pub, err := k.Public()
		if err != nil {
			return nil, nil, ErrKeyTypeMismatch
		}
		rk, ok := pub.Material.(*rsa.PublicKey)
		if !ok {
			return nil, nil, ErrKeyTypeMismatch
		}
		var out []byte
		switch alg {
		case "RSA-OAEP":
			out, err = rsa.EncryptOAEP(crypto.SHA1.New(), rand.Reader, rk, plaintext, ad)
		default:
			out, err = rsa.EncryptOAEP(shaOf(alg).New(), rand.Reader, rk, plaintext, ad)
		}
		return out, nil, err
	}
	return nil, nil, ErrUnsupportedAlgorithm
}

func (k *Key) decrypt(ciphertext []byte, alg string, nonce, tag, ad []byte) ([]byte, error) {
	switch alg {
	case "A128CBC", "A192CBC", "A256CBC":
		key, err := k.secret(alg)
		if err != nil {
			return nil, err
		}
		if len(nonce) != aes.BlockSize {
			return nil, ErrInvalidNonce
		}
		if len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
			return nil, ErrInvalidCiphertext
		}
		b, _ := aes.NewCipher(key)
		out := make([]byte, len(ciphertext))
		cipher.NewCBCDecrypter(b, nonce).CryptBlocks(out, ciphertext)
		pad := int(out[len(out)-1])
		if pad == 0 || pad > aes.BlockSize || !bytes.Equal(out[len(out)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
			return nil, errors.New("invalid padding")
		}
		return out[:len(out)-pad], nil
	case "A128KW", "A192KW", "A256KW":
		key, err := k.secret(alg)
		if err != nil {
			return nil, err
		}
		b, _ := aes.NewCipher(key)
		return josecipher.KeyUnwrap(b, ciphertext)
	case "A128GCM", "A192GCM", "A256GCM", "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512", "C20P", "C20PKW", "XC20P", "XC20PKW":
		key, ok := k.Material.([]byte)
		if !ok {
			return nil, ErrKeyTypeMismatch
		}
		aead, err := aeadOf(alg, key)
		if err != nil {
			return nil, ErrKeyTypeMismatch
		}
		if len(nonce) != aead.NonceSize() {
			return nil, ErrInvalidNonce
		}
		if len(tag) != aead.Overhead() {
			return nil, ErrInvalidTag
		}
		return aead.Open(nil, nonce, append(bytes.Clone(ciphertext), tag...), ad)
	case "RSA-OAEP", "RSA-OAEP-256", "RSA-OAEP-384", "RSA-OAEP-512":
		rk, ok := k.Material.(*rsa.PrivateKey)
		if !ok {
			return nil, ErrKeyTypeMismatch
		}
		switch alg {
		case "RSA-OAEP":
			return rsa.DecryptOAEP(crypto.SHA1.New(), rand.Reader, rk, ciphertext, ad)
		default:
			return rsa.DecryptOAEP(shaOf(alg).New(), rand.Reader, rk, ciphertext, ad)
		}
	}
	return nil, ErrUnsupportedAlgorithm
}

// secret returns k's bytes if k is a symmetric key of alg's size.
func (k *Key) secret(alg string) ([]byte, error) {
	key, ok := k.Material.([]byte)
	if !ok || len(key) != keySize(alg) {
		return nil, ErrKeyTypeMismatch
	}
	return key, nil
}

// Sign signs digest (the message itself for EdDSA) with k's private key:
// RS256/384/512 (PKCS #1 v1.5), PS256/384/512 (PSS), ES256/384/512 (ASN.1
// DER), EdDSA (Ed25519).
func (k *Key) Sign(digest []byte, alg string) ([]byte, error) {
	if err := k.allows(opSign, alg); err != nil {
		return nil, err
	}
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		rk, ok := k.Material.(*rsa.PrivateKey)
		if !ok {
			return nil, ErrKeyTypeMismatch
		}
		if alg[0] == 'R' {
			return rsa.SignPKCS1v15(rand.Reader, rk, shaOf(alg), digest)
		}
		return rsa.SignPSS(rand.Reader, rk, shaOf(alg), digest, nil)
	case "ES256", "ES384", "ES512":
		ek, ok := k.Material.(*ecdsa.PrivateKey)
		if !ok {
			return nil, ErrKeyTypeMismatch
		}
		return ecdsa.SignASN1(rand.Reader, ek, digest)
	case "EdDSA":
		ed, ok := k.Material.(ed25519.PrivateKey)
		if !ok {
			return nil, ErrKeyTypeMismatch
		}
		return ed25519.Sign(ed, digest), nil
	}
	return nil, ErrUnsupportedAlgorithm
}

// Verify checks a signature Sign made; a signature that does not match is
// false with no error.
func (k *Key) Verify(digest, signature []byte, alg string) (bool, error) {
	if err := k.allows(opVerify, alg); err != nil {
		return false, err
	}
	pub, err := k.Public()
	if err != nil {
		return false, ErrKeyTypeMismatch
	}
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		rk, ok := pub.Material.(*rsa.PublicKey)
		if !ok {
			return false, ErrKeyTypeMismatch
		}
		if alg[0] == 'R' {
			err = rsa.VerifyPKCS1v15(rk, shaOf(alg), digest, signature)
		} else {
			err = rsa.VerifyPSS(rk, shaOf(alg), digest, signature, nil)
		}
		if errors.Is(err, rsa.ErrVerification) {
			return false, nil
		}
		return err == nil, err
	case "ES256", "ES384", "ES512":
		ek, ok := pub.Material.(*ecdsa.PublicKey)
		if !ok {
			return false, ErrKeyTypeMismatch
		}
		return ecdsa.VerifyASN1(ek, digest, signature), nil
	case "EdDSA":
		ed, ok := pub.Material.(ed25519.PublicKey)
		if !ok {
			return false, ErrKeyTypeMismatch
		}
		return ed25519.Verify(ed, digest, signature), nil
	}
	return false, fmt.Errorf("%w: %s", ErrUnsupportedAlgorithm, alg)
}
