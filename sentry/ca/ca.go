package ca

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Dapr's defaults (pkg/sentry/config).
const (
	DefaultWorkloadCertTTL  = 24 * time.Hour
	DefaultAllowedClockSkew = 15 * time.Minute
)

// Options configures a CA.
type Options struct {
	// WorkloadCertTTL is the lifetime of a signed certificate when Sign is
	// given no TTL; DefaultWorkloadCertTTL if zero.
	WorkloadCertTTL time.Duration
	// AllowedClockSkew back-dates NotBefore; DefaultAllowedClockSkew if
	// zero, none if negative.
	AllowedClockSkew time.Duration
	// Now returns the current time; time.Now if nil (tests set it).
	Now func() time.Time
}

// CA signs workload certificates with a Bundle's issuer. It is immutable
// and safe for concurrent use.
type CA struct {
	bundle *Bundle
	root   *x509.Certificate
	ttl    time.Duration
	skew   time.Duration
	now    func() time.Time
}

// New returns a CA for b, which must verify.
func New(b *Bundle, opts Options) (*CA, error) {
	if b == nil {
		return nil, errors.New("ca: nil bundle")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := b.Verify(opts.Now()); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	root, err := b.ActiveRoot()
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	c := &CA{bundle: b, root: root, ttl: opts.WorkloadCertTTL, skew: opts.AllowedClockSkew, now: opts.Now}
	if c.ttl <= 0 {
		c.ttl = DefaultWorkloadCertTTL
	}
	if c.skew == 0 {
		c.skew = DefaultAllowedClockSkew
	} else if c.skew < 0 {
		c.skew = 0
	}
	return c, nil
}

// Bundle returns the CA's bundle (do not modify it).
func (c *CA) Bundle() *Bundle { return c.bundle }

// TrustAnchors returns a copy of all trust anchors.
func (c *CA) TrustAnchors() []*x509.Certificate {
	return append([]*x509.Certificate(nil), c.bundle.TrustAnchors...)
}

// TrustAnchorsPEM returns all trust anchors as concatenated PEM blocks.
func (c *CA) TrustAnchorsPEM() []byte { return EncodeCertificates(c.bundle.TrustAnchors) }

// ActiveRoot returns the trust anchor the issuer chains to.
func (c *CA) ActiveRoot() *x509.Certificate { return c.root }

// Issuer returns the issuer certificate.
func (c *CA) Issuer() *x509.Certificate { return c.bundle.IssuerChain[0] }

// WorkloadCertTTL returns the default lifetime of signed certificates.
func (c *CA) WorkloadCertTTL() time.Duration { return c.ttl }

// Sign issues a certificate for id over csr's public key and returns it
// followed by the issuer chain. The CSR's subject and SANs are ignored: the
// caller has already decided that the requester is id, and which dns names
// (if any) it may serve as. NotBefore is back-dated by the allowed clock
// skew; NotAfter is now+ttl (the default TTL if ttl <= 0) but never after
// the issuer expires.
func (c *CA) Sign(csr *x509.CertificateRequest, id spiffeid.ID, ttl time.Duration, dns ...string) ([]*x509.Certificate, error) {
	if csr == nil {
		return nil, errors.New("sign: nil certificate request")
	}
	if id.IsZero() {
		return nil, errors.New("sign: empty spiffe id")
	}
	if ttl <= 0 {
		ttl = c.ttl
	}
	now := c.now()
	issNotAfter := c.bundle.IssuerNotAfter()
	if !now.Before(issNotAfter) {
		return nil, fmt.Errorf("sign: the issuer certificate expired at %s; install new issuer credentials", issNotAfter.UTC().Format(time.RFC3339))
	}
	notAfter := now.Add(ttl)
	if notAfter.After(issNotAfter) {
		notAfter = issNotAfter
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(id.String())
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-c.skew).UTC(),
		NotAfter:              notAfter.UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:                  []*url.URL{u},
		DNSNames:              dns,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.bundle.IssuerChain[0], csr.PublicKey, c.bundle.IssuerKey)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", id, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse signed certificate: %w", err)
	}
	return append([]*x509.Certificate{leaf}, c.bundle.IssuerChain...), nil
}

// IssueTLS makes a fresh Ed25519 key (as Dapr's sentry and daprd use) and
// signs a certificate for id with it, returning it ready for a tls.Config
// (sentry's own serving cert).
func (c *CA) IssueTLS(id spiffeid.ID, ttl time.Duration) (*tls.Certificate, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate serving key: %w", err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("create serving csr: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("parse serving csr: %w", err)
	}
	chain, err := c.Sign(csr, id, ttl)
	if err != nil {
		return nil, err
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, ch := range chain {
		cert.Certificate = append(cert.Certificate, ch.Raw)
	}
	return cert, nil
}
