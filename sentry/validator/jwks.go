package validator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// JWKSOptions configure a JWKS validator, as the options of Dapr's "jwks"
// token validator (spec.mtls.tokenValidators in sentry's Configuration).
type JWKSOptions struct {
	// Source is the key set: its JSON inline, an http(s) URL, or a file.
	Source string
	// CACertificate (PEM) verifies an https Source instead of the system's
	// roots.
	CACertificate string
	// RequestTimeout bounds a fetch of a URL Source (30s if 0).
	RequestTimeout time.Duration
	// MinRefreshInterval is the least time between two reads of a URL or
	// file Source, made when a token names a key the set lacks (10m if 0).
	MinRefreshInterval time.Duration
	// Audience is what a token's aud must hold: sentry's SPIFFE ID.
	Audience string
}

// jwtSkew is the clock skew allowed on a token's exp, nbf and iat (Dapr's).
const jwtSkew = 5 * time.Minute

// signatureAlgorithms are the asymmetric algorithms a token may be signed
// with.
var signatureAlgorithms = []jose.SignatureAlgorithm{
	jose.EdDSA, jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
}

// JWKS admits requests whose token is a JWT signed by a key of a JSON Web
// Key Set, whose audience holds sentry's SPIFFE ID and whose subject is the
// SPIFFE ID asked for (spiffe://<trust domain>/ns/<namespace>/<app id>), as
// Dapr's "jwks" validator does.
type JWKS struct {
	opts   JWKSOptions
	client *http.Client

	mu      sync.Mutex
	keys    *jose.JSONWebKeySet
	fetched time.Time
}

var _ Validator = (*JWKS)(nil)

// NewJWKS returns a JWKS validator. An inline key set is parsed now; a URL
// or a file is read when the first request comes.
func NewJWKS(o JWKSOptions) (*JWKS, error) {
	if strings.TrimSpace(o.Source) == "" {
		return nil, errors.New("jwks validator: options.source is required (the key set as JSON, an http(s) URL or a file)")
	}
	if o.Audience == "" {
		return nil, errors.New("jwks validator: no audience (sentry's SPIFFE ID)")
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.MinRefreshInterval <= 0 {
		o.MinRefreshInterval = 10 * time.Minute
	}
	j := &JWKS{opts: o}
	if strings.HasPrefix(strings.TrimSpace(o.Source), "{") {
		keys, err := parseKeySet([]byte(o.Source))
		if err != nil {
			return nil, fmt.Errorf("jwks validator: options.source: %w", err)
		}
		j.keys = keys
		return j, nil
	}
	if isURL(o.Source) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if o.CACertificate != "" {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(o.CACertificate)) {
				return nil, errors.New("jwks validator: options.caCertificate holds no PEM certificate")
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		j.client = &http.Client{Transport: tr, Timeout: o.RequestTimeout}
	}
	return j, nil
}

func isURL(s string) bool { return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") }

func parseKeySet(b []byte) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("the JSON Web Key Set has no keys")
	}
	return &set, nil
}

// keySet returns the key set, reading a URL or file source when it was
// never read, or when refresh is asked and MinRefreshInterval has passed.
func (j *JWKS) keySet(ctx context.Context, refresh bool) (*jose.JSONWebKeySet, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	inline := j.keys != nil && j.fetched.IsZero()
	if inline || (j.keys != nil && (!refresh || time.Since(j.fetched) < j.opts.MinRefreshInterval)) {
		return j.keys, nil
	}
	b, err := j.read(ctx)
	if err == nil {
		var keys *jose.JSONWebKeySet
		if keys, err = parseKeySet(b); err == nil {
			j.keys, j.fetched = keys, time.Now()
		}
	}
	if err != nil && j.keys == nil {
		return nil, fmt.Errorf("jwks validator not ready: %s: %w", j.opts.Source, err)
	}
	return j.keys, nil // a failed refresh keeps the keys read before
}

func (j *JWKS) read(ctx context.Context) ([]byte, error) {
	if j.client == nil {
		return os.ReadFile(strings.TrimPrefix(j.opts.Source, "file://"))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.opts.Source, nil)
	if err != nil {
		return nil, err
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET answered %s", resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

// Validate implements Validator.
func (j *JWKS) Validate(ctx context.Context, req *sentryv1.SignCertificateRequest) (spiffeid.ID, error) {
	if req.GetToken() == "" {
		return spiffeid.ID{}, errors.New("the request does not contain a token")
	}
	id, err := RequestedID(req)
	if err != nil {
		return spiffeid.ID{}, err
	}
	tok, err := jwt.ParseSigned(req.GetToken(), signatureAlgorithms)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("token validation failed: not a signed JWT: %w", err)
	}
	kid := ""
	if len(tok.Headers) > 0 {
		kid = tok.Headers[0].KeyID
	}
	keys, err := j.keySet(ctx, false)
	if err != nil {
		return spiffeid.ID{}, err
	}
	if kid != "" && len(keys.Key(kid)) == 0 {
		// A key that is new at the source: read it again (at most every
		// MinRefreshInterval).
		if keys, err = j.keySet(ctx, true); err != nil {
			return spiffeid.ID{}, err
		}
	}
	var claims jwt.Claims
	if !verify(tok, keys, kid, &claims) {
		return spiffeid.ID{}, errors.New("token validation failed: could not verify message using any of the signatures or keys")
	}
	err = claims.ValidateWithLeeway(jwt.Expected{AnyAudience: jwt.Audience{j.opts.Audience}, Subject: id.String(), Time: time.Now()}, jwtSkew)
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, jwt.ErrInvalidAudience):
		return spiffeid.ID{}, fmt.Errorf(`token validation failed: "aud" not satisfied: the token is not for %s`, j.opts.Audience)
	case errors.Is(err, jwt.ErrInvalidSubject):
		return spiffeid.ID{}, fmt.Errorf(`token validation failed: "sub" not satisfied: the token is not for %s`, id)
	case errors.Is(err, jwt.ErrExpired):
		return spiffeid.ID{}, errors.New(`token validation failed: "exp" not satisfied: the token has expired`)
	case errors.Is(err, jwt.ErrNotValidYet):
		return spiffeid.ID{}, errors.New(`token validation failed: "nbf" not satisfied: the token is not valid yet`)
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return spiffeid.ID{}, errors.New(`token validation failed: "iat" not satisfied: the token is issued in the future`)
	}
	return spiffeid.ID{}, fmt.Errorf("token validation failed: %w", err)
}

// verify checks tok's signature with the keys named kid (every key when
// the token names none) and decodes its claims into claims.
func verify(tok *jwt.JSONWebToken, keys *jose.JSONWebKeySet, kid string, claims *jwt.Claims) bool {
	candidates := keys.Keys
	if kid != "" {
		candidates = keys.Key(kid)
	}
	for _, k := range candidates {
		pub := k.Public() // empty for a symmetric key, which is not accepted
		if pub.Key != nil && tok.Claims(pub, claims) == nil {
			return true
		}
	}
	return false
}
