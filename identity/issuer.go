package identity

import (
	"context"
	"crypto/x509"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Issuer signs a workload's certificate signing request. sentry/client
// implements it over Dapr's dapr.proto.sentry.v1.CA/SignCertificate.
type Issuer interface {
	// Issue asks for an X.509 SVID for id. csrDER is a DER-encoded PKCS#10
	// request whose URI SAN is id.
	Issue(ctx context.Context, id spiffeid.ID, csrDER []byte) (*Issued, error)
}

// Issued is what an Issuer returns.
type Issued struct {
	// Chain is the workload certificate followed by its intermediates.
	Chain []*x509.Certificate
	// TrustAnchors are the roots peers' certificates are verified against.
	TrustAnchors []*x509.Certificate
	// ValidUntil is when the workload certificate expires.
	ValidUntil time.Time
	// JWTs are JWT SVIDs for the same identity, by audience, when the
	// issuer was asked for them (sentry's per-audience tokens).
	JWTs map[string]string
}
