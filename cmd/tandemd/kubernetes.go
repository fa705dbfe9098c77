package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/task"
	opclient "github.com/tandemrun/tandem/operator/client"
)

// defaultReconcileInterval is daprd's backup reconcile period in
// Kubernetes mode (--hot-reload-reconcile-interval unset).
const defaultReconcileInterval = 60 * time.Second

// operatorKinds are the resources read from the operator and applied
// without a restart, in the order they are loaded.
var operatorKinds = []opclient.Kind{opclient.Components, opclient.Subscriptions, opclient.Resiliencies, opclient.HTTPEndpoints, opclient.MCPServers,
	opclient.WorkflowAccessPolicies}

// Where a pod's token for sentry is mounted (daprd's paths).
const (
	kubeSentryTokenPath = "/var/run/secrets/dapr.io/sentrytoken/token"
	kubeLegacyTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"
)

// kubeSentryToken is daprd's choice of token in Kubernetes mode: the one
// given (--sentry-token, DAPR_SENTRY_TOKEN_FILE), else the pod's projected
// sentry token, else its service account token; all are for sentry's
// Kubernetes validator. No token at all leaves the validator to sentry.
func kubeSentryToken(given string, log *slog.Logger) (string, sentryv1.SignCertificateRequest_TokenValidator) {
	if given != "" {
		return given, sentryv1.SignCertificateRequest_KUBERNETES
	}
	if b, err := os.ReadFile(kubeSentryTokenPath); err == nil && len(b) > 0 {
		return string(b), sentryv1.SignCertificateRequest_KUBERNETES
	}
	if b, err := os.ReadFile(kubeLegacyTokenPath); err == nil && len(b) > 0 {
		log.Warn("⚠️ daprd is initializing using the legacy service account token with access to Kubernetes APIs, which is discouraged. This usually happens when daprd is running against an older version of the Dapr control plane.")
		return string(b), sentryv1.SignCertificateRequest_KUBERNETES
	}
	return "", sentryv1.SignCertificateRequest_UNKNOWN
}

// kubeStart is what Kubernetes mode reads from the operator before the
// rest of the sidecar is built.
type kubeStart struct {
	client     *opclient.Client
	cfg        *config.Configuration
	configSpec []byte // the Configuration's spec, to tell a change from a replay
	resources  *operatorResources
	set        *components.Set // the resources at start-up
}

// startKubernetes connects to the operator with the sidecar's SVID in src
// and loads the Configuration and the resources, as daprd does at start-up:
// if the operator cannot be reached after the client's retries, the
// sidecar does not start. It returns nil, nil if ctx ends first.
func startKubernetes(ctx context.Context, o *Options, src *identity.Source, log *slog.Logger) (*kubeStart, error) {
	client, err := newOperatorClient(o, src, log)
	if err != nil {
		return nil, err
	}
	k := &kubeStart{client: client, resources: newOperatorResources(client, o.AppID, log.With("component", "operator"))}
	if k.cfg, k.configSpec, err = kubeConfiguration(ctx, client, o, log); err == nil {
		k.set, err = k.resources.load(ctx)
	}
	if err != nil || ctx.Err() != nil {
		_ = client.Close()
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, err
	}
	return k, nil
}

// newOperatorClient returns the client for --control-plane-address, calling
// with the sidecar's SVID in src.
func newOperatorClient(o *Options, src *identity.Source, log *slog.Logger) (*opclient.Client, error) {
	opID, err := opclient.OperatorID(o.ControlPlaneTrustDomain, o.ControlPlaneNamespace)
	if err != nil {
		return nil, err
	}
	log.Info("Initializing the operator client", "operator", o.ControlPlaneAddress, "operator_id", opID.String())
	return opclient.New(opclient.Config{Address: o.ControlPlaneAddress, Source: src, OperatorID: opID,
		Namespace: o.Namespace, Log: log.With("component", "operator")})
}

// kubeConfiguration loads the Configuration named by --config from the
// operator, as daprd does in Kubernetes mode: only the first name is used,
// and a configuration that cannot be read stops the sidecar. It also
// returns the resource's spec, to tell a real change from a replay later.
func kubeConfiguration(ctx context.Context, c *opclient.Client, o *Options, log *slog.Logger) (*config.Configuration, []byte, error) {
	if len(o.ConfigPaths) == 0 {
		log.Info("loading default configuration")
		return config.Default(), nil, nil
	}
	if len(o.ConfigPaths) > 1 {
		log.Warn("Multiple configurations are not supported in Kubernetes mode; only the first one will be loaded")
	}
	name := o.ConfigPaths[0]
	log.Debug("Loading Kubernetes config resource: " + name)
	res, err := c.Configuration(ctx, name)
	if err != nil {
		return nil, nil, fmt.Errorf("error loading configuration: %w", err)
	}
	cfg, err := config.Parse(res.JSON, "kubernetes Configuration "+o.Namespace+"/"+name)
	if err != nil {
		return nil, nil, fmt.Errorf("error loading configuration: %w", err)
	}
	return cfg, specOf(res.JSON), nil
}

