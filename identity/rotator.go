package identity

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// DefaultRetryInterval is how long a Rotator waits after a failed renewal.
const DefaultRetryInterval = 3 * time.Second

// Rotator obtains the workload's SVID from an Issuer and renews it at half of
// its remaining lifetime. A fresh Ed25519 key (as daprd's) is made for every renewal;
// the key never leaves the process.
type Rotator struct {
	ID     spiffeid.ID
	Issuer Issuer
	Source *Source
	Log    *slog.Logger
	// RetryInterval is the wait after a failed renewal (DefaultRetryInterval if zero).
	RetryInterval time.Duration
	// OnRotate, if set, is called after every successful issuance.
	OnRotate func(svid *x509svid.SVID)
	// OnFailure, if set, is called after every failed issuance.
	OnFailure func(err error)
	// NewKey, if set, makes the key of each renewal instead of Ed25519
	// (the injector serves the API server, which may refuse Ed25519).
	NewKey func() (crypto.Signer, error)
}

// Renew obtains a new SVID now and installs it and the trust anchors in the
// Source. It returns when the time the next renewal is due.
func (r *Rotator) Renew(ctx context.Context) (next time.Time, err error) {
	// An Ed25519 key, as daprd's: its certificate is what peers (and
	// Dapr's own tests) see on the internal port.
	var key crypto.Signer
	if r.NewKey != nil {
		key, err = r.NewKey()
	} else {
		_, key, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("generate key: %w", err)
	}
	csr, err := NewCSR(key, r.ID)
	if err != nil {
		return time.Time{}, err
	}
	start := time.Now()
	issued, err := r.Issuer.Issue(ctx, r.ID, csr)
	if err != nil {
		return time.Time{}, fmt.Errorf("issue svid for %s: %w", r.ID, err)
	}
	if len(issued.Chain) == 0 {
		return time.Time{}, errors.New("issuer returned an empty certificate chain")
	}
	// Sentry decides the trust domain (daprd takes what it issues); the
	// namespace and app must be the ones asked for.
	got, err := x509svid.IDFromCert(issued.Chain[0])
	if err != nil || got.Path() != r.ID.Path() {
		return time.Time{}, fmt.Errorf("issuer returned a certificate for %v, want %s (%v)", got, r.ID, err)
	}
	svid := &x509svid.SVID{ID: got, Certificates: issued.Chain, PrivateKey: key}
	if len(issued.TrustAnchors) > 0 {
		r.Source.SetTrustAnchors(issued.TrustAnchors)
	}
	r.Source.SetJWTs(issued.JWTs)
	r.Source.SetSVID(svid)
	if r.OnRotate != nil {
		r.OnRotate(svid)
	}
	return RenewalTime(start, issued.Chain[0].NotAfter), nil
}

// RenewalTime is halfway between when the certificate was obtained and when
// it expires. The certificate's NotBefore is back-dated for clock skew, so it
// is not used: a short-lived test certificate would otherwise look half spent
// the moment it arrives.
func RenewalTime(obtained, notAfter time.Time) time.Time {
	return obtained.Add(notAfter.Sub(obtained) / 2)
}

// Run renews the SVID until ctx ends. The first issuance must already have
// happened (call Renew first to fail start-up fast); Run retries failures
// every RetryInterval and keeps the current SVID meanwhile.
func (r *Rotator) Run(ctx context.Context, next time.Time) error {
	retry := r.RetryInterval
	if retry <= 0 {
		retry = DefaultRetryInterval
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for {
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		n, err := r.Renew(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if r.OnFailure != nil {
				r.OnFailure(err)
			}
			log.Warn("certificate renewal failed; keeping the current certificate and retrying",
				"spiffe_id", r.ID.String(), "retry_in", retry.String(), "error", err)
			next = time.Now().Add(retry)
			continue
		}
		svid, _ := r.Source.GetX509SVID()
		log.Info("workload certificate rotated", "spiffe_id", r.ID.String(),
			"serial", svid.Certificates[0].SerialNumber.String(),
			"not_after", svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339), "next_renewal", n.UTC().Format(time.RFC3339))
		next = n
	}
}

// NewCSR returns a DER PKCS#10 request with id as its only URI SAN and an
// empty subject, as Dapr's sidecars send.
func NewCSR(key crypto.Signer, id spiffeid.ID) ([]byte, error) {
	u, err := url.Parse(id.String())
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		return nil, fmt.Errorf("create csr: %w", err)
	}
	return der, nil
}
