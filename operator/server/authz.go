package server

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/identity"
)

// caller returns the identity of the sidecar calling, from its mTLS
// certificate, and checks that it asks for its own namespace. The texts are
// Dapr's (pkg/operator/api/authz).
func caller(ctx context.Context, namespace string) (identity.App, error) {
	app, err := peerApp(ctx)
	if err != nil {
		return identity.App{}, status.Error(codes.PermissionDenied, "failed to determine identity")
	}
	if namespace == "" || app.Namespace != namespace {
		return identity.App{}, status.Error(codes.PermissionDenied,
			fmt.Sprintf("identity does not match requested namespace exp=%s got=%s", namespace, app.Namespace))
	}
	return app, nil
}

func peerApp(ctx context.Context) (identity.App, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return identity.App{}, fmt.Errorf("no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return identity.App{}, fmt.Errorf("peer did not use TLS")
	}
	id, err := identity.PeerID(info.State)
	if err != nil {
		return identity.App{}, err
	}
	return identity.ParseApp(id)
}
