package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	bindingsbuiltin "github.com/tandemrun/tandem/components/bindings/builtin"
	bindingspluggable "github.com/tandemrun/tandem/components/bindings/pluggable"
	"github.com/tandemrun/tandem/components/configuration"
	configbuiltin "github.com/tandemrun/tandem/components/configuration/builtin"
	"github.com/tandemrun/tandem/components/conversation"
	conversationbuiltin "github.com/tandemrun/tandem/components/conversation/builtin"
	"github.com/tandemrun/tandem/components/crypto"
	cryptobuiltin "github.com/tandemrun/tandem/components/crypto/builtin"
	"github.com/tandemrun/tandem/components/lock"
	lockbuiltin "github.com/tandemrun/tandem/components/lock/builtin"
	cmw "github.com/tandemrun/tandem/components/middleware"
	"github.com/tandemrun/tandem/components/pubsub"
	pubsubbuiltin "github.com/tandemrun/tandem/components/pubsub/builtin"
	pubsubpluggable "github.com/tandemrun/tandem/components/pubsub/pluggable"
	"github.com/tandemrun/tandem/components/pubsub/topicscope"
	"github.com/tandemrun/tandem/components/secretstores"
	secretsbuiltin "github.com/tandemrun/tandem/components/secretstores/builtin"
	"github.com/tandemrun/tandem/components/state"
	statebuiltin "github.com/tandemrun/tandem/components/state/builtin"
	"github.com/tandemrun/tandem/components/state/etcd"
	statepluggable "github.com/tandemrun/tandem/components/state/pluggable"
	"github.com/tandemrun/tandem/components/state/postgresql"
	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/mcp"
	"github.com/tandemrun/tandem/proxy/httpendpoints"
	"github.com/tandemrun/tandem/proxy/resilient"
)

// reloadInterval is how often resource folders are checked for changes.
const reloadInterval = time.Second

// runtimeComponents owns the component managers of the sidecar and keeps
// them in step with the resource folders.
type runtimeComponents struct {
	log     *slog.Logger
	env     components.Env
	secrets *components.Manager[secretstores.SecretStore]
	states  *components.Manager[state.Store]
	pubsubs *components.Manager[pubsub.PubSub]
	// middlewares are the middleware.http components the pipelines chain;
	// pipes holds the pipelines once the sidecar has built them.
	middlewares *components.Manager[cmw.Middleware]
	pipes       pipelineHook
	binds       *components.Manager[*bindings.Instance]
	locks       *components.Manager[*lock.Instance]
	configs     *components.Manager[configuration.Store]
	cryptos     *components.Manager[crypto.KeyStore]
	convos      *components.Manager[conversation.Model]
	// topicScopes holds each pub/sub instance's topic scoping, for the
	// pub/sub API.
	topicScopes *topicscope.Table

	// filter selects the resources of this app (and namespace).
	filter components.Filter
	// builtins are added to every set applied, unless it has a component
	// of the same name: the secret store "kubernetes" in Kubernetes mode.
	builtins []components.Component
	// fatal receives what must stop the sidecar, as daprd exits: a
	// component without spec.ignoreErrors that cannot work as written, two
	// components with one name. Capacity 1: the first is enough.
	fatal chan error
	// firstFatal is the first error sent to stop, which makes tandemd
	// exit 1 even when a signal began the shutdown before the fatal task
	// took it (Failure).
	firstFatal atomic.Pointer[error]

	mu  sync.RWMutex
	set *components.Set
	// onChange is called after every applied change and every change of
	// a pub/sub's readiness (subscriptions follow). Set with
	// setOnChange.
	onChange func()
	// settled, if set, reports whether the subscriptions have caught up
	// with a ready pub/sub component (api.PubSub.Settled): the metadata
	// API lists it only then. Set with setOnChange.
	settled func(name string) bool
	// resiliency, if set, gets the Resiliency documents of every change.
	resiliency *resilient.Policies
	resLog     *slog.Logger
	// endpoints, if set, gets the HTTPEndpoint resources of every change.
	endpoints *httpendpoints.Router
	// mcp, if set, gets the MCPServer resources of every change.
	mcp *mcp.Manager
}

