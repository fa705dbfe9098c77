// Package kubernetes is Dapr's `kubernetes` name resolution, the default in
// Kubernetes mode: app ID x in namespace ns is served by the pods behind
// the headless Service x-dapr (the operator creates it for every annotated
// Deployment and StatefulSet).
//
// Dapr dials x-dapr.ns.svc.<clusterDomain>:<internal gRPC port> and lets
// DNS and kube-proxy pick a pod, which pins a long-lived gRPC connection
// to one pod (dapr/dapr#3623). This resolver watches the Service's
// EndpointSlices through the API server instead and returns every ready
// pod, so calls are spread over pods and a pod that stops being ready
// leaves the rotation as soon as the API server says so (the cache is told
// at once: resolve.Notifier). When the sidecar may not watch EndpointSlices
// (no API access, or RBAC forbids it) it falls back to DNS, as Dapr.
//
// Configuration (spec.nameResolution.configuration), Dapr's keys:
//
//	clusterDomain: cluster.local   # the cluster's DNS domain
//	template: "{{.ID}}-{{.Namespace}}.internal:{{.Port}}"  # DNS name (and port) to dial instead
//
// A template means DNS only: it names addresses the watch knows nothing of.
// Tandem's keys:
//
//	watchEndpointSlices: true   # false: DNS only, as Dapr
//	portName: dapr-internal     # the EndpointSlice port sidecars listen on
//	kubeconfig: /path           # API access (default: in-cluster, $KUBECONFIG, ~/.kube/config)
package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/tandemrun/tandem/internal/endpointslices"
	"github.com/tandemrun/tandem/internal/kubeclient"
	"github.com/tandemrun/tandem/internal/kubecore"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/resolve/internal/conf"
)

// Defaults of the configuration.
const (
	DefaultClusterDomain = "cluster.local"
	DefaultPortName      = "dapr-internal"
	// serviceSuffix makes the Service name of an app ID.
	serviceSuffix = "-dapr"
	// maxWatches bounds the Services watched at once; calls to more apps
	// go through DNS.
	maxWatches = 1024
	// syncWait is how long the first call to an app waits for its watch's
	// first listing before it uses DNS.
	syncWait = 3 * time.Second
)

// Config is the parsed configuration.
type Config struct {
	ClusterDomain string
	// Template, if set, makes the address to dial (DNS only).
	Template *template.Template
	// Watch turns the EndpointSlice watch on.
	Watch      bool
	PortName   string
	Kubeconfig string
}

// ParseConfig reads spec.nameResolution.configuration.
func ParseConfig(m map[string]any) (Config, error) {
	c := conf.Map(m)
	var (
		cfg Config
		err error
	)
	if cfg.ClusterDomain, err = c.String(DefaultClusterDomain, "clusterDomain"); err != nil {
		return Config{}, err
	}
	cfg.ClusterDomain = strings.Trim(strings.TrimSpace(cfg.ClusterDomain), ".")
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = DefaultClusterDomain
	}
	if strings.ContainsAny(cfg.ClusterDomain, " /:\t\n") {
		return Config{}, fmt.Errorf("configuration \"clusterDomain\": %q is not a DNS domain; write it like cluster.local", cfg.ClusterDomain)
	}
	tmpl, err := c.String("", "template")
	if err != nil {
		return Config{}, err
	}
	if strings.TrimSpace(tmpl) != "" {
		t, err := template.New("kubernetes-template").Option("missingkey=zero").Parse(tmpl)
		if err != nil {
			return Config{}, fmt.Errorf("configuration \"template\": %w; fields are {{.ID}}, {{.Namespace}}, {{.Port}} and {{.Data}}", err)
		}
		cfg.Template = t
	}
	if cfg.Watch, err = c.Bool(cfg.Template == nil, "watchEndpointSlices"); err != nil {
		return Config{}, err
	}
	if cfg.Watch && cfg.Template != nil {
		return Config{}, errors.New(`configuration: "template" names addresses the EndpointSlice watch knows nothing of; remove "watchEndpointSlices: true" or the template`)
	}
	if cfg.PortName, err = c.String(DefaultPortName, "portName"); err != nil {
		return Config{}, err
	}
	if cfg.Kubeconfig, err = c.String("", "kubeconfig"); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// TemplateData is what a template sees, as Dapr's ResolveRequest.
type TemplateData struct {
	ID        string
	Namespace string
	Port      int
	Data      map[string]string
}

