// Package validator decides which identity a SignCertificate request may
// receive.
//
// Insecure is Dapr's self-hosted default: it believes the app ID, namespace
// and trust domain the request names, so any process that can reach sentry
// can obtain any identity. JoinToken additionally requires a pre-shared token
// (compared in constant time), optionally bound to certain app IDs.
//
// sentry/server calls a Validator and then signs for the ID it returns.
package validator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// DefaultTrustDomain is used when a request names none (Dapr's "public").
const DefaultTrustDomain = "public"

// Validator establishes the identity of a SignCertificate request.
type Validator interface {
	// Validate returns the SPIFFE ID the requester may receive, or an error
	// saying why not.
	Validate(ctx context.Context, req *sentryv1.SignCertificateRequest) (spiffeid.ID, error)
}

// Func adapts a function to Validator.
type Func func(ctx context.Context, req *sentryv1.SignCertificateRequest) (spiffeid.ID, error)

// Validate implements Validator.
func (f Func) Validate(ctx context.Context, req *sentryv1.SignCertificateRequest) (spiffeid.ID, error) {
	return f(ctx, req)
}

// RequestedID checks the rules every request must meet (as Dapr's sentry
// does) and returns spiffe://<trust_domain>/ns/<namespace>/<id>.
func RequestedID(req *sentryv1.SignCertificateRequest) (spiffeid.ID, error) {
	var errs []error
	appID := req.GetId()
	switch {
	case appID == "":
		errs = append(errs, errors.New("app id is empty"))
	case strings.Contains(appID, "."):
		errs = append(errs, errors.New("app id must not contain a period (.)"))
	case len(appID) > 64:
		errs = append(errs, errors.New("app ID must be 64 characters or less")) // Dapr's words
	}
	if req.GetNamespace() == "" {
		errs = append(errs, errors.New("namespace is required"))
	}
	if len(req.GetCertificateSigningRequest()) == 0 {
		errs = append(errs, errors.New("CSR is required")) // Dapr's words
	}
	if err := errors.Join(errs...); err != nil {
		return spiffeid.ID{}, fmt.Errorf("invalid request: %w", err)
	}
	tdName := req.GetTrustDomain()
	if tdName == "" {
		tdName = DefaultTrustDomain
	}
	td, err := spiffeid.TrustDomainFromString(tdName)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("invalid request: trust domain %q: %w", tdName, err)
	}
	id, err := spiffeid.FromSegments(td, "ns", req.GetNamespace(), appID)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("invalid request: app id %q in namespace %q: %w", appID, req.GetNamespace(), err)
	}
	return id, nil
}

// Insecure trusts the identity the request names (Dapr's self-hosted
// "insecure" validator).
type Insecure struct{}

var _ Validator = Insecure{}

// Validate implements Validator.
func (Insecure) Validate(_ context.Context, req *sentryv1.SignCertificateRequest) (spiffeid.ID, error) {
	return RequestedID(req)
}
