package client

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/task"
)

// KubeTokenFile is where control-plane pods that no injector touches get
// their projected service account token for sentry (Dapr's path).
const KubeTokenFile = "/var/run/secrets/dapr.io/sentrytoken/token"

// ControlPlane is how the placement and scheduler services get their SVID,
// in either mode: on Kubernetes as Service does (the pod's projected
// token, KubeTokenFile unless TokenFile says otherwise); standalone with
// no token, or TokenFile (DAPR_SENTRY_TOKEN_FILE) sent for sentry's JWKS
// validator, as Dapr's placement and scheduler do.
type ControlPlane struct {
	Kubernetes bool
	// ID is the service's identity; TrustDomain is sentry's (standalone).
	ID            spiffeid.ID
	TrustDomain   string
	SentryAddress string
	AnchorsFile   string
	TokenFile     string
	Log           *slog.Logger
}

// Start obtains the first SVID and returns the Source holding it and the
// tasks that renew it and follow the trust anchors file; they must be run.
func (cp ControlPlane) Start(ctx context.Context) (*identity.Source, []task.Task, error) {
	if cp.Kubernetes {
		tokenFile := cp.TokenFile
		if tokenFile == "" {
			tokenFile = KubeTokenFile
		}
		return Service{ID: cp.ID, SentryAddress: cp.SentryAddress, AnchorsFile: cp.AnchorsFile, TokenFile: tokenFile, Log: cp.Log}.Start(ctx)
	}
	var token func() (string, error)
	validator := sentryv1.SignCertificateRequest_UNKNOWN
	if cp.TokenFile != "" {
		validator = sentryv1.SignCertificateRequest_JWKS
		token = func() (string, error) {
			b, err := os.ReadFile(cp.TokenFile)
			if err == nil && len(b) == 0 {
				err = fmt.Errorf("token file %s (DAPR_SENTRY_TOKEN_FILE) is empty", cp.TokenFile)
			}
			return string(b), err
		}
	}
	anchors, err := identity.ReadTrustAnchorsFile(cp.AnchorsFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--trust-anchors-file: %w", err)
	}
	src := identity.NewSource()
	src.SetTrustAnchors(anchors)
	sentryID, err := SentryID(cp.TrustDomain, namespaceOf(cp.ID))
	if err != nil {
		return nil, nil, err
	}
	c, err := New(Config{Address: cp.SentryAddress, CurrentTrustAnchors: src.TrustAnchors,
		SentryID: sentryID, CurrentToken: token, TokenValidator: validator})
	if err != nil {
		return nil, nil, err
	}
	rot := &identity.Rotator{ID: cp.ID, Issuer: identity.AnchorsFromFileOnly(c), Source: src, Log: cp.Log}
	next, err := rot.Renew(ctx)
	if err != nil {
		_ = c.Close()
		return nil, nil, fmt.Errorf("certificate from sentry at %s: %w (is sentry running, and --trust-domain its trust domain?)", cp.SentryAddress, err)
	}
	return src, []task.Task{
		{Name: "certificate renewal", Critical: true, Run: func(ctx context.Context) error {
			defer c.Close()
			return rot.Run(ctx, next)
		}},
		{Name: "trust anchors file", Run: func(ctx context.Context) error {
			return identity.WatchTrustAnchorsFile(ctx, cp.AnchorsFile, src, 0, cp.Log, nil)
		}},
	}, nil
}
