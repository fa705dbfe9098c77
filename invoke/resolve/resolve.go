// Package resolve finds the internal gRPC address of a sidecar serving an
// app ID. Implementations register this sidecar too, so peers find it.
//
// Backends mirror Dapr's name resolution components, chosen by the
// Configuration's spec.nameResolution.component: sqlite (one shared file on
// a host, Dapr's table layout), mdns (LAN), static (a file or a map),
// kubernetes (EndpointSlices) and xds (endpoints pushed by Tandem's xDS
// server).
package resolve

import (
	"context"
	"errors"
	"log/slog"

	"github.com/tandemrun/tandem/identity"
)

// ErrNotFound is returned when no healthy instance serves the app ID.
var ErrNotFound = errors.New("no instance found")

// Instance describes the sidecar that registers itself.
type Instance struct {
	AppID     string
	Namespace string
	// Address is the host other sidecars dial (DAPR_HOST_IP when set).
	Address string
	// InternalPort is the sidecar's internal gRPC port (sidecar-to-sidecar).
	InternalPort int
	HTTPPort     int
	AppPort      int
}

// Request names the app to find.
type Request struct {
	AppID     string
	Namespace string
}

// Resolver finds a host:port for an app ID.
type Resolver interface {
	// Resolve returns the host:port of one healthy instance of req.AppID.
	// Successive calls spread over instances (round robin).
	Resolve(ctx context.Context, req Request) (string, error)
	// Close deregisters this sidecar and releases resources.
	Close() error
}

// Runner is implemented by resolvers with background work, such as a
// registry heartbeat. The binary's root runs it as a task until shutdown,
// and calls Close (deregistration) after it has returned.
type Runner interface {
	Run(ctx context.Context) error
}

// Config is what a resolver is built from.
type Config struct {
	// Self is this sidecar; resolvers that register make it findable.
	Self Instance
	// Configuration is spec.nameResolution.configuration from the
	// Configuration resource, as decoded YAML.
	Configuration map[string]any
	// Identity is this sidecar's SVID and trust anchors, for resolvers
	// that talk to the control plane over mTLS (xds); nil when the
	// sidecar has none (self-hosted without mTLS).
	Identity *identity.Source
	Log      *slog.Logger
}
