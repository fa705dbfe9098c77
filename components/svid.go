package components

import (
	"context"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// JWTSource hands out the workload's JWT SVID for an audience.
type JWTSource interface {
	JWT(audience string) (string, error)
}

// SVIDs are the workload's SPIFFE identity sources, as daprd puts its
// X.509 and JWT SVID sources into the context of component operations, so
// a component can authenticate to its backend as the app.
type SVIDs struct {
	x509 x509svid.Source
	jwt  JWTSource
}

// NewSVIDs returns the sources to put into contexts (a nil one is left
// out). Made once, it costs each request one context value.
func NewSVIDs(x509 x509svid.Source, jwt JWTSource) *SVIDs {
	return &SVIDs{x509: x509, jwt: jwt}
}

type svidKey struct{}

// Context returns ctx carrying s.
func (s *SVIDs) Context(ctx context.Context) context.Context {
	if s == nil || (s.x509 == nil && s.jwt == nil) {
		return ctx
	}
	return context.WithValue(ctx, svidKey{}, s)
}

// WithSVID returns ctx carrying the workload's SPIFFE identity sources
// (NewSVIDs(x509, jwt).Context(ctx)).
func WithSVID(ctx context.Context, x509 x509svid.Source, jwt JWTSource) context.Context {
	return NewSVIDs(x509, jwt).Context(ctx)
}

// X509SVIDFrom returns the X.509 SVID source in ctx, if any.
func X509SVIDFrom(ctx context.Context) (x509svid.Source, bool) {
	s, _ := ctx.Value(svidKey{}).(*SVIDs)
	if s == nil || s.x509 == nil {
		return nil, false
	}
	return s.x509, true
}

// JWTSVIDFrom returns the JWT SVID source in ctx, if any.
func JWTSVIDFrom(ctx context.Context) (JWTSource, bool) {
	s, _ := ctx.Value(svidKey{}).(*SVIDs)
	if s == nil || s.jwt == nil {
		return nil, false
	}
	return s.jwt, true
}
