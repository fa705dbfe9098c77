package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// DefaultCATTL is how long a generated root and issuer are valid (Dapr: one year).
const DefaultCATTL = 365 * 24 * time.Hour

// GenerateOptions configures GenerateBundle.
type GenerateOptions struct {
	// TrustDomain is sentry's trust domain (Dapr's --trust-domain, default
	// "localhost"); it names the root's organisation.
	TrustDomain string
	// Namespace is sentry's namespace; the issuer's organisation is sentry's
	// SPIFFE ID as in Dapr. Default "default".
	Namespace string
	// TTL of root and issuer; DefaultCATTL if zero.
	TTL time.Duration
	// AllowedClockSkew back-dates NotBefore; DefaultAllowedClockSkew if zero.
	AllowedClockSkew time.Duration
	// Now is the time the certificates start; time.Now if zero.
	Now time.Time
}

// GenerateBundle makes a self-signed ECDSA P-256 root and an issuer signed
// by it.
func GenerateBundle(opts GenerateOptions) (*Bundle, error) {
	if opts.TrustDomain == "" {
		opts.TrustDomain = "localhost"
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultCATTL
	}
	if opts.AllowedClockSkew <= 0 {
		opts.AllowedClockSkew = DefaultAllowedClockSkew
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	sentryID, err := SentryID(opts.TrustDomain, opts.Namespace)
	if err != nil {
		return nil, err
	}

	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate root key: %w", err)
	}
	rootTmpl, err := caTemplate(opts.Now, opts.TTL, opts.AllowedClockSkew)
	if err != nil {
		return nil, err
	}
	rootTmpl.Subject = pkix.Name{Organization: []string{opts.TrustDomain}, CommonName: "tandem sentry root CA"}
	rootTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("create root certificate: %w", err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, fmt.Errorf("parse root certificate: %w", err)
	}

	issKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate issuer key: %w", err)
	}
	issTmpl, err := caTemplate(opts.Now, opts.TTL, opts.AllowedClockSkew)
	if err != nil {
		return nil, err
	}
	issTmpl.Subject = pkix.Name{Organization: []string{sentryID.String()}, CommonName: "tandem sentry issuer CA"}
	issTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	issTmpl.MaxPathLen = 0
	issTmpl.MaxPathLenZero = true
	issDER, err := x509.CreateCertificate(rand.Reader, issTmpl, root, issKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("create issuer certificate: %w", err)
	}
	iss, err := x509.ParseCertificate(issDER)
	if err != nil {
		return nil, fmt.Errorf("parse issuer certificate: %w", err)
	}
	keyPEM, err := encodeECKey(issKey)
	if err != nil {
		return nil, err
	}
	anchors := []*x509.Certificate{root}
	chain := []*x509.Certificate{iss}
	return &Bundle{
		TrustAnchors:    anchors,
		IssuerChain:     chain,
		IssuerKey:       issKey,
		TrustAnchorsPEM: EncodeCertificates(anchors),
		IssuerChainPEM:  EncodeCertificates(chain),
		IssuerKeyPEM:    keyPEM,
	}, nil
}

func caTemplate(now time.Time, ttl, skew time.Duration) (*x509.Certificate, error) {
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-skew).UTC(),
		NotAfter:              now.Add(ttl).UTC(),
		IsCA:                  true,
		BasicConstraintsValid: true,
	}, nil
}

// serialNumber returns a random 128-bit serial number.
func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n, nil
}

// SentryID returns sentry's SPIFFE ID, spiffe://<trustDomain>/ns/<namespace>/dapr-sentry,
// which daprd verifies with --control-plane-trust-domain and
// --control-plane-namespace.
func SentryID(trustDomain, namespace string) (spiffeid.ID, error) {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("sentry trust domain %q: %w", trustDomain, err)
	}
	id, err := spiffeid.FromSegments(td, "ns", namespace, "dapr-sentry")
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("sentry spiffe id in namespace %q: %w", namespace, err)
	}
	return id, nil
}
