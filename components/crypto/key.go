package crypto

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
)

// Key is a key a store found: its material and the JWK attributes that
// restrict its use.
type Key struct {
	// ID is the JWK "kid", if any.
	ID string
	// Material is []byte (symmetric), *rsa.PrivateKey, *rsa.PublicKey,
	// *ecdsa.PrivateKey, *ecdsa.PublicKey, ed25519.PrivateKey or
	// ed25519.PublicKey.
	Material any
	// Algorithm is the JWK "alg": if set, the only algorithm allowed.
	Algorithm string
	// Use is the JWK "use" ("enc" or "sig"); Ops is "key_ops".
	Use string
	Ops []string
}

// Symmetric reports whether k is a secret (octet sequence) key.
func (k *Key) Symmetric() bool {
	_, ok := k.Material.([]byte)
	return ok
}

// Public returns k's public key: k itself for a public key,
// ErrKeyNotFound for a symmetric key (daprd never discloses those).
func (k *Key) Public() (*Key, error) {
	var pub any
	switch m := k.Material.(type) {
	case []byte:
		return nil, ErrKeyNotFound
	case *rsa.PrivateKey:
		pub = &m.PublicKey
	case *ecdsa.PrivateKey:
		pub = &m.PublicKey
	case ed25519.PrivateKey:
		pub = m.Public()
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		pub = m
	default:
		return nil, fmt.Errorf("unsupported key type %T", k.Material)
	}
	return &Key{ID: k.ID, Material: pub, Algorithm: k.Algorithm, Use: k.Use, Ops: k.Ops}, nil
}

