package jwtsvid

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tandemrun/tandem/sentry/ca"
)

// Dapr's defaults (pkg/sentry/config, cmd/sentry/options).
const (
	DefaultKeyFilename  = "jwt.key"
	DefaultJWKSFilename = "jwks.json"
	// DefaultAlgorithm is the signature algorithm of a generated key, and
	// the default of --jwt-signing-algorithm.
	DefaultAlgorithm = "RS256"
)

// Bundle is the JWT key material: the private signing key and the key set
// published to verifiers, which must hold the signing key's public half.
type Bundle struct {
	Key crypto.Signer
	// KeyPEM and JWKSJSON are the stored forms, written back byte-exact.
	KeyPEM   []byte
	JWKS     jose.JSONWebKeySet
	JWKSJSON []byte
}

// Generate makes an RSA 2048 signing key (PKCS#8 PEM) and a JWKS holding its
// public key with kid = Thumbprint, alg RS256 and use sig, as Dapr's sentry
// generates them.
func Generate() (*Bundle, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate jwt signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal jwt signing key: %w", err)
	}
	kid, err := Thumbprint(key.Public())
	if err != nil {
		return nil, err
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: kid, Algorithm: DefaultAlgorithm, Use: "sig"}}}
	js, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("marshal jwks: %w", err)
	}
	return &Bundle{Key: key, KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), JWKS: set, JWKSJSON: js}, nil
}

// Thumbprint is Dapr's default key ID: the RFC 7638 SHA-256 thumbprint of
// the public key in standard, padded base64 (not base64url).
func Thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("jwt signing key thumbprint: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sum), nil
}

// Parse decodes a signing key (PEM: PKCS#8, PKCS#1 or SEC 1) and a JWKS and
// checks that they belong together, as Dapr's sentry does: with keyID set,
// the set must hold a key with that kid whose public key is the signing
// key's; without, any key (not marked for another use than "sig") with the
// signing key's public key will do.
func Parse(keyPEM, jwksJSON []byte, keyID string) (*Bundle, error) {
	key, err := ca.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("jwt signing key: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwksJSON, &set); err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("the jwks holds no keys")
	}
	if err := matchKey(set, key.Public(), keyID); err != nil {
		return nil, err
	}
	return &Bundle{Key: key, KeyPEM: keyPEM, JWKS: set, JWKSJSON: jwksJSON}, nil
}

func matchKey(set jose.JSONWebKeySet, pub crypto.PublicKey, keyID string) error {
	same := func(k jose.JSONWebKey) bool {
		if k.Use != "" && k.Use != "sig" {
			return false
		}
		p := k.Public()
		eq, ok := p.Key.(interface{ Equal(crypto.PublicKey) bool })
		return ok && eq.Equal(pub)
	}
	if keyID != "" {
		found := false
		for _, k := range set.Keys {
			if k.KeyID != keyID {
				continue
			}
			found = true
			if same(k) {
				return nil
			}
		}
		if !found {
			return fmt.Errorf("the jwks holds no key with the key id %q (--jwt-key-id)", keyID)
		}
		return fmt.Errorf("the jwks key with the key id %q (--jwt-key-id) is not the public key of the jwt signing key", keyID)
	}
	for _, k := range set.Keys {
		if same(k) {
			return nil
		}
	}
	return errors.New("the jwks holds no public key of the jwt signing key")
}

// PublicJWKS returns the key set as served to verifiers: every key's public
// half only, so that a private key put into jwks.json by mistake is never
// published.
func (b *Bundle) PublicJWKS() ([]byte, error) {
	pub := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(b.JWKS.Keys))}
	for _, k := range b.JWKS.Keys {
		if _, symmetric := k.Key.([]byte); symmetric {
			continue // a shared secret has no public half
		}
		pub.Keys = append(pub.Keys, k.Public())
	}
	return json.Marshal(pub)
}

// Paths are the two files of a Bundle.
type Paths struct {
	Key  string
	JWKS string
}

// PathsIn joins each file name to dir unless it is absolute; empty names
// are Dapr's defaults (jwt.key, jwks.json).
func PathsIn(dir, keyFile, jwksFile string) Paths {
	join := func(name, def string) string {
		if name == "" {
			name = def
		}
		if filepath.IsAbs(name) {
			return name
		}
		return filepath.Join(dir, name)
	}
	return Paths{Key: join(keyFile, DefaultKeyFilename), JWKS: join(jwksFile, DefaultJWKSFilename)}
}

// Load reads and checks the files. If neither exists the error wraps
// fs.ErrNotExist; if only one does, it is an error (Dapr would generate a
// new key over the remaining one; a verifier that cached the old key set
// would then refuse every token, so we ask for the missing file instead).
func Load(p Paths, keyID string) (*Bundle, error) {
	keyPEM, kerr := os.ReadFile(p.Key)
	jwks, jerr := os.ReadFile(p.JWKS)
	kMissing, jMissing := errors.Is(kerr, fs.ErrNotExist), errors.Is(jerr, fs.ErrNotExist)
	switch {
	case kMissing && jMissing:
		return nil, fmt.Errorf("no jwt signing key at %s and no jwks at %s: %w", p.Key, p.JWKS, fs.ErrNotExist)
	case kMissing:
		return nil, fmt.Errorf("%s present but the jwt signing key %s is missing; restore it or remove both to generate a new key", p.JWKS, p.Key)
	case jMissing:
		return nil, fmt.Errorf("the jwt signing key %s present but %s is missing; restore it or remove both to generate a new key", p.Key, p.JWKS)
	case kerr != nil:
		return nil, fmt.Errorf("read jwt signing key: %w", kerr)
	case jerr != nil:
		return nil, fmt.Errorf("read jwks: %w", jerr)
	}
	b, err := Parse(keyPEM, jwks, keyID)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", p.Key, p.JWKS, err)
	}
	return b, nil
}

// Write stores the key (mode 0600) and the key set (0644: it is public).
func (b *Bundle) Write(p Paths) error {
	return ca.WriteCredentials(ca.CredentialFile{Path: p.Key, Data: b.KeyPEM, Mode: 0o600},
		ca.CredentialFile{Path: p.JWKS, Data: b.JWKSJSON, Mode: 0o644})
}

// LoadOrGenerate loads the bundle at p, or generates one and writes it
// there when neither file exists. generated reports which happened.
func LoadOrGenerate(p Paths, keyID string) (b *Bundle, generated bool, err error) {
	b, err = Load(p, keyID)
	if err == nil {
		return b, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if b, err = Generate(); err != nil {
		return nil, false, err
	}
	if keyID != "" {
		// Dapr checks a given kid only against stored key sets; a generated
		// set carries it so that tokens and set agree.
		b.JWKS.Keys[0].KeyID = keyID
		if b.JWKSJSON, err = json.Marshal(b.JWKS); err != nil {
			return nil, false, fmt.Errorf("marshal jwks: %w", err)
		}
	}
	if err := b.Write(p); err != nil {
		return nil, false, err
	}
	return b, true, nil
}
