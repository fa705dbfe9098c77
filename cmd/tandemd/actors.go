package main

import (
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/actors/placement"
	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/jobs"
	"github.com/tandemrun/tandem/observe"
	"github.com/tandemrun/tandem/resiliency"
)

// actorRuntime builds the actor host when placement addresses are given
// (nil otherwise: the actor API answers ERR_ACTOR_NO_PLACEMENT, as daprd's).
// The placement stream uses mTLS with the sidecar's SVID when sentry is in
// use, and accepts only placement's SPIFFE ID, as daprd does.
func actorRuntime(o *Options, src *identity.Source, host string, internalPort int, pool *transport.Pool,
	app invoke.AppChannel, rc *runtimeComponents, policies func() *resiliency.Set, sched *jobs.Scheduler, metrics *observe.Metrics, log *slog.Logger) (*actors.Runtime, error) {
	addrs := placementAddresses(o)
	if len(addrs) == 0 {
		log.Warn("Actor runtime disabled: placement service is not configured. Actors and Workflow APIs will be unavailable")
		return nil, nil
	}
	dial := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if src != nil {
		td, err := spiffeid.TrustDomainFromString(o.ControlPlaneTrustDomain)
		if err != nil {
			return nil, err
		}
		id, err := spiffeid.FromSegments(td, "ns", o.ControlPlaneNamespace, "dapr-placement")
		if err != nil {
			return nil, err
		}
		dial = []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(identity.ClientTLS(src, tlsconfig.AuthorizeID(id))))}
	}
	stores := &actorStores{rc: rc, log: log}
	return actors.New(actors.Config{
		AppID: o.AppID, Namespace: o.Namespace,
		Placement: &placement.Config{
			Addresses: addrs, HostName: net.JoinHostPort(host, strconv.Itoa(internalPort)),
			AppID: o.AppID, Namespace: o.Namespace, DialOptions: dial, DisseminationTimeout: o.ActorsDisseminateTimeout,
		},
		Pool: pool, App: app, StateStore: stores.get, StateStorePending: stores.pending,
		Policy:        func(actorType, actorID string) *resiliency.Policy { return policies().ForActor(actorType, actorID) },
		LookupTimeout: o.ActorsDisseminateTimeout, Scheduler: sched, ReminderFired: metrics.ActorReminderFired,
		Log: log.With("component", "actors"),
	})
}

// placementAddresses are --placement-host-address's addresses; daprd reads
// empty, quoted empty and blank entries as no address.
func placementAddresses(o *Options) []string {
	var addrs []string
	for _, a := range o.PlacementAddresses {
		if a = strings.TrimSpace(strings.Trim(strings.TrimSpace(a), `"'`)); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// actorStores finds the state store whose metadata has actorStateStore
// "true" (the first by name when several do, and daprd refuses that).
type actorStores struct {
	rc  *runtimeComponents
	log *slog.Logger

	mu   sync.Mutex
	name string
}

func (s *actorStores) get() (state.Store, bool) {
	reg := s.rc.states.Registry()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.name != "" {
		if st, err := reg.Ready(s.name); err == nil {
			return st, true
		}
		s.name = ""
	}
	for _, name := range reg.Names() {
		md, ok := s.rc.Metadata(name)
		if !ok {
			continue
		}
		for k, v := range md.Properties {
			if strings.EqualFold(k, "actorStateStore") && truthy(v) {
				if st, err := reg.Ready(name); err == nil {
					s.name = name
					return st, true
				}
			}
		}
	}
	return nil, false
}

// pending reports whether a state store declared with actorStateStore
// "true" is not ready yet (not applied yet, initialising, or retrying its
// server).
func (s *actorStores) pending() bool {
	s.rc.mu.RLock()
	set := s.rc.set
	s.rc.mu.RUnlock()
	if set == nil {
		return false
	}
	states := map[string]components.State{}
	for _, st := range s.rc.states.Registry().List() {
		states[st.Name] = st.State
	}
	for _, c := range set.Components {
		if !strings.HasPrefix(c.Type, "state.") {
			continue
		}
		for _, it := range c.Metadata {
			if !strings.EqualFold(it.Name, "actorStateStore") || !truthy(it.Value) {
				continue
			}
			// A store that failed for good (kept only with ignoreErrors) is
			// not waited for.
			if st, ok := states[c.Name]; !ok || st == components.StateInitializing || st == components.StateRetrying {
				return true
			}
		}
	}
	return false
}

func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "y", "on":
		return true
	}
	return false
}
