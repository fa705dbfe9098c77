package placement

import (
	"strings"

	placementv1 "github.com/dapr/dapr/pkg/proto/placement/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/identity"
)

// authorize checks a host message as Dapr's placement does: well formed,
// its app ID and namespace those of the caller's SPIFFE ID (with mTLS),
// and no actor type of Dapr's internal prefix "dapr.internal." that is
// not the caller's own ("dapr.internal.<namespace>.<app-id>...").
func authorize(mtls bool) func(placementv1.Placement_ReportDaprStatusServer, *placementv1.Host) error {
	return func(s placementv1.Placement_ReportDaprStatusServer, h *placementv1.Host) error {
		var caller *identity.App
		if mtls {
			app, ok := peerApp(s)
			if !ok {
				return status.Error(codes.Unauthenticated, "failed to get client ID from context")
			}
			caller = &app
		}
		return checkHost(h, caller)
	}
}

// checkHost is authorize without the stream; caller is nil without mTLS.
func checkHost(h *placementv1.Host, caller *identity.App) error {
	if h == nil {
		return status.Error(codes.InvalidArgument, "received nil host report")
	}
	if h.GetOperation() == placementv1.HostOperation_UNKNOWN && h.Version != nil {
		return status.Error(codes.InvalidArgument, "both operation and version must be set or both must be unset")
	}
	if h.GetId() == "" || h.GetNamespace() == "" {
		return status.Error(codes.InvalidArgument, "host ID and namespace must be provided")
	}
	if caller != nil {
		if h.GetId() != caller.AppID {
			return status.Errorf(codes.PermissionDenied, "provided app ID %s doesn't match the one in the SPIFFE ID (%s)", h.GetId(), caller.AppID)
		}
		if h.GetNamespace() != caller.Namespace {
			return status.Errorf(codes.PermissionDenied, "provided client namespace %s doesn't match the one in the SPIFFE ID (%s)", h.GetNamespace(), caller.Namespace)
		}
	}
	for _, e := range h.GetEntities() {
		parts := strings.Split(e, ".")
		if len(parts) >= 2 && parts[0] == "dapr" && parts[1] == "internal" &&
			(len(parts) < 4 || parts[2] != h.GetNamespace() || parts[3] != h.GetId()) {
			return status.Errorf(codes.PermissionDenied, "entity %s is not allowed for app ID %s in namespace %s", e, h.GetId(), h.GetNamespace())
		}
	}
	return nil
}

// peerApp is the app identity in the caller's client certificate.
func peerApp(s placementv1.Placement_ReportDaprStatusServer) (identity.App, bool) {
	p, ok := peer.FromContext(s.Context())
	if !ok {
		return identity.App{}, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return identity.App{}, false
	}
	id, err := identity.PeerID(info.State)
	if err != nil {
		return identity.App{}, false
	}
	app, err := identity.ParseApp(id)
	return app, err == nil
}
