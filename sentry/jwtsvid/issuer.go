package jwtsvid

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Dapr's defaults.
const (
	DefaultTTL              = 24 * time.Hour
	DefaultAllowedClockSkew = 15 * time.Minute
)

// IssuerOptions configure an Issuer.
type IssuerOptions struct {
	Bundle *Bundle
	// Algorithm is the JWS algorithm (--jwt-signing-algorithm); it must
	// suit the key. DefaultAlgorithm if empty.
	Algorithm string
	// KeyID is the kid header (--jwt-key-id); Thumbprint of the key if empty.
	KeyID string
	// Issuer is the iss claim (--jwt-issuer); none if empty.
	Issuer string
	// TTL of a token when Issue is given none; DefaultTTL if zero.
	TTL time.Duration
	// AllowedClockSkew back-dates nbf; DefaultAllowedClockSkew if zero, none
	// if negative (as the X.509 CA).
	AllowedClockSkew time.Duration
	// Now returns the current time; time.Now if nil.
	Now func() time.Time
}

// Issuer signs JWT SVIDs. It is immutable and safe for concurrent use.
type Issuer struct {
	signer jose.Signer
	bundle *Bundle
	alg    string
	kid    string
	iss    string
	ttl    time.Duration
	skew   time.Duration
	now    func() time.Time
}

// NewIssuer checks that the key suits the algorithm and prepares a signer.
func NewIssuer(o IssuerOptions) (*Issuer, error) {
	if o.Bundle == nil || o.Bundle.Key == nil {
		return nil, errors.New("jwt issuer: no signing key")
	}
	if o.Algorithm == "" {
		o.Algorithm = DefaultAlgorithm
	}
	if err := keySuits(o.Bundle.Key, o.Algorithm); err != nil {
		return nil, fmt.Errorf("jwt issuer: the signing key cannot sign %s (--jwt-signing-algorithm): %w", o.Algorithm, err)
	}
	if o.KeyID == "" {
		var err error
		if o.KeyID, err = Thumbprint(o.Bundle.Key.Public()); err != nil {
			return nil, err
		}
	}
	i := &Issuer{bundle: o.Bundle, alg: o.Algorithm, kid: o.KeyID, iss: o.Issuer, ttl: o.TTL, skew: o.AllowedClockSkew, now: o.Now}
	if i.ttl <= 0 {
		i.ttl = DefaultTTL
	}
	switch {
	case i.skew == 0:
		i.skew = DefaultAllowedClockSkew
	case i.skew < 0:
		i.skew = 0
	}
	if i.now == nil {
		i.now = time.Now
	}
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.SignatureAlgorithm(o.Algorithm),
		Key:       jose.JSONWebKey{Key: o.Bundle.Key, KeyID: o.KeyID},
	}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("jwt issuer: %w", err)
	}
	i.signer = signer
	return i, nil
}

// keySuits is Dapr's check of key type (and curve) against the algorithm.
func keySuits(key crypto.Signer, alg string) error {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		if _, ok := key.(*rsa.PrivateKey); !ok {
			return fmt.Errorf("%s needs an RSA key, not %T", alg, key)
		}
	case "ES256", "ES384", "ES512":
		k, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return fmt.Errorf("%s needs an ECDSA key, not %T", alg, key)
		}
		want := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		if k.Curve != want {
			return fmt.Errorf("%s needs a %s key, not %s", alg, want.Params().Name, k.Curve.Params().Name)
		}
	case "EdDSA":
		if _, ok := key.(ed25519.PrivateKey); !ok {
			return fmt.Errorf("EdDSA needs an Ed25519 key, not %T", key)
		}
	default:
		return fmt.Errorf("unsupported signature algorithm %q (RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA)", alg)
	}
	return nil
}

// Algorithm returns the JWS algorithm tokens are signed with.
func (i *Issuer) Algorithm() string { return i.alg }

// KeyID returns the kid header of issued tokens.
func (i *Issuer) KeyID() string { return i.kid }

// Bundle returns the key material (do not modify it).
func (i *Issuer) Bundle() *Bundle { return i.bundle }

// Claims are the claims of a JWT SVID. The audience is always an array, as
// Dapr's sentry writes it, even with one entry.
type Claims struct {
	ID        string   `json:"jti"`
	Subject   string   `json:"sub"`
	IssuedAt  int64    `json:"iat"`
	Audience  []string `json:"aud"`
	NotBefore int64    `json:"nbf"`
	Expiry    int64    `json:"exp"`
	Use       string   `json:"use"`
	Issuer    string   `json:"iss,omitempty"`
}

// Issue signs a token for id with the given audiences (at least one), valid
// for ttl (the Issuer's TTL if ttl <= 0).
func (i *Issuer) Issue(id spiffeid.ID, audiences []string, ttl time.Duration) (string, error) {
	if id.IsZero() {
		return "", errors.New("issue jwt: empty spiffe id")
	}
	if len(audiences) == 0 {
		return "", errors.New("issue jwt: no audience")
	}
	if ttl <= 0 {
		ttl = i.ttl
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", fmt.Errorf("issue jwt: jti: %w", err)
	}
	now := i.now()
	payload, err := json.Marshal(Claims{
		ID:        hex.EncodeToString(nonce[:]),
		Subject:   id.String(),
		IssuedAt:  now.Unix(),
		Audience:  audiences,
		NotBefore: now.Add(-i.skew).Unix(),
		Expiry:    now.Add(ttl).Unix(),
		Use:       "sig", // Azure's workload identity federation wants it
		Issuer:    i.iss,
	})
	if err != nil {
		return "", fmt.Errorf("issue jwt: %w", err)
	}
	jws, err := i.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("issue jwt: sign: %w", err)
	}
	return jws.CompactSerialize()
}
