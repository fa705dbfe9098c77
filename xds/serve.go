package xds

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/tandemrun/tandem/identity"
)

// Serve runs the server (Run) and answers xDS clients on lis until ctx
// ends. With src set the port takes mutual TLS only, from clients with a
// certificate of trustDomain (the proxyless apps' sentry SVIDs); a nil
// src serves plaintext (tests, a loopback-only control plane).
func (s *Server) Serve(ctx context.Context, lis net.Listener, src *identity.Source, trustDomain spiffeid.TrustDomain) error {
	opts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(1 << 20),
	}
	if src != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(identity.ServerTLS(src, identity.SameTrustDomain(trustDomain)))))
	}
	g := grpc.NewServer(opts...)
	s.Register(g)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- g.Serve(lis) }()
	s.o.Log.Info("xds server listening", "addr", lis.Addr().String(), "mtls", src != nil)
	var err error
	select {
	case <-ctx.Done():
	case err = <-runErr:
		runErr <- err
	case err = <-serveErr:
		if errors.Is(err, grpc.ErrServerStopped) {
			err = nil
		}
	}
	cancel()
	// Streams of ADS never end by themselves: stop, not GracefulStop.
	g.Stop()
	if e := <-runErr; err == nil {
		err = e
	}
	return err
}