// PEM is k's public key as a PKIX "PUBLIC KEY" PEM block.
func (k *Key) PEM() ([]byte, error) {
	pub, err := k.Public()
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub.Material)
	if err != nil {
		return nil, fmt.Errorf("failed to marshal public key as PKIX: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// JWK is k's public key as a JSON Web Key with its members sorted by name,
// as daprd writes it.
func (k *Key) JWK() ([]byte, error) {
	pub, err := k.Public()
	if err != nil {
		return nil, err
	}
	b, err := (&jose.JSONWebKey{Key: pub.Material, KeyID: pub.ID, Algorithm: pub.Algorithm, Use: pub.Use}).MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("failed to marshal public key as JSON: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if len(pub.Ops) > 0 {
		m["key_ops"] = pub.Ops
	}
	return json.Marshal(m) // maps marshal sorted
}

// Serialize is the bytes a wrapped key carries, as daprd writes them: the
// raw secret of a symmetric key, PKCS #8 for a private key, PKIX for a
// public key.
func (k *Key) Serialize() ([]byte, error) {
	switch m := k.Material.(type) {
	case []byte:
		return m, nil
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return x509.MarshalPKCS8PrivateKey(m)
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return x509.MarshalPKIXPublicKey(m)
	}
	return nil, errors.New("unsupported key type")
}

// Content types ParseKey knows; any other guesses from the bytes.
const (
	ContentTypeJWK = "application/json"
	ContentTypePEM = "application/x-pem-file"
)

// ParseKey reads a key as daprd does (dapr/kit crypto.ParseKey): a JWK,
// a PEM block (PKCS #1, PKCS #8, SEC 1, PKIX), or else a symmetric key
// given as base64 (standard or URL alphabet, padding optional) or as raw
// bytes. Without a content type, text starting with '{' is a JWK unless it
// is 16, 24 or 32 bytes long, and text starting with "-----" is PEM.
func ParseKey(raw []byte, contentType string) (*Key, error) {
	l := len(raw)
	if l == 0 {
		return nil, errors.New("key is empty")
	}
	switch contentType {
	case ContentTypeJWK:
		return parseJWK(raw)
	case ContentTypePEM, "application/pkcs8":
		return parsePEM(raw)
	}
	switch {
	case raw[0] == '{' && l != 16 && l != 24 && l != 32:
		return parseJWK(raw)
	case l > 10 && string(raw[:5]) == "-----":
		return parsePEM(raw)
	}
	return parseSymmetric(raw), nil
}

func parseSymmetric(raw []byte) *Key {
	trimmed := bytes.TrimRight(raw, "\n=")
	if b, err := base64.RawStdEncoding.AppendDecode(nil, trimmed); err == nil {
		return &Key{Material: b}
	}
	if b, err := base64.RawURLEncoding.AppendDecode(nil, trimmed); err == nil {
		return &Key{Material: b}
	}
	return &Key{Material: bytes.Clone(raw)}
}

// jwkExtra holds the JWK members go-jose does not keep.
type jwkExtra struct {
	KeyOps []string `json:"key_ops"`
}

func parseJWK(raw []byte) (*Key, error) {
	var jk jose.JSONWebKey
	if err := jk.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("failed to parse JWK: %w", err)
	}
	var extra jwkExtra
	_ = json.Unmarshal(raw, &extra)
	return fromJOSE(jk, extra.KeyOps)
}

func fromJOSE(jk jose.JSONWebKey, ops []string) (*Key, error) {
	k := &Key{ID: jk.KeyID, Algorithm: jk.Algorithm, Use: jk.Use, Ops: ops}
	switch m := jk.Key.(type) {
	case []byte, *rsa.PrivateKey, *rsa.PublicKey, *ecdsa.PrivateKey, *ecdsa.PublicKey, ed25519.PrivateKey, ed25519.PublicKey:
		k.Material = m
	default:
		return nil, fmt.Errorf("invalid key type %T", jk.Key)
	}
	return k, nil
}

// ParseJWKS reads a JSON Web Key Set, or a single JWK as a set of one.
// Keys of a type Tandem does not support are skipped, as long as one is
// left.
func ParseJWKS(raw []byte) ([]*Key, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("failed to parse JWKS: %w", err)
	}
	if set.Keys == nil {
		k, err := parseJWK(raw)
		if err != nil {
			return nil, err
		}
		return []*Key{k}, nil
	}
	var out []*Key
	var firstErr error
	for _, r := range set.Keys {
		k, err := parseJWK(r)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		out = append(out, k)
	}
	if len(out) == 0 && firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

func parsePEM(raw []byte) (*Key, error) {
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("failed to parse PEM: no PEM block found")
	}
	var (
		m   any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		m, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		m, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		m, err = x509.ParseECPrivateKey(block.Bytes)
	case "PUBLIC KEY":
		m, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		m, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(block.Bytes); err == nil {
			m = c.PublicKey
		}
	default:
		return nil, fmt.Errorf("failed to parse PEM: unsupported block type %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to parse PEM %s: %w", block.Type, err)
	}
	switch m := m.(type) {
	case *rsa.PrivateKey, *rsa.PublicKey, *ecdsa.PrivateKey, *ecdsa.PublicKey, ed25519.PrivateKey, ed25519.PublicKey:
		return &Key{Material: m}, nil
	case *ed25519.PrivateKey:
		return &Key{Material: *m}, nil
	}
	return nil, fmt.Errorf("failed to parse PEM: unsupported key type %T", m)
}

// allows reports whether k's use, key_ops and alg permit op with alg, by
// RFC 7517's rules as daprd applies them.
func (k *Key) allows(op, alg string) error {
	if len(k.Ops) > 0 && !slices.Contains(k.Ops, op) {
		return fmt.Errorf("key cannot perform the '%s' operation", op)
	}
	if k.Use != "" {
		want := "enc"
		if op == opSign || op == opVerify {
			want = "sig"
		}
		if k.Use != want {
			return fmt.Errorf("key cannot perform the '%s' operation", op)
		}
	}
	if k.Algorithm != "" && k.Algorithm != alg {
		return fmt.Errorf("key cannot be used with algorithm '%s'", alg)
	}
	return nil
}
