package client

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	operatorv1 "github.com/dapr/dapr/pkg/proto/operator/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"

	"github.com/tandemrun/tandem/identity"
)

// Defaults, as daprd's (pkg/internal/loader/kubernetes): each start-up read
// is tried up to DefaultMaxAttempts times, DefaultPerTryTimeout each.
const (
	DefaultPerTryTimeout = 5 * time.Second
	DefaultMaxAttempts   = 100
	// DefaultRetryWait is the pause between start-up tries (daprd's gRPC
	// retry interceptor waits 50 ms, ±10 %).
	DefaultRetryWait = 50 * time.Millisecond
	// DefaultReconnectMin and DefaultReconnectMax bound the exponential
	// backoff between attempts to open a broken update stream again.
	DefaultReconnectMin = 500 * time.Millisecond
	DefaultReconnectMax = 5 * time.Second
)

// Config configures a Client.
type Config struct {
	// Address of the operator, host:port (--control-plane-address).
	Address string
	// Source holds the sidecar's SVID, presented to the operator, and the
	// trust anchors the operator's certificate must chain to.
	Source *identity.Source
	// OperatorID is the SPIFFE ID the operator must present; see OperatorID.
	OperatorID spiffeid.ID
	// Namespace is the sidecar's namespace (NAMESPACE): every request is
	// for the resources of that namespace.
	Namespace string
	Log       *slog.Logger

	// Start-up reads: PerTryTimeout, MaxAttempts and RetryWait (defaults
	// above when zero).
	PerTryTimeout time.Duration
	MaxAttempts   int
	RetryWait     time.Duration
	// ReconnectMin and ReconnectMax bound the backoff of Follow.
	ReconnectMin, ReconnectMax time.Duration
}

// Client reads resources from the operator. It is safe for concurrent use.
type Client struct {
	cfg  Config
	conn *grpc.ClientConn
	op   operatorv1.OperatorClient
}

// OperatorID is the operator's SPIFFE ID as daprd expects it:
// spiffe://<controlPlaneTrustDomain>/ns/<controlPlaneNamespace>/dapr-operator.
// The namespace is daprd's --control-plane-namespace
// (DAPR_CONTROLPLANE_NAMESPACE), "default" when empty.
func OperatorID(controlPlaneTrustDomain, controlPlaneNamespace string) (spiffeid.ID, error) {
	td, err := spiffeid.TrustDomainFromString(controlPlaneTrustDomain)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("control plane trust domain %q: %w", controlPlaneTrustDomain, err)
	}
	if controlPlaneNamespace == "" {
		controlPlaneNamespace = "default"
	}
	id, err := spiffeid.FromSegments(td, "ns", controlPlaneNamespace, "dapr-operator")
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("control plane namespace %q: %w", controlPlaneNamespace, err)
	}
	return id, nil
}

// New returns a client; it connects lazily, on the first call.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.Address == "":
		return nil, errors.New("operator client: no operator address (set --control-plane-address)")
	case cfg.Source == nil:
		return nil, errors.New("operator client: no identity source (the sidecar's SVID is needed to talk to the operator)")
	case cfg.OperatorID.IsZero():
		return nil, errors.New("operator client: the operator's SPIFFE ID is not set")
	case cfg.Namespace == "":
		return nil, errors.New("operator client: no namespace (set NAMESPACE)")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.PerTryTimeout, DefaultPerTryTimeout)
	def(&cfg.RetryWait, DefaultRetryWait)
	def(&cfg.ReconnectMin, DefaultReconnectMin)
	def(&cfg.ReconnectMax, DefaultReconnectMax)
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	tlsConf := identity.ClientTLS(cfg.Source, tlsconfig.AuthorizeID(cfg.OperatorID))
	// gRPC's own reconnect backoff grows to two minutes by default, and
	// while it waits every call fails at once: an operator that restarts
	// would be found late. Keep it short; Follow paces the retries.
	conn, err := grpc.NewClient(cfg.Address, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)),
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: cfg.PerTryTimeout, Backoff: backoff.Config{
			BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second}}))
	if err != nil {
		return nil, fmt.Errorf("operator client for %s: %w", cfg.Address, err)
	}
	return &Client{cfg: cfg, conn: conn, op: operatorv1.NewOperatorClient(conn)}, nil
}

// Close closes the connection; streams being followed end.
func (c *Client) Close() error { return c.conn.Close() }
