// Package actors is the actor host side of the sidecar: it learns the
// app's actor types from GET /dapr/config, keeps this host in placement's
// table (actors/placement), routes each actor call to the host that owns
// the actor (this one: through a turn lock to the app at
// PUT /actors/{type}/{id}/method/{method}; another: over the sidecars'
// mTLS pool, by the lean transport to a Tandem host (invoke.CallActor),
// else by Dapr's internal CallActor RPC), deactivates idle actors
// with DELETE /actors/{type}/{id}, and serves actor state (keys
// "{appId}||{type}||{id}||{key}" in the state store marked actorStateStore)
// and timers.
//
// The sidecar's APIs (proxy) call a Runtime; cmd/tandemd builds it and runs
// it as a task.
package actors

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/tandemrun/tandem/actors/placement"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/transport"
	"github.com/tandemrun/tandem/jobs"
	"github.com/tandemrun/tandem/resiliency"
)

// Config is what a Runtime is built from.
type Config struct {
	AppID     string
	Namespace string
	// Placement configures the placement client (its callbacks are the
	// Runtime's); nil without placement addresses (the actor API then
	// answers ErrNoPlacement). Its HostName is this host as placement lists
	// it: host:port of the internal gRPC server.
	Placement *placement.Config
	// Pool reaches other sidecars' internal servers.
	Pool *transport.Pool
	// App is the channel to the app; nil when there is none.
	App invoke.AppChannel
	// StateStore returns the store marked actorStateStore, if any.
	StateStore func() (state.Store, bool)
	// StateStorePending, if set, reports that a store marked
	// actorStateStore is declared but not ready yet: the host is not ready
	// until it is (daprd initialises its components before its actors).
	StateStorePending func() bool
	// Policy, if set, returns the Resiliency policy for calls of an actor
	// (spec.targets.actors); Call applies it where the call is made.
	Policy func(actorType, actorID string) *resiliency.Policy
	// LookupTimeout bounds the wait for placement's table (30s if 0).
	LookupTimeout time.Duration
	// Scheduler, when enabled, keeps the reminders (as daprd does with
	// --scheduler-host-address): those in the state store move to it at
	// start-up; otherwise they stay in the actor state store.
	Scheduler *jobs.Scheduler
	// ReminderFired, if set, is told of each reminder the scheduler
	// triggered here: the actor type and whether the actor took it
	// (daprd's dapr_runtime_actor_reminders_fired_total).
	ReminderFired func(actorType string, success bool)
	Log           *slog.Logger
}

// Runtime is one sidecar's actor host and router.
type Runtime struct {
	cfg       Config
	log       *slog.Logger
	placement *placement.Client // nil without placement
	hostName  string
	stamp     callerStamp // this sidecar's identity on calls to other hosts

	mu         sync.Mutex
	types      map[string]TypeConfig // hosted types; nil until /dapr/config was read
	internal   map[string]Internal   // types the sidecar implements (HostInternal)
	active     map[string]*actor     // by type||id
	draining   map[string]int        // deactivated actors whose last turn may still run, by type||id
	registered chan struct{}         // closed once /dapr/config was read
	rem        reminders
	remStore   ReminderStore
	ready      atomic.Bool
	calls      inflight // calls running in actors here, drained when their type's ring changes
	// lostDrain is how calls in flight are drained when the placement
	// stream drops: the app's drainOngoingCallTimeout and
	// drainRebalancedActors, without entitiesConfig's overrides (daprd's).
	lostDrain drainPolicy
}

// disseminateTimeout bounds a placement round (0: unbounded).
func (r *Runtime) disseminateTimeout() time.Duration {
	if r.cfg.Placement == nil {
		return 0
	}
	return r.cfg.Placement.DisseminationTimeout
}