// Resolver resolves app IDs in a Kubernetes cluster.
type Resolver struct {
	cfg    Config
	self   resolve.Instance
	client *kubecore.Client // nil: DNS only
	log    *slog.Logger
	lookup func(ctx context.Context, host string) ([]net.IPAddr, error)

	mu       sync.Mutex
	watches  map[endpointslices.Key]*endpointslices.Watcher
	runCtx   context.Context // set while Run runs
	pending  []*endpointslices.Watcher
	wg       sync.WaitGroup
	onChange func(resolve.Request)
	counters map[resolve.Request]uint64
}

var (
	_ resolve.Resolver = (*Resolver)(nil)
	_ resolve.Lister   = (*Resolver)(nil)
	_ resolve.Notifier = (*Resolver)(nil)
	_ resolve.Runner   = (*Resolver)(nil)
)

// New builds the resolver from its configuration, with API access from
// "kubeconfig", the pod's service account, $KUBECONFIG or ~/.kube/config, in
// that order.
// Without any it resolves through DNS.
func New(c resolve.Config) (*Resolver, error) {
	cfg, err := ParseConfig(c.Configuration)
	if err != nil {
		return nil, fmt.Errorf("kubernetes name resolution: %w", err)
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var client *kubecore.Client
	if cfg.Watch {
		rc, where, err := kubeclient.Config(cfg.Kubeconfig)
		if err == nil {
			client, err = kubecore.New(rc)
		}
		if err != nil {
			log.Info("no Kubernetes API access; resolving app IDs through DNS", "error", err)
		} else {
			log.Info("watching the EndpointSlices of the apps called", "api", where)
		}
	}
	return NewWithClient(c, cfg, client), nil
}

// NewWithClient builds the resolver with a given API client (nil: DNS only).
func NewWithClient(c resolve.Config, cfg Config, client *kubecore.Client) *Resolver {
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !cfg.Watch {
		client = nil
	}
	if cfg.PortName == "" {
		cfg.PortName = DefaultPortName
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = DefaultClusterDomain
	}
	return &Resolver{
		cfg: cfg, self: c.Self, client: client, log: log.With("component", "nameresolution.kubernetes"),
		lookup:  net.DefaultResolver.LookupIPAddr,
		watches: map[endpointslices.Key]*endpointslices.Watcher{}, counters: map[resolve.Request]uint64{},
	}
}

// OnChange implements resolve.Notifier.
func (r *Resolver) OnChange(fn func(resolve.Request)) {
	r.mu.Lock()
	r.onChange = fn
	r.mu.Unlock()
}

// Run runs the EndpointSlice watches (started as apps are first called)
// until ctx ends, then waits for them.
func (r *Resolver) Run(ctx context.Context) error {
	r.mu.Lock()
	r.runCtx = ctx
	for _, w := range r.pending {
		r.startLocked(w)
	}
	r.pending = nil
	r.mu.Unlock()
	<-ctx.Done()
	r.mu.Lock()
	r.runCtx = nil
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// startLocked runs w in Run's context. Called with mu held.
func (r *Resolver) startLocked(w *endpointslices.Watcher) {
	ctx := r.runCtx
	r.wg.Go(func() { _ = w.Run(ctx) })
}

// Resolve returns the next instance of req.AppID, round robin.
func (r *Resolver) Resolve(ctx context.Context, req resolve.Request) (string, error) {
	addrs, err := r.List(ctx, req)
	if err != nil {
		return "", err
	}
	req.Namespace = r.namespace(req)
	r.mu.Lock()
	n := r.counters[req]
	r.counters[req] = n + 1
	r.mu.Unlock()
	return addrs[n%uint64(len(addrs))], nil
}

// List returns every ready instance of req.AppID: its pods from the
// EndpointSlice watch, or the addresses DNS gives for its Service.
func (r *Resolver) List(ctx context.Context, req resolve.Request) ([]string, error) {
	ns := r.namespace(req)
	if w := r.watcher(ns, req.AppID); w != nil {
		if addrs, ok, err := r.fromWatch(ctx, w, ns, req.AppID); ok {
			return addrs, err
		}
	}
	return r.fromDNS(ctx, ns, req.AppID)
}

func (r *Resolver) namespace(req resolve.Request) string {
	switch {
	case req.Namespace != "":
		return req.Namespace
	case r.self.Namespace != "":
		return r.self.Namespace
	}
	return "default"
}

// watcher returns the watch of app's Service, starting it on first use;
// nil when there is no API access or too many Services are watched.
func (r *Resolver) watcher(ns, app string) *endpointslices.Watcher {
	if r.client == nil {
		return nil
	}
	key := endpointslices.Key{Namespace: ns, Service: app + serviceSuffix}
	r.mu.Lock()
	defer r.mu.Unlock()
	if w := r.watches[key]; w != nil {
		return w
	}
	if len(r.watches) >= maxWatches {
		return nil
	}
	w := endpointslices.New(endpointslices.Options{
		Client: r.client, Namespace: ns, Service: key.Service, Port: r.cfg.PortName, Log: r.log,
		OnChange: func(endpointslices.Key) { r.changed(resolve.Request{AppID: app, Namespace: ns}) },
	})
	r.watches[key] = w
	if r.runCtx != nil {
		r.startLocked(w)
	} else {
		r.pending = append(r.pending, w)
	}
	return w
}

func (r *Resolver) changed(req resolve.Request) {
	r.mu.Lock()
	fn := r.onChange
	r.mu.Unlock()
	if fn != nil {
		fn(req)
	}
}

// fromWatch answers from w; ok is false when it cannot (not listed yet, or
// not allowed), and DNS should answer.
func (r *Resolver) fromWatch(ctx context.Context, w *endpointslices.Watcher, ns, app string) ([]string, bool, error) {
	if !w.Synced() {
		wait, cancel := context.WithTimeout(ctx, syncWait)
		select {
		case <-w.Ready():
		case <-wait.Done():
		}
		cancel()
	}
	eps, synced := w.Endpoints(endpointslices.Key{Namespace: ns, Service: app + serviceSuffix})
	if !synced {
		if err := w.Err(); apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			r.log.Debug("may not watch EndpointSlices; resolving through DNS", "app_id", app, "namespace", ns, "error", err)
		}
		return nil, false, nil
	}
	var out []string
	for _, e := range eps {
		if !e.Ready {
			continue
		}
		if e.Port == 0 {
			e.Port = int32(r.self.InternalPort)
		}
		out = append(out, e.HostPort())
	}
	if len(out) == 0 {
		return nil, true, fmt.Errorf("no ready pod behind Service %s/%s%s (its EndpointSlices list none); check that the app's pods run with the Dapr annotations: %w", ns, app, serviceSuffix, resolve.ErrNotFound)
	}
	return slices.Compact(out), true, nil
}

// Address returns the host:port Dapr dials for app in ns: the template's
// result, or <app>-dapr.<ns>.svc.<clusterDomain>:<port>.
func (r *Resolver) Address(ns, app string) (string, error) {
	port := r.self.InternalPort
	if r.cfg.Template == nil {
		return net.JoinHostPort(app+serviceSuffix+"."+ns+".svc."+r.cfg.ClusterDomain, strconv.Itoa(port)), nil
	}
	var b bytes.Buffer
	if err := r.cfg.Template.Execute(&b, TemplateData{ID: app, Namespace: ns, Port: port, Data: map[string]string{}}); err != nil {
		return "", fmt.Errorf("kubernetes name resolution template: %w", err)
	}
	return b.String(), nil
}

// SplitAddress splits a template's result into host and port; a result
// without a port gets def.
func SplitAddress(addr string, def int) (string, string, error) {
	addr = strings.TrimSpace(addr)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = strings.Trim(addr, "[]"), strconv.Itoa(def)
	}
	if host == "" || strings.ContainsAny(host, " /\t\n") {
		return "", "", fmt.Errorf("%q is not a host:port address", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", "", fmt.Errorf("%q has no valid port", addr)
	}
	return host, port, nil
}

// fromDNS looks the app's Service name up (every pod's address, for a
// headless Service).
func (r *Resolver) fromDNS(ctx context.Context, ns, app string) ([]string, error) {
	addr, err := r.Address(ns, app)
	if err != nil {
		return nil, err
	}
	host, port, err := SplitAddress(addr, r.self.InternalPort)
	if err != nil {
		return nil, fmt.Errorf("kubernetes name resolution: app %q: %w", app, err)
	}
	ips, err := r.lookup(ctx, host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, fmt.Errorf("app %q: DNS has no %s; check that the app runs in namespace %q with the Dapr annotations: %w", app, host, ns, resolve.ErrNotFound)
		}
		return nil, fmt.Errorf("app %q: look up %s: %w", app, host, err)
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip.String(), port))
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("app %q: DNS has no address for %s: %w", app, host, resolve.ErrNotFound)
	}
	return out, nil
}

// Close does nothing: Run's end stops the watches.
func (r *Resolver) Close() error { return nil }
