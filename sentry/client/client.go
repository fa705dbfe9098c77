// Package client obtains workload certificates from a sentry (Tandem's or
// Dapr's) over dapr.proto.sentry.v1.CA/SignCertificate. Client implements
// identity.Issuer.
//
// The connection is TLS without a client certificate; sentry's certificate
// must chain to the configured trust anchors and carry sentry's SPIFFE ID
// (spiffe://<control-plane-trust-domain>/ns/<control-plane-namespace>/dapr-sentry),
// exactly what daprd checks. Each try has a 3 s timeout and up to 5 tries
// are made, as daprd does.
package client

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/identity"
)

// Defaults, as daprd (pkg/security/sentry.go).
const (
	DefaultPerTryTimeout = 3 * time.Second
	DefaultMaxAttempts   = 5
)

// Config configures a Client.
type Config struct {
	// Address of sentry, host:port.
	Address string
	// TrustAnchors verify sentry's certificate (DAPR_TRUST_ANCHORS).
	TrustAnchors []*x509.Certificate
	// CurrentTrustAnchors, if set, is asked for the anchors at every
	// handshake instead of TrustAnchors, so that a rotated root is used to
	// verify sentry without a restart (for example identity.Source's
	// TrustAnchors method).
	CurrentTrustAnchors func() []*x509.Certificate
	// SentryID is the SPIFFE ID sentry must present; see SentryID.
	SentryID spiffeid.ID
	// Token is sent with every request (join token); may be empty.
	Token string
	// CurrentToken, if set, is asked for the token at every request
	// instead of Token (a projected service account token, which the
	// kubelet refreshes in its file).
	CurrentToken func() (string, error)
	// TokenValidator names the validator sentry should use; UNKNOWN lets
	// sentry pick its default. A request without a token names none.
	TokenValidator sentryv1.SignCertificateRequest_TokenValidator
	// JWTAudiences are asked for JWT SVIDs with every certificate
	// (daprd's --sentry-request-jwt-audiences); sentry returns one per
	// audience, and one for its trust domain.
	JWTAudiences []string
	// PerTryTimeout (DefaultPerTryTimeout if zero) and MaxAttempts
	// (DefaultMaxAttempts if zero).
	PerTryTimeout time.Duration
	MaxAttempts   int
	// RetryBackoff is the first wait between tries, doubled each time
	// (100ms if zero).
	RetryBackoff time.Duration
}

// Client signs CSRs through sentry.
type Client struct {
	cfg  Config
	conn *grpc.ClientConn
	ca   sentryv1.CAClient
}

var _ identity.Issuer = (*Client)(nil)

// New returns a client; it connects lazily, on the first Issue.
func New(cfg Config) (*Client, error) {
	if cfg.Address == "" {
		return nil, errors.New("sentry client: no sentry address (set --sentry-address)")
	}
	if cfg.CurrentTrustAnchors == nil && len(cfg.TrustAnchors) == 0 {
		return nil, errors.New("sentry client: no trust anchors to verify sentry with (set DAPR_TRUST_ANCHORS or --trust-anchors-file)")
	}
	if cfg.SentryID.IsZero() {
		return nil, errors.New("sentry client: sentry's SPIFFE ID is not set")
	}
	if cfg.PerTryTimeout <= 0 {
		cfg.PerTryTimeout = DefaultPerTryTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 100 * time.Millisecond
	}
	var bundle x509bundle.Source = x509bundle.FromX509Authorities(cfg.SentryID.TrustDomain(), cfg.TrustAnchors)
	if cfg.CurrentTrustAnchors != nil {
		bundle = anchorsFunc(cfg.CurrentTrustAnchors)
	}
	tlsConf := tlsconfig.TLSClientConfig(bundle, tlsconfig.AuthorizeID(cfg.SentryID))
	conn, err := grpc.NewClient(cfg.Address, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
	if err != nil {
		return nil, fmt.Errorf("sentry client for %s: %w", cfg.Address, err)
	}
	return &Client{cfg: cfg, conn: conn, ca: sentryv1.NewCAClient(conn)}, nil
}

// anchorsFunc is an x509bundle.Source read at every handshake.
type anchorsFunc func() []*x509.Certificate

func (f anchorsFunc) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	anchors := f()
	if len(anchors) == 0 {
		return nil, errors.New("sentry client: no trust anchors to verify sentry with")
	}
	return x509bundle.FromX509Authorities(td, anchors), nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Issue implements identity.Issuer: id must be
// spiffe://<trust-domain>/ns/<namespace>/<app-id>; csrDER is sent as PEM.
func (c *Client) Issue(ctx context.Context, id spiffeid.ID, csrDER []byte) (*identity.Issued, error) {
	app, err := identity.ParseApp(id)
	if err != nil {
		return nil, err
	}
	token := c.cfg.Token
	if c.cfg.CurrentToken != nil {
		if token, err = c.cfg.CurrentToken(); err != nil {
			return nil, fmt.Errorf("token for sentry: %w", err)
		}
	}
	validator := c.cfg.TokenValidator
	if token == "" {
		validator = sentryv1.SignCertificateRequest_UNKNOWN
	}
	req := &sentryv1.SignCertificateRequest{
		Id:                        app.AppID,
		Namespace:                 app.Namespace,
		TrustDomain:               app.TrustDomain,
		Token:                     token,
		TokenValidator:            validator,
		CertificateSigningRequest: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}),
		JwtAudiences:              c.cfg.JWTAudiences,
	}
	resp, err := c.call(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("sentry at %s: %w", c.cfg.Address, err)
	}
	issued, err := ParseResponse(resp)
	if err != nil {
		return nil, err
	}
	if issued.JWTs == nil && resp.GetJwt().GetValue() != "" && len(c.cfg.JWTAudiences) > 0 {
		// A sentry without per-audience tokens: its one token carries
		// every audience asked for.
		issued.JWTs = make(map[string]string, len(c.cfg.JWTAudiences))
		for _, aud := range c.cfg.JWTAudiences {
			issued.JWTs[aud] = resp.GetJwt().GetValue()
		}
	}
	return issued, nil
}