// useEndpoints applies the HTTPEndpoint resources loaded so far to r, and
// every later change.
func (rc *runtimeComponents) useEndpoints(r *httpendpoints.Router) {
	rc.mu.Lock()
	rc.endpoints = r
	set := rc.set
	rc.mu.Unlock()
	if set != nil {
		r.Apply(set.HTTPEndpoints)
	}
}

// useResiliency applies the Resiliency documents loaded so far to p, and
// every later change.
func (rc *runtimeComponents) useResiliency(p *resilient.Policies, log *slog.Logger) {
	rc.mu.Lock()
	rc.resiliency, rc.resLog = p, log
	set := rc.set
	rc.mu.Unlock()
	rc.applyResiliency(set)
}

func (rc *runtimeComponents) applyResiliency(set *components.Set) {
	rc.mu.RLock()
	p, log := rc.resiliency, rc.resLog
	rc.mu.RUnlock()
	if p == nil || set == nil {
		return
	}
	changed, err := p.Apply(set.DocumentsOf(components.KindResiliency))
	switch {
	case err != nil:
		log.Error("resiliency files not applied; fix them and they are picked up without a restart", "error", err)
	case changed:
		log.Info("resiliency policies in effect", "resiliency", p.Set().Loaded())
	}
}

func stateKind(log *slog.Logger) components.Kind[state.Store] {
	newStore, types := components.FactoryFromMap(statebuiltin.Stores(log))
	// Types without a built-in store may be pluggable stores on a socket.
	newStore = statepluggable.Fallback(newStore, components.SocketsFolderFromEnv(os.Getenv), log)
	return components.Kind[state.Store]{
		Category: "state",
		Types:    types,
		New:      newStore,
		// Dapr's v1 and v2 keep different tables: spec.version picks.
		Versioned: map[string]components.Versions[state.Store]{postgresql.Type: postgresql.Versions(log), etcd.Type: etcd.Versions(log)},
		Init: func(ctx context.Context, s state.Store, md components.Metadata) error {
			// A bad keyPrefix fails the component, as in Dapr, not every call.
			if _, err := state.NewKeyPrefix(md); err != nil {
				return components.Permanent(err)
			}
			// So is a bad primaryEncryptionKey / secondaryEncryptionKey.
			if _, err := state.NewEncryption(md); err != nil {
				return components.Permanent(err)
			}
			return s.Init(ctx, md)
		},
		Close:        func(s state.Store) error { return s.Close() },
		Capabilities: func(s state.Store) []string { return state.Capabilities(s.Features()) },
	}
}

// loadComponents reads the resource folders and starts initialising every
// component in the background. It fails, as daprd does, only when two
// components share a name; a component that fails later is reported on
// the channel Fatal returns, unless its spec.ignoreErrors is set or its
// server is only down (then it is retried).
func loadComponents(o *Options, log *slog.Logger) (*runtimeComponents, error) {
	rc := newComponents(o, log)
	// A broken file is one of set.Errors: the others load, as on a reload.
	set, _ := components.LoadFiltered(o.ResourcesPaths, rc.filter)
	if err := set.Conflict(); err != nil {
		return nil, fmt.Errorf("failed to load components: %w", err)
	}
	rc.start(set)
	return rc, nil
}

// startComponents starts initialising the components of set (read from
// the operator) in the background, with the same rules as loadComponents.
func startComponents(o *Options, set *components.Set, log *slog.Logger) (*runtimeComponents, error) {
	if err := set.Conflict(); err != nil {
		return nil, fmt.Errorf("failed to load components: %w", err)
	}
	rc := newComponents(o, log)
	rc.start(set)
	return rc, nil
}

