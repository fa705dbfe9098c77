package client

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/task"
)

// Service is how a control-plane service on Kubernetes (the operator, the
// injector) gets its SVID: it sends its pod's projected service account
// token to sentry's Kubernetes validator and renews the certificate for as
// long as it runs, with the trust anchors read from a watched file.
type Service struct {
	// ID is the service's identity,
	// spiffe://<control-plane-td>/ns/<namespace>/dapr-<service>.
	ID            spiffeid.ID
	SentryAddress string
	// AnchorsFile is the PEM trust anchors file (kept in step with).
	AnchorsFile string
	// TokenFile is the projected service account token.
	TokenFile string
	// NewKey, if set, makes each certificate's key (Ed25519 otherwise).
	NewKey func() (crypto.Signer, error)
	Log    *slog.Logger
}

// Start obtains the first SVID and returns the Source holding it and the
// tasks that keep it and the anchors current; they must be run.
func (s Service) Start(ctx context.Context) (*identity.Source, []task.Task, error) {
	anchors, err := identity.ReadTrustAnchorsFile(s.AnchorsFile)
	if err != nil {
		return nil, nil, err
	}
	src := identity.NewSource()
	src.SetTrustAnchors(anchors)
	sentryID, err := SentryID(s.ID.TrustDomain().Name(), namespaceOf(s.ID))
	if err != nil {
		return nil, nil, err
	}
	c, err := New(Config{
		Address: s.SentryAddress, CurrentTrustAnchors: src.TrustAnchors, SentryID: sentryID,
		CurrentToken: s.token, TokenValidator: sentryv1.SignCertificateRequest_KUBERNETES,
	})
	if err != nil {
		return nil, nil, err
	}
	rot := &identity.Rotator{ID: s.ID, Issuer: c, Source: src, Log: s.Log, NewKey: s.NewKey}
	next, err := rot.Renew(ctx)
	if err != nil {
		_ = c.Close()
		return nil, nil, fmt.Errorf("certificate from sentry at %s: %w", s.SentryAddress, err)
	}
	tasks := []task.Task{
		{Name: "certificate renewal", Critical: true, Run: func(ctx context.Context) error {
			defer c.Close()
			return rot.Run(ctx, next)
		}},
		{Name: "trust anchors file", Run: func(ctx context.Context) error {
			return identity.WatchTrustAnchorsFile(ctx, s.AnchorsFile, src, 0, s.Log, nil)
		}},
	}
	return src, tasks, nil
}

// token reads the projected token at every request: the kubelet replaces
// it before it expires. A missing file means no token, as with Dapr's
// control plane (pkg/security/token): sentry then uses its default
// validator, which in Kubernetes mode refuses the request and says why.
func (s Service) token() (string, error) {
	b, err := os.ReadFile(s.TokenFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("service account token: %w", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return "", errors.New("service account token: " + s.TokenFile + " is empty")
	}
	return strings.TrimSpace(string(b)), nil
}

// namespaceOf is the <namespace> of spiffe://td/ns/<namespace>/<name>.
func namespaceOf(id spiffeid.ID) string {
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) == 3 && parts[0] == "ns" {
		return parts[1]
	}
	return ""
}