func (c *Client) call(ctx context.Context, req *sentryv1.SignCertificateRequest) (*sentryv1.SignCertificateResponse, error) {
	backoff := c.cfg.RetryBackoff
	var lastErr error
	for attempt := 1; ; attempt++ {
		tctx, cancel := context.WithTimeout(ctx, c.cfg.PerTryTimeout)
		resp, err := c.ca.SignCertificate(tctx, req)
		cancel()
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if !retryable(err) || attempt >= c.cfg.MaxAttempts || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	return nil, lastErr
}

// retryable: transport trouble and per-try timeouts are retried; a refusal
// (PermissionDenied, InvalidArgument, ...) is final.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

// ParseResponse turns a SignCertificateResponse into identity.Issued. The
// workload chain is the leaf plus intermediates (a root that an old sentry
// appended is dropped); the trust anchors are every certificate in
// trust_chain_certificates that is not part of the workload chain.
func ParseResponse(resp *sentryv1.SignCertificateResponse) (*identity.Issued, error) {
	chain, err := ParseTrustAnchors(resp.GetWorkloadCertificate())
	if err != nil {
		return nil, fmt.Errorf("parse workload certificate: %w", err)
	}
	var anchors []*x509.Certificate
	for _, entry := range resp.GetTrustChainCertificates() {
		certs, err := ParseTrustAnchors(entry)
		if err != nil {
			return nil, fmt.Errorf("parse trust chain certificates: %w", err)
		}
		anchors = append(anchors, certs...)
	}
	for len(chain) > 1 && selfSigned(chain[len(chain)-1]) {
		chain = chain[:len(chain)-1]
	}
	anchors = without(anchors, chain)
	validUntil := chain[0].NotAfter
	if resp.GetValidUntil().IsValid() && resp.GetValidUntil().AsTime().Before(validUntil) {
		validUntil = resp.GetValidUntil().AsTime()
	}
	var jwts map[string]string
	if n := len(resp.GetPerAudienceJwts()); n > 0 {
		jwts = make(map[string]string, n)
		for aud, t := range resp.GetPerAudienceJwts() {
			if t.GetValue() != "" {
				jwts[aud] = t.GetValue()
			}
		}
	}
	return &identity.Issued{Chain: chain, TrustAnchors: anchors, ValidUntil: validUntil, JWTs: jwts}, nil
}

func selfSigned(c *x509.Certificate) bool {
	return c.IsCA && c.CheckSignatureFrom(c) == nil
}

func without(certs, drop []*x509.Certificate) []*x509.Certificate {
	out := certs[:0:0]
	for _, c := range certs {
		keep := true
		for _, d := range drop {
			if c.Equal(d) {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, c)
		}
	}
	return out
}

// ParseTrustAnchors decodes PEM data holding one or more certificates, as
// in DAPR_TRUST_ANCHORS or a trust anchors file.
func ParseTrustAnchors(data []byte) ([]*x509.Certificate, error) {
	return identity.ParseCertificates(data)
}

// SentryID returns the SPIFFE ID daprd expects of sentry:
// spiffe://<controlPlaneTrustDomain>/ns/<controlPlaneNamespace>/dapr-sentry.
// Empty arguments take daprd's defaults, "localhost" and "default".
func SentryID(controlPlaneTrustDomain, controlPlaneNamespace string) (spiffeid.ID, error) {
	if controlPlaneTrustDomain == "" {
		controlPlaneTrustDomain = "localhost"
	}
	if controlPlaneNamespace == "" {
		controlPlaneNamespace = "default"
	}
	td, err := spiffeid.TrustDomainFromString(controlPlaneTrustDomain)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("control plane trust domain %q: %w", controlPlaneTrustDomain, err)
	}
	id, err := spiffeid.FromSegments(td, "ns", controlPlaneNamespace, "dapr-sentry")
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("control plane namespace %q: %w", controlPlaneNamespace, err)
	}
	return id, nil
}