// newComponents builds the component managers, with nothing loaded yet.
func newComponents(o *Options, log *slog.Logger) *runtimeComponents {
	log = log.With("component", "components")
	rc := &runtimeComponents{log: log, fatal: make(chan error, 1)}
	rc.filter = components.Filter{AppID: o.AppID}
	if o.MetricsNamespace != "" { // NAMESPACE as set
		rc.filter.Namespace = o.Namespace
	}
	rc.env = components.Env{AppID: o.AppID, Namespace: o.Namespace, PodName: o.PodName, Getenv: os.Getenv}
	if o.Mode == ModeKubernetes {
		// The operator fills in the secretKeyRef values of the store
		// "kubernetes", the default store there (as in daprd).
		rc.env.DefaultSecretStore = secretsbuiltin.KubernetesStoreName
		rc.env.Prefilled = secretsbuiltin.KubernetesStoreName
		if !o.DisableBuiltinK8sSecretStore {
			rc.builtins = append(rc.builtins, secretsbuiltin.KubernetesStore(o.Namespace))
		}
	}
	mopts := func() components.ManagerOptions {
		return components.ManagerOptions{Resolve: rc.env.Resolve, Log: log, Fatal: rc.stop}
	}
	rc.secrets = components.NewManager(secretsbuiltin.Kind(), mopts())
	rc.env.Secret = secretstores.Resolver(rc.secrets.Registry())
	rc.states = components.NewManager(stateKind(log), mopts())
	rc.topicScopes = topicscope.NewTable(log)
	sockets := components.SocketsFolderFromEnv(os.Getenv)
	psKind := pubsubbuiltin.Kind(log)
	psKind.New = pubsubpluggable.Fallback(psKind.New, sockets, log)
	popts := mopts()
	popts.Changed = rc.changed // a pub/sub that becomes ready is subscribed at once
	rc.pubsubs = components.NewManager(rc.topicScopes.Kind(psKind), popts)
	rc.middlewares = newMiddlewares(log, &rc.env, func() { rc.pipes.get().rebuild() })
	bopts := mopts()
	bopts.Changed = rc.changed // a binding that becomes ready starts reading at once
	newBinding, bindingTypes := bindingsbuiltin.New(log)
	rc.locks = components.NewManager(lockbuiltin.Kind(), mopts())
	rc.configs = components.NewManager(configbuiltin.Kind(log), mopts())
	rc.cryptos = components.NewManager(cryptobuiltin.Kind(log), mopts())
	rc.convos = components.NewManager(conversationbuiltin.Kind(), mopts())
	rc.binds = components.NewManager(bindings.Kind(bindingspluggable.Fallback(newBinding, sockets, log), bindingTypes), bopts)
	return rc
}

// componentCategories are the categories of spec.type a sidecar loads,
// daprd's processor's; a component of any other ("workflow.dapr",
// "pubsubs.redis") ends the sidecar as in daprd, unless it ignores errors.
var componentCategories = map[string]bool{
	"bindings": true, "configuration": true, "crypto": true, "lock": true, "pubsub": true,
	"secretstores": true, "state": true, "middleware": true, "conversation": true,
}

// start applies the first set and logs what it holds.
func (rc *runtimeComponents) start(set *components.Set) {
	rc.report(set.Errors)
	rc.apply(set)
	for _, c := range set.Components {
		if !componentCategories[c.Category()] {
			// daprd's words: tools and tests look for them.
			err := fmt.Errorf("process component %s error: incorrect type %s", c.Name, c.Type)
			if c.IgnoreErrors {
				rc.log.Error("Ignoring error processing component: " + err.Error())
				continue
			}
			rc.log.Warn("Error processing component, daprd will exit gracefully: " + err.Error())
			rc.stop(err)
			continue
		}
		rc.log.Info("component loaded; initialising", "name", c.Name, "type", c.Type, "file", c.Source)
	}
	for _, e := range set.HTTPEndpoints {
		rc.log.Info("http endpoint loaded", "name", e.Name, "base_url", e.BaseURL, "file", e.Source)
	}
}

// setOnChange sets the function called when subscriptions may need to
// follow a change, and the one that tells whether they have followed a
// pub/sub component's (nil: always).
func (rc *runtimeComponents) setOnChange(fn func(), settled func(name string) bool) {
	rc.mu.Lock()
	rc.onChange, rc.settled = fn, settled
	rc.mu.Unlock()
}

// changed calls the onChange function, if any.
func (rc *runtimeComponents) changed() {
	rc.mu.RLock()
	fn := rc.onChange
	rc.mu.RUnlock()
	if fn != nil {
		fn()
	}
}