// New builds a Runtime; Run starts it.
func New(cfg Config) (*Runtime, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = 30 * time.Second
	}
	r := &Runtime{cfg: cfg, log: cfg.Log, active: map[string]*actor{}, draining: map[string]int{}, registered: make(chan struct{}),
		rem: reminders{running: map[string]reminderRunner{}, wake: make(chan struct{}, 1)}, lostDrain: defaultLostDrain,
		stamp: newCallerStamp(cfg.AppID, cfg.Namespace)}
	r.remStore = stateReminders{r}
	if cfg.Scheduler.Enabled() {
		r.remStore = &schedulerReminders{r: r, sched: cfg.Scheduler}
	}
	if cfg.Placement != nil {
		pc := *cfg.Placement
		pc.OnUpdate, pc.OnDisconnect = r.onTableUpdate, r.onDisconnect
		if pc.Log == nil {
			pc.Log = cfg.Log.With("component", "placement")
		}
		c, err := placement.New(pc)
		if err != nil {
			return nil, err
		}
		r.placement, r.hostName = c, pc.HostName
	}
	return r, nil
}

// Run reads the app's actor configuration, connects to placement and
// deactivates idle actors until ctx ends; then it deactivates every actor.
func (r *Runtime) Run(ctx context.Context) error {
	// The types are known before the host first reports, as daprd's: one
	// dissemination, not one without types and one with.
	if r.cfg.App != nil {
		r.register(ctx)
	} else {
		r.setTypes(map[string]TypeConfig{})
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	if r.placement != nil && ctx.Err() == nil {
		wg.Go(func() {
			if err := r.placement.Run(ctx); err != nil {
				r.log.Error("placement client stopped", "error", err)
			}
		})
		if sr, ok := r.remStore.(*schedulerReminders); ok {
			r.log.Info("Using Scheduler service for reminders.") // daprd's words, which tooling looks for
			wg.Go(func() { r.migrateReminders(ctx, sr) })
		} else {
			wg.Go(func() { r.runReminders(ctx) })
		}
	}
	r.reapIdle(ctx)
	r.deactivateAll(context.WithoutCancel(ctx), func(*actor) bool { return true })
	return nil
}

// register reads /dapr/config from the app (retrying until it answers)
// and reports the hosted types to placement.
func (r *Runtime) register(ctx context.Context) {
	wait := 100 * time.Millisecond
	for {
		body, status, err := r.getAppConfig(ctx)
		if err == nil {
			types := map[string]TypeConfig{}
			if status == 200 {
				var warnings []string
				var base TypeConfig
				base, types, warnings, err = parseAppConfig(body, r.disseminateTimeout(), r.log)
				for _, w := range warnings {
					r.log.Warn("actor configuration", "warning", w)
				}
				if err != nil {
					r.log.Error("app's /dapr/config is invalid; hosting no actors", "error", err)
					types = map[string]TypeConfig{}
				} else {
					r.mu.Lock()
					r.lostDrain = drainPolicy{wait: base.DrainCallTimeout, drain: base.DrainRebalanced}
					r.mu.Unlock()
				}
			}
			r.setTypes(types)
			if len(types) > 0 {
				r.log.Info("actor types hosted", "types", slices.Sorted(maps.Keys(types)))
			}
			return
		}
		r.log.Debug("app's /dapr/config not answered yet", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

func (r *Runtime) getAppConfig(ctx context.Context) ([]byte, int, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req := &invoke.Request{Message: &internalsv1.InternalInvokeRequest{
		Ver: internalsv1.APIVersion_V1,
		Message: &commonv1.InvokeRequest{
			Method: "dapr/config", HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_GET},
		},
		// Dapr-App-Id, as daprd's call carries.
		Metadata: map[string]*internalsv1.ListStringValue{invoke.AppIDKey: {Values: []string{r.cfg.AppID}}},
	}}
	resp, err := r.cfg.App.Invoke(cctx, req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, 0, err
	}
	return b, int(resp.Message.GetStatus().GetCode()), nil
}

func (r *Runtime) setTypes(types map[string]TypeConfig) {
	r.mu.Lock()
	r.types = r.withInternal(types)
	types = r.types
	select {
	case <-r.registered:
	default:
		close(r.registered)
	}
	r.mu.Unlock()
	r.announceTypes(slices.Sorted(maps.Keys(types)))
}

// announceTypes tells placement and the scheduler (which triggers their
// reminders here) the types this host serves.
func (r *Runtime) announceTypes(names []string) {
	if r.placement == nil {
		return
	}
	r.placement.SetTypes(names)
	if sr, ok := r.remStore.(*schedulerReminders); ok {
		sr.sched.SetActorTypes(names, sr.trigger)
	}
}

// migrateReminders moves the state store's reminders of the hosted types
// to the scheduler once the actor state store is ready.
func (r *Runtime) migrateReminders(ctx context.Context, sr *schedulerReminders) {
	for r.cfg.StateStorePending != nil && r.cfg.StateStorePending() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	select {
	case <-r.registered:
	case <-ctx.Done():
		return
	}
	r.mu.Lock()
	types := slices.Sorted(maps.Keys(r.types))
	r.mu.Unlock()
	sr.migrate(ctx, types)
}

// typeConfig returns the configuration of a hosted type.
func (r *Runtime) typeConfig(actorType string) (TypeConfig, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tc, ok := r.types[actorType]
	return tc, ok
}

// Hosts reports whether this sidecar's app hosts actorType, waiting (up to
// ctx) for the app's configuration to be read.
func (r *Runtime) Hosts(ctx context.Context, actorType string) bool {
	select {
	case <-r.registered:
	case <-ctx.Done():
		return false
	}
	_, ok := r.typeConfig(actorType)
	return ok
}

// Ready reports whether the host has received placement's table once
// since it started (daprd's health waits for that); it stays true after.
func (r *Runtime) Ready() bool {
	if r == nil || r.placement == nil {
		return true
	}
	if r.ready.Load() {
		return true
	}
	if r.cfg.StateStorePending != nil && r.cfg.StateStorePending() {
		return false
	}
	if r.placement.Table().Ready() {
		r.ready.Store(true)
		return true
	}
	return false
}

// Status is the actor runtime as the metadata API reports it.
func (r *Runtime) Status() *runtimev1.ActorRuntime {
	const disconnected = "placement: disconnected"
	if r == nil || r.placement == nil {
		return &runtimev1.ActorRuntime{RuntimeStatus: runtimev1.ActorRuntime_DISABLED, Placement: disconnected}
	}
	r.mu.Lock()
	registered := r.types != nil
	counts := make(map[string]int32, len(r.types))
	for t := range r.types {
		counts[t] = 0
	}
	for _, a := range r.active {
		counts[a.typ]++
	}
	r.mu.Unlock()
	if !registered {
		return &runtimev1.ActorRuntime{RuntimeStatus: runtimev1.ActorRuntime_INITIALIZING}
	}
	out := &runtimev1.ActorRuntime{RuntimeStatus: runtimev1.ActorRuntime_RUNNING, HostReady: true, Placement: "placement: connected"}
	if !r.placement.Table().Ready() {
		out.HostReady, out.Placement = false, disconnected
	} else if !r.ready.Load() && r.cfg.StateStorePending != nil && r.cfg.StateStorePending() {
		out.HostReady = false
	}
	for _, t := range slices.Sorted(maps.Keys(counts)) {
		out.ActiveActors = append(out.ActiveActors, &runtimev1.ActiveActorsCount{Type: t, Count: counts[t]})
	}
	return out
}

// onTableUpdate drains the calls in flight of the types whose ring
// changed (they run on for their type's drain timeout, then are cancelled
// and routed again against the new table, as daprd's are) and deactivates
// the actors this host no longer owns; the placement client calls it
// during an update round, before the update is acknowledged.
func (r *Runtime) onTableUpdate(ctx context.Context, changed []string) {
	r.calls.drain(r.drainPolicies(changed), r.log)
	tbl := r.placement.Table()
	r.deactivateAll(ctx, func(a *actor) bool {
		if !slices.Contains(changed, a.typ) {
			return false
		}
		h, ok := tbl.Owner(a.typ, a.id)
		return !ok || h.Name != r.hostName
	})
	r.wakeReminders()
}

// onDisconnect is daprd's halt when its placement stream drops (closed by
// placement, lost, or reset at a dissemination timeout): without placement
// this host cannot know it still owns its actors. The calls in flight get
// the app's drainOngoingCallTimeout to finish (or are cancelled at once
// without drainRebalancedActors); those cut short are routed again once a
// table comes. Then every actor is deactivated. The placement client
// reconnects after this returns, and lookups wait for its next table.
func (r *Runtime) onDisconnect(ctx context.Context) {
	r.mu.Lock()
	p := r.lostDrain
	r.mu.Unlock()
	r.calls.drainAll(p, errPlacementLost, r.log)
	r.deactivateAll(ctx, func(*actor) bool { return true })
}
