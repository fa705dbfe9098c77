package components

import (
	"context"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// JWTSource hands out the workload's JWT SVID for an audience.
type JWTSource interface {
	JWT(audience string) (string, error)
}

type x509Key struct{}
type jwtKey struct{}

// WithSVID returns ctx carrying the workload's SPIFFE identity, as daprd
// puts its X.509 and JWT SVID sources into the context of component
// operations, so a component can authenticate to its backend as the app.
// A nil source is left out.
func WithSVID(ctx context.Context, x509 x509svid.Source, jwt JWTSource) context.Context {
	if x509 != nil {
		ctx = context.WithValue(ctx, x509Key{}, x509)
	}
	if jwt != nil {
		ctx = context.WithValue(ctx, jwtKey{}, jwt)
	}
	return ctx
}

// X509SVIDFrom returns the X.509 SVID source in ctx, if any.
func X509SVIDFrom(ctx context.Context) (x509svid.Source, bool) {
	s, ok := ctx.Value(x509Key{}).(x509svid.Source)
	return s, ok
}

// JWTSVIDFrom returns the JWT SVID source in ctx, if any.
func JWTSVIDFrom(ctx context.Context) (JWTSource, bool) {
	s, ok := ctx.Value(jwtKey{}).(JWTSource)
	return s, ok
}