// stop asks for the sidecar to stop with err (the first one wins).
func (rc *runtimeComponents) stop(err error) {
	rc.firstFatal.CompareAndSwap(nil, &err)
	select {
	case rc.fatal <- err:
	default:
	}
}

// Failure returns the first error sent to stop, if any.
func (rc *runtimeComponents) Failure() error {
	if p := rc.firstFatal.Load(); p != nil {
		return *p
	}
	return nil
}

// fatalTask is the critical task that ends the sidecar with the first
// error sent to stop.
func (rc *runtimeComponents) fatalTask() task.Task {
	return task.Task{Name: "components", Critical: true, Run: func(ctx context.Context) error {
		select {
		case err := <-rc.fatal:
			// daprd's words, which tools look for, before the task's name
			// is added.
			rc.log.Error("Fatal error from runtime: " + err.Error())
			return err
		case <-ctx.Done():
			return nil
		}
	}}
}

func (rc *runtimeComponents) report(errs []*components.ResourceError) {
	for _, e := range errs {
		rc.log.Error("resource file problem (the rest keeps loading): fix the file and it is picked up without a restart", "error", e.Error())
	}
}

func (rc *runtimeComponents) apply(set *components.Set) {
	set = withBuiltins(set, rc.builtins)
	rc.mu.Lock()
	if rc.set != nil {
		// The metadata API lists subscriptions in daprd's order.
		set.Subscriptions = components.InDaprdOrder(rc.set.Subscriptions, set.Subscriptions)
	}
	rc.set = set
	eps := rc.endpoints
	rc.mu.Unlock()
	if eps != nil {
		eps.Apply(set.HTTPEndpoints)
	}
	rc.secrets.Apply(set.Components)
	rc.states.Apply(set.Components)
	rc.pubsubs.Apply(set.Components)
	rc.middlewares.Apply(set.Components)
	rc.pipes.get().rebuild() // added and removed middleware
	rc.binds.Apply(set.Components)
	rc.locks.Apply(set.Components)
	rc.configs.Apply(set.Components)
	rc.cryptos.Apply(set.Components)
	rc.convos.Apply(set.Components)
}

// withBuiltins returns set with the built-in components it does not
// declare itself (a copy; set is not changed).
func withBuiltins(set *components.Set, builtins []components.Component) *components.Set {
	var add []components.Component
	for _, b := range builtins {
		if _, ok := set.Component(b.Name); !ok {
			add = append(add, b)
		}
	}
	if len(add) == 0 {
		return set
	}
	out := *set
	out.Components = append(slices.Clone(set.Components), add...)
	return &out
}

// watch applies changes to the resource folders until ctx ends. Two
// components with one name stop the sidecar, as they stop daprd.
func (rc *runtimeComponents) watch(ctx context.Context, dirs []string) {
	rc.mu.RLock()
	prev := rc.set
	rc.mu.RUnlock()
	rc.follow(ctx, components.Watch(ctx, dirs, rc.filter, reloadInterval, prev))
}

// follow applies every change from changes (the resource folders' watch,
// or the operator's streams) until the channel is closed or ctx ends.
func (rc *runtimeComponents) follow(ctx context.Context, changes <-chan components.Change) {
	for {
		var ch components.Change
		var ok bool
		select {
		case <-ctx.Done():
			return
		case ch, ok = <-changes:
			if !ok {
				return
			}
		}
		if ch.Conflict != nil {
			rc.stop(fmt.Errorf("failed to load resources from disk: %w", ch.Conflict))
			return
		}
		for _, ev := range ch.Events {
			rc.log.Info("resource changed; applying without restart", "op", ev.Op.String(), "kind", ev.Kind, "name", ev.Name, "file", ev.Source)
		}
		rc.report(ch.Errors)
		rc.mu.RLock()
		applied := rc.set
		rc.mu.RUnlock()
		rc.apply(guardActorStateStore(applied, ch.Set, ch.Events, rc.log))
		rc.applyResiliency(ch.Set)
		rc.applyMCP(ch.Set)
		rc.changed()
	}
}

