package invoke

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/invoke/transport"
)

// ErrNoPeerIdentity is returned by PeerApp when a TLS peer presented no
// usable app certificate.
var ErrNoPeerIdentity = errors.New("caller presented no app identity")

// PeerApp returns the app identity in the certificate of the gRPC peer of
// ctx. secure is false when the connection is not TLS (mTLS disabled); then
// app is zero and the caller can only be known from what it claims.
func PeerApp(ctx context.Context) (app identity.App, secure bool, err error) {
	if m := transport.PeerMemoFrom(ctx); m != nil {
		// A lean connection: its certificate is parsed for its first call.
		r := m.Do(func() any {
			app, secure, err := peerApp(ctx)
			return peerAppResult{app, secure, err}
		}).(peerAppResult)
		return r.app, r.secure, r.err
	}
	return peerApp(ctx)
}

// peerAppResult is what PeerApp keeps for a lean connection.
type peerAppResult struct {
	app    identity.App
	secure bool
	err    error
}

func peerApp(ctx context.Context) (app identity.App, secure bool, err error) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return identity.App{}, false, nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return identity.App{}, false, nil
	}
	id, err := identity.PeerID(info.State)
	if err != nil {
		return identity.App{}, true, fmt.Errorf("%w: %v", ErrNoPeerIdentity, err)
	}
	app, err = identity.ParseApp(id)
	if err != nil {
		return identity.App{}, true, fmt.Errorf("%w: %v", ErrNoPeerIdentity, err)
	}
	return app, true, nil
}
