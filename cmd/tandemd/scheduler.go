package main

import (
	"log/slog"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/jobs"
)

// schedulerConnection builds the connection to the schedulers of
// --scheduler-host-address (disabled without one, as daprd). With an
// identity it uses mTLS with the sidecar's SVID and accepts only the
// scheduler's SPIFFE ID, as daprd does.
// limits are the cluster-wide workflow limits its streams carry.
func schedulerConnection(o *Options, src *identity.Source, limits []*schedulerv1.ConcurrencyLimit, log *slog.Logger) (*jobs.Scheduler, error) {
	dial := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if src != nil && len(jobs.Addresses(o.SchedulerAddresses)) > 0 {
		td, err := spiffeid.TrustDomainFromString(o.ControlPlaneTrustDomain)
		if err != nil {
			return nil, err
		}
		id, err := spiffeid.FromSegments(td, "ns", o.ControlPlaneNamespace, "dapr-scheduler")
		if err != nil {
			return nil, err
		}
		dial = []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(identity.ClientTLS(src, tlsconfig.AuthorizeID(id))))}
	}
	return jobs.New(jobs.Config{
		Addresses: o.SchedulerAddresses, AppID: o.AppID, Namespace: o.Namespace, Streams: o.SchedulerJobStreams,
		DialOptions: dial, ConcurrencyLimits: limits, Log: log.With("component", "scheduler"),
	}), nil
}