// Subscriptions returns the declarative subscriptions currently loaded.
func (rc *runtimeComponents) Subscriptions() []components.Subscription {
	rc.mu.RLock()
	defer rc.mu.RUnlock()
	if rc.set == nil {
		return nil
	}
	return rc.set.Subscriptions
}

// Metadata returns the resolved metadata of a component by name.
func (rc *runtimeComponents) Metadata(name string) (components.Metadata, bool) {
	rc.mu.RLock()
	set := rc.set
	rc.mu.RUnlock()
	if set == nil {
		return components.Metadata{}, false
	}
	c, ok := set.Component(name)
	if !ok {
		return components.Metadata{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	md, err := rc.env.Resolve(ctx, c)
	if err != nil {
		return components.Metadata{}, false
	}
	return md, true
}

// Registered lists the ready components for the metadata API (daprd lists
// those it initialised; Extended tells about the others). A pub/sub
// component is listed once the subscriptions have caught up with it, as
// daprd commits one only after subscribing on it.
func (rc *runtimeComponents) Registered() []*runtimev1.RegisteredComponents {
	rc.mu.RLock()
	settled := rc.settled
	rc.mu.RUnlock()
	var out []*runtimev1.RegisteredComponents
	add := func(list []components.Status, listed func(string) bool) {
		for _, s := range list {
			if s.State != components.StateReady || (listed != nil && !listed(s.Name)) {
				continue
			}
			out = append(out, &runtimev1.RegisteredComponents{Name: s.Name, Type: s.Type, Version: s.Version, Capabilities: s.Capabilities})
		}
	}
	add(rc.secrets.Registry().List(), nil)
	add(rc.states.Registry().List(), nil)
	add(rc.pubsubs.Registry().List(), settled)
	add(rc.middlewares.Registry().List(), nil)
	add(rc.binds.Registry().List(), nil)
	add(rc.locks.Registry().List(), nil)
	add(rc.configs.Registry().List(), nil)
	add(rc.cryptos.Registry().List(), nil)
	add(rc.convos.Registry().List(), nil)
	return out
}

// Extended reports each component's readiness for the metadata API's
// extended map, as "component.<name>" = "ready" or "retrying (attempt N): error".
func (rc *runtimeComponents) Extended() map[string]string {
	out := map[string]string{}
	add := func(list []components.Status) {
		for _, s := range list {
			v := s.State.String()
			if s.Err != nil {
				v = fmt.Sprintf("%s (attempt %d): %v", v, s.Attempts, s.Err)
			}
			if s.Reload != nil {
				v += "; new version " + s.Reload.State.String()
			}
			out["component."+s.Name] = v
		}
	}
	add(rc.secrets.Registry().List())
	add(rc.states.Registry().List())
	add(rc.pubsubs.Registry().List())
	add(rc.middlewares.Registry().List())
	add(rc.binds.Registry().List())
	add(rc.locks.Registry().List())
	add(rc.configs.Registry().List())
	add(rc.cryptos.Registry().List())
	add(rc.convos.Registry().List())
	return out
}

// Close closes every component (after subscriptions have stopped).
func (rc *runtimeComponents) Close() {
	for _, c := range []interface{ Close() error }{rc.middlewares, rc.binds, rc.locks, rc.configs, rc.cryptos, rc.convos, rc.pubsubs, rc.states, rc.secrets} {
		if err := c.Close(); err != nil {
			rc.log.Warn("closing components", "error", err)
		}
	}
}

// resourcesWatch is the task that follows changes to the resource folders
// (hot reload), unless the Configuration turns the HotReload feature off:
// then, as in daprd, what was loaded at start-up stays until a restart, and
// ok is false.
func resourcesWatch(cfg *config.Configuration, rc *runtimeComponents, o *Options, log *slog.Logger) (t task.Task, ok bool) {
	if !cfg.FeatureEnabled("HotReload") {
		log.Info("hot reload is disabled by the HotReload feature; resource files are read at start-up only")
		return task.Task{}, false
	}
	return task.Task{Name: "resources watch", Run: func(ctx context.Context) error {
		rc.watch(ctx, o.ResourcesPaths)
		return nil
	}}, true
}
