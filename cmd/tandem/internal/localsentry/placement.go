package localsentry

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"log/slog"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/tandemrun/tandem/cmd/tandem/internal/home"
	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/sentry/ca"
)

// placementIdentity returns the source placement serves with: an SVID for
// spiffe://localhost/ns/default/dapr-placement (the identity sidecars
// accept from placement) signed by the local CA, and its trust anchors.
// The task renews the SVID at half its lifetime.
func placementIdentity(authority *ca.CA, log *slog.Logger) (*identity.Source, func(context.Context) error, error) {
	return localIdentity(authority, home.TrustDomain, "dapr-placement", log)
}

// localIdentity is placementIdentity for any control-plane service: an SVID
// for spiffe://<td>/ns/default/<name> signed by the local CA.
func localIdentity(authority *ca.CA, trustDomain, name string, log *slog.Logger) (*identity.Source, func(context.Context) error, error) {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return nil, nil, err
	}
	id, err := spiffeid.FromSegments(td, "ns", "default", name)
	if err != nil {
		return nil, nil, err
	}
	src := identity.NewSource()
	src.SetTrustAnchors(authority.TrustAnchors())
	issue := func() (time.Duration, error) {
		cert, err := authority.IssueTLS(id, authority.WorkloadCertTTL())
		if err != nil {
			return 0, fmt.Errorf("issue %s's certificate: %w", name, err)
		}
		key, ok := cert.PrivateKey.(crypto.Signer)
		if !ok {
			return 0, fmt.Errorf("%s's key is a %T, not a crypto.Signer", name, cert.PrivateKey)
		}
		chain := make([]*x509.Certificate, 0, len(cert.Certificate))
		for _, der := range cert.Certificate {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return 0, fmt.Errorf("%s's certificate: %w", name, err)
			}
			chain = append(chain, c)
		}
		src.SetSVID(&x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key})
		return time.Until(cert.Leaf.NotAfter) / 2, nil
	}
	wait, err := issue()
	if err != nil {
		return nil, nil, err
	}
	renew := func(ctx context.Context) error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(max(wait, time.Minute)):
			}
			w, err := issue()
			if err != nil {
				log.Error("renew a control-plane certificate; retrying in a minute", "spiffe_id", id.String(), "error", err)
				wait = time.Minute
				continue
			}
			wait = w
		}
	}
	return src, renew, nil
}
