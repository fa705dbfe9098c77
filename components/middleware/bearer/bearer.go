// Package bearer is middleware.http.bearer: requests must carry
// "Authorization: Bearer <JWT>" signed by a key of the issuer's JWKS, for
// the configured audience and issuer (metadata issuer, audience, jwksURL as
// in Dapr; without jwksURL it comes from the issuer's
// /.well-known/openid-configuration). The key set is fetched with retries
// (go-retryablehttp) at Init, refreshed in the background, and again when a
// token names a key it does not hold (a rotated key).
package bearer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/middleware"
)

// Type is the spec.type.
const Type = "middleware.http.bearer"

const (
	bearerPrefix = "bearer "
	// clockSkew is Dapr's allowed skew on exp, nbf and iat.
	clockSkew = 5 * time.Minute
	// refreshEvery is the background refresh of the key set; a token with
	// an unknown key refreshes it at most every minRefresh.
	refreshEvery = 10 * time.Minute
	minRefresh   = 5 * time.Second
	maxJWKSBytes = 1 << 20
)

// algorithms are the signature algorithms accepted (asymmetric only: the
// key set is public).
var algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// Middleware is one bearer component.
type Middleware struct {
	log *slog.Logger

	issuer, audience, jwksURL string
	client                    *retryablehttp.Client

	keys        atomic.Pointer[jose.JSONWebKeySet]
	refreshMu   sync.Mutex
	lastRefresh time.Time

	cancel context.CancelFunc
	done   chan struct{}
}

var _ middleware.Middleware = (*Middleware)(nil)

// New returns an uninitialised component.
func New(log *slog.Logger) func() middleware.Middleware {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func() middleware.Middleware { return &Middleware{log: log} }
}

// Init reads the metadata, finds and fetches the key set, and starts its
// background refresh.
func (m *Middleware) Init(ctx context.Context, md components.Metadata) error {
	m.log = m.log.With("middleware", md.Name, "type", Type)
	m.issuer = first(md, "issuer", "issuerURL")
	m.audience = first(md, "audience", "clientID")
	m.jwksURL = md.String("jwksURL", "")
	if m.issuer == "" {
		return components.Permanent(errors.New("metadata property 'issuer' is required"))
	}
	if m.audience == "" {
		return components.Permanent(errors.New("metadata property 'audience' is required"))
	}
	m.client = retryablehttp.NewClient()
	m.client.RetryMax = 3
	m.client.RetryWaitMin, m.client.RetryWaitMax = 200*time.Millisecond, 2*time.Second
	m.client.Logger = nil
	if m.jwksURL == "" {
		u, err := m.discover(ctx)
		if err != nil {
			return fmt.Errorf("failed to retrieve OpenID Configuration document: %w", err)
		}
		m.jwksURL = u
	}
	if err := m.refresh(ctx); err != nil {
		return fmt.Errorf("failed to fetch JWKS: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go m.run(rctx)
	return nil
}

func first(md components.Metadata, names ...string) string {
	for _, n := range names {
		if v := md.String(n, ""); v != "" {
			return v
		}
	}
	return ""
}

// discover reads jwks_uri from the issuer's OpenID configuration.
func (m *Middleware) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(m.issuer, "/") + "/.well-known/openid-configuration"
	b, err := m.get(ctx, u)
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURL string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", components.Permanent(fmt.Errorf("%s: failed to decode JSON response: %w", u, err))
	}
	if doc.JWKSURL == "" {
		return "", components.Permanent(fmt.Errorf("the OpenID Configuration document at %s does not contain a 'jwks_uri'", u))
	}
	if doc.Issuer != m.issuer {
		return "", components.Permanent(fmt.Errorf("the issuer found in the OpenID Configuration document (%q) doesn't match the one provided in the component's metadata (%q)", doc.Issuer, m.issuer))
	}
	return doc.JWKSURL, nil
}

func (m *Middleware) get(ctx context.Context, u string) ([]byte, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, components.Permanent(err)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
}

// refresh fetches the key set; the one in use stays on failure.
func (m *Middleware) refresh(ctx context.Context) error {
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()
	m.lastRefresh = time.Now()
	b, err := m.get(ctx, m.jwksURL)
	if err != nil {
		return err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return fmt.Errorf("%s is not a JSON Web Key Set: %w", m.jwksURL, err)
	}
	m.keys.Store(&set)
	return nil
}

// refreshForUnknownKey refreshes the key set when a token names a key it
// lacks, unless that was done within minRefresh.
func (m *Middleware) refreshForUnknownKey(ctx context.Context) {
	m.refreshMu.Lock()
	recent := time.Since(m.lastRefresh) < minRefresh
	m.refreshMu.Unlock()
	if recent {
		return
	}
	if err := m.refresh(ctx); err != nil {
		m.log.Warn("refreshing the JWKS for an unknown key failed", "url", m.jwksURL, "error", err)
	}
}

// run refreshes the key set until Close.
func (m *Middleware) run(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.refresh(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("error while refreshing JWKS cache; the previous keys stay in use", "url", m.jwksURL, "error", err)
			}
		}
	}
}

// Handler implements middleware.Middleware.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if len(auth) < len(bearerPrefix)+1 || !strings.EqualFold(auth[:len(bearerPrefix)], bearerPrefix) {
			respond(w, http.StatusUnauthorized)
			return
		}
		raw := auth[len(bearerPrefix):]
		if len(raw) < 10 || m.verify(r.Context(), raw) != nil {
			respond(w, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// verify checks the token's signature against the key set and its issuer,
// audience and times.
func (m *Middleware) verify(ctx context.Context, raw string) error {
	tok, err := jwt.ParseSigned(raw, algorithms)
	if err != nil {
		return err
	}
	if len(tok.Headers) != 1 {
		return errors.New("token must have one signature")
	}
	kid := tok.Headers[0].KeyID
	keys := m.candidates(kid)
	if len(keys) == 0 && kid != "" {
		m.refreshForUnknownKey(ctx)
		keys = m.candidates(kid)
	}
	var claims jwt.Claims
	verified := false
	for _, k := range keys {
		if err := tok.Claims(k.Key, &claims); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return errors.New("no key of the JWKS verifies the token")
	}
	return claims.ValidateWithLeeway(jwt.Expected{Issuer: m.issuer, AnyAudience: jwt.Audience{m.audience}, Time: time.Now()}, clockSkew)
}

func (m *Middleware) candidates(kid string) []jose.JSONWebKey {
	set := m.keys.Load()
	if set == nil {
		return nil
	}
	if kid == "" {
		return set.Keys
	}
	return set.Key(kid)
}

func respond(w http.ResponseWriter, code int) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(http.StatusText(code)))
}

// Close stops the background refresh.
func (m *Middleware) Close() error {
	if m.cancel != nil {
		m.cancel()
		<-m.done
	}
	return nil
}