// specOf returns a resource's spec as canonical JSON (keys sorted), nil if
// it has none.
func specOf(doc []byte) []byte {
	var v struct {
		Spec any `json:"spec"`
	}
	if json.Unmarshal(doc, &v) != nil || v.Spec == nil {
		return nil
	}
	b, _ := json.Marshal(v.Spec)
	return b
}

// operatorResources mirrors, for one sidecar, the resources the operator
// has in its namespace, and turns every change into a components.Change:
// the same changes the resource folders' watch produces, applied by the
// same code.
type operatorResources struct {
	client *opclient.Client
	appID  string
	log    *slog.Logger

	mu sync.Mutex
	// byKind holds each kind's resources in daprd's order: as first
	// loaded, then each one added or changed since at the end.
	byKind  map[opclient.Kind][]opclient.Resource
	current *components.Set
	changes chan components.Change
}

func newOperatorResources(c *opclient.Client, appID string, log *slog.Logger) *operatorResources {
	r := &operatorResources{client: c, appID: appID, log: log, current: &components.Set{},
		byKind: map[opclient.Kind][]opclient.Resource{}, changes: make(chan components.Change)}
	return r
}

// load lists every kind once, for the start-up set. Like daprd, it fails
// if the operator cannot be reached after the client's retries.
func (r *operatorResources) load(ctx context.Context) (*components.Set, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, kind := range operatorKinds {
		list, err := r.client.List(ctx, kind)
		if err != nil && kind == opclient.Resiliencies && ctx.Err() == nil {
			// daprd starts without them then.
			r.log.Error("Error listing resiliency policies: " + err.Error())
			continue
		}
		if err != nil && (kind == opclient.MCPServers || kind == opclient.WorkflowAccessPolicies) && status.Code(err) == codes.Unimplemented {
			// An operator older than Dapr 1.18 serves none.
			r.log.Info("the operator does not serve " + string(kind) + " resources; starting without them")
			continue
		}
		if err != nil {
			return nil, err
		}
		r.byKind[kind] = list
	}
	r.current = r.build()
	return r.current, nil
}

// upsert puts res at the end of list, unless list holds it unchanged.
func upsert(list []opclient.Resource, res opclient.Resource) []opclient.Resource {
	if i := slices.IndexFunc(list, func(x opclient.Resource) bool { return x.Name == res.Name }); i >= 0 {
		if bytes.Equal(list[i].JSON, res.JSON) {
			return list
		}
		list = slices.Delete(slices.Clone(list), i, i+1)
	}
	return append(slices.Clip(list), res)
}

// reconcile returns the resources of a fresh listing in the order of
// list: those unchanged keep their place, the others go at the end.
func reconcile(list, listed []opclient.Resource) []opclient.Resource {
	var out []opclient.Resource
	for _, old := range list {
		if slices.ContainsFunc(listed, func(x opclient.Resource) bool { return x.Name == old.Name && bytes.Equal(x.JSON, old.JSON) }) {
			out = append(out, old)
		}
	}
	for _, res := range listed {
		out = upsert(out, res)
	}
	return out
}

// build parses the mirrored resources into a Set, kind by kind, in the
// mirror's order. Scopes are applied as for files.
func (r *operatorResources) build() *components.Set {
	set := &components.Set{}
	for _, kind := range operatorKinds {
		for _, res := range r.byKind[kind] {
			s := components.Parse(res.JSON, fmt.Sprintf("kubernetes %s %s/%s", kind, res.Namespace, res.Name), r.appID)
			set.Components = append(set.Components, s.Components...)
			set.Subscriptions = append(set.Subscriptions, s.Subscriptions...)
			set.HTTPEndpoints = append(set.HTTPEndpoints, s.HTTPEndpoints...)
			set.Documents = append(set.Documents, s.Documents...)
			set.Errors = append(set.Errors, s.Errors...)
		}
	}
	return set
}

