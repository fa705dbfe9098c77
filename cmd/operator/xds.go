package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/client-go/rest"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/kubecore"
	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/xds"
	"github.com/tandemrun/tandem/xds/kubesource"
)

// xdsTask serves xDS on --xds-port from the <app-id>-dapr Services'
// EndpointSlices, with mTLS from the operator's own SVID.
func xdsTask(cfg *rest.Config, o *Options, src *identity.Source, log *slog.Logger) (task.Task, error) {
	td, err := spiffeid.TrustDomainFromString(o.XDSTrustDomain)
	if err != nil {
		return task.Task{}, fmt.Errorf("--xds-trust-domain %q: %w", o.XDSTrustDomain, err)
	}
	kc, err := kubecore.New(cfg)
	if err != nil {
		return task.Task{}, fmt.Errorf("xds: kubernetes client: %w", err)
	}
	s, err := xds.New(xds.Options{
		Source: kubesource.New(kubesource.Options{Client: kc, Namespace: o.WatchNamespace, Log: log}),
		Build:  xds.BuildOptions{TrustDomain: td},
		Log:    log,
	})
	if err != nil {
		return task.Task{}, err
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(o.ListenAddress, strconv.Itoa(o.XDSPort)))
	if err != nil {
		return task.Task{}, fmt.Errorf("xds: listen: %w (choose another --xds-port)", err)
	}
	return task.Task{Name: "xds server", Critical: true, Run: func(ctx context.Context) error {
		return s.Serve(ctx, lis, src, td)
	}}, nil
}
