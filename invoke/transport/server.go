package transport

import (
	"runtime"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/tandemrun/tandem/identity"
)

// ServerConfig configures the internal gRPC server's transport.
type ServerConfig struct {
	// Source is this sidecar's identity; nil means plaintext.
	Source *identity.Source
	// Authorizer decides which client SPIFFE IDs may connect. Nil accepts
	// any ID in the trust domain of this sidecar's own current SVID.
	Authorizer tlsconfig.Authorizer
	// MaxMessageSize bounds one message each way (DefaultMaxMessageSize if zero).
	MaxMessageSize int
	// Lean, if set (and Source too), is offered to clients by ALPN: a
	// Tandem caller's connections go to it, h2-only callers (daprd) keep
	// gRPC. Its owner shuts it down with the gRPC server.
	Lean *LeanServer
}

// ServerOptions returns the grpc.ServerOptions for a sidecar's internal
// port: mutual TLS (unless c.Source is nil), message limits and keepalive.
func ServerOptions(c ServerConfig) []grpc.ServerOption {
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(c.MaxMessageSize),
		grpc.MaxSendMsgSize(c.MaxMessageSize),
		grpc.NumStreamWorkers(uint32(4 * runtime.GOMAXPROCS(0))),
		grpc.InitialWindowSize(1 << 20),
		grpc.InitialConnWindowSize(4 << 20),
		// The server probes idle clients, which always answer pings; this
		// is how a vanished peer sidecar's connection gets reaped.
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    time.Minute,
			Timeout: 20 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		}),
	}
	if c.Source != nil {
		auth := c.Authorizer
		if auth == nil {
			auth = sameTrustDomainAsSelf(c.Source)
		}
		conf := identity.ServerTLS(c.Source, auth)
		creds := credentials.NewTLS(conf)
		if c.Lean != nil {
			lc := conf.Clone()
			lc.NextProtos = slices.Clone(leanProtos)
			creds = &alpnCreds{TransportCredentials: creds, conf: lc, lean: c.Lean}
		}
		opts = append(opts, grpc.Creds(creds))
	}
	return opts
}