// publish sends the change from the current set to the mirrored one, if
// there is one.
func (r *operatorResources) publish(ctx context.Context) {
	next := r.build()
	events := components.Diff(r.current, next)
	if len(events) == 0 && slices.EqualFunc(r.current.Errors, next.Errors, func(a, b *components.ResourceError) bool { return a.Error() == b.Error() }) {
		r.current = next
		return
	}
	select {
	case r.changes <- components.Change{Set: next, Events: events, Errors: next.Errors}:
		r.current = next
	case <-ctx.Done():
	}
}

// watch returns what Follow does for kind: a snapshot replaces the kind's
// resources (reconciling what was missed), an event changes one.
func (r *operatorResources) watch(ctx context.Context, kind opclient.Kind, resync time.Duration) opclient.Watch {
	return opclient.Watch{
		Kind:   kind,
		Resync: resync,
		Started: func() {
			r.log.Info(fmt.Sprintf("Starting to watch %s updates", kind))
		},
		Resyncing: func() { r.log.Debug(fmt.Sprintf("Running scheduled %s reconcile", kind)) }, // daprd's words
		Snapshot: func(list []opclient.Resource) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.log.Debug(fmt.Sprintf("Reconciling all %s", kind), "count", len(list))
			r.byKind[kind] = reconcile(r.byKind[kind], list)
			r.publish(ctx)
		},
		Event: func(ev opclient.Event) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.log.Info(fmt.Sprintf("Received %s %s event: %s", kind, ev.Type, ev.Resource.Name))
			unchanged := func(x opclient.Resource) bool {
				return x.Name == ev.Resource.Name && bytes.Equal(x.JSON, ev.Resource.JSON)
			}
			if ev.Type != opclient.Deleted && slices.ContainsFunc(r.byKind[kind], unchanged) {
				r.log.Debug(fmt.Sprintf("%s update skipped: no changes detected: %s", kind, ev.Resource.Name)) // daprd's words
				return
			}
			if ev.Type == opclient.Deleted {
				r.byKind[kind] = slices.DeleteFunc(slices.Clone(r.byKind[kind]), func(x opclient.Resource) bool { return x.Name == ev.Resource.Name })
			} else {
				r.byKind[kind] = upsert(r.byKind[kind], ev.Resource)
			}
			r.publish(ctx)
		},
	}
}

// tasks follow every kind's update stream and the Configuration's, and
// apply the changes to rc. A change to the sidecar's own Configuration
// restarts the sidecar (restart), as daprd's SIGHUP reload does.
func (r *operatorResources) tasks(o *Options, rc *runtimeComponents, configSpec []byte, restart func()) []task.Task {
	resync := o.HotReloadReconcileInterval
	if resync <= 0 {
		resync = defaultReconcileInterval
	}
	var tasks []task.Task
	for _, kind := range operatorKinds {
		tasks = append(tasks, task.Task{Name: "operator " + string(kind) + " updates", Run: func(ctx context.Context) error {
			return r.client.Follow(ctx, r.watch(ctx, kind, resync))
		}})
	}
	tasks = append(tasks,
		task.Task{Name: "operator resources apply", Run: func(ctx context.Context) error {
			rc.follow(ctx, r.changes)
			return nil
		}},
		task.Task{Name: "operator Configuration updates", Run: func(ctx context.Context) error {
			return r.client.Follow(ctx, configWatch(o, configSpec, restart, r.log))
		}})
	return tasks
}

// configWatch follows the Configuration stream: a change to the sidecar's
// own Configuration (--config) restarts it; others are not its business.
func configWatch(o *Options, loaded []byte, restart func(), log *slog.Logger) opclient.Watch {
	name := ""
	if len(o.ConfigPaths) > 0 {
		name = o.ConfigPaths[0]
	}
	return opclient.Watch{
		Kind:    opclient.Configurations,
		Started: func() { log.Info("Starting to watch Configuration updates for SIGHUP reload") },
		Event: func(ev opclient.Event) {
			if name == "" || ev.Resource.Name != name {
				log.Debug("ignoring a Configuration this sidecar does not use", "name", ev.Resource.Name, "config", name)
				return
			}
			if ev.Type != opclient.Deleted && bytes.Equal(specOf(ev.Resource.JSON), loaded) {
				log.Debug(fmt.Sprintf("Ignoring Configuration %s event for %s: resource has not changed", ev.Type, name))
				return
			}
			log.Info(fmt.Sprintf("Received Configuration %s event: %s - triggering SIGHUP reload", ev.Type, name))
			restart()
		},
	}
}
