// Package endpointslices follows Kubernetes EndpointSlices through the API
// server (list, then watch from that version) and keeps, for each Service,
// the endpoints of all its slices merged. Changes are pushed: a subscriber
// hears of a Service whose endpoints changed as soon as the API server
// sends the event, without polling.
//
// Name resolution in Kubernetes mode uses it for the `<app-id>-dapr`
// Services; an xDS server can use it for every Service of a namespace.
package endpointslices

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
)

// API lists and watches EndpointSlices (kubecore.Client does, with a
// scheme of only the groups a sidecar reads).
type API interface {
	EndpointSlices(ctx context.Context, namespace string, opts metav1.ListOptions) (*discoveryv1.EndpointSliceList, error)
	WatchEndpointSlices(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error)
}

// Key names a Service.
type Key struct {
	Namespace string
	Service   string
}

func (k Key) String() string { return k.Namespace + "/" + k.Service }

// Endpoint is one address of a Service, as one of its EndpointSlices lists
// it.
type Endpoint struct {
	// Address is the IP address.
	Address string
	// Port is the port named Options.Port in the slice (its first port
	// when Options.Port is empty); 0 when the slice has no such port.
	Port int32
	// Ready, Serving and Terminating are the slice's conditions (an unset
	// ready or serving condition counts as true, as the API says).
	Ready, Serving, Terminating bool
	// Pod is the name of the Pod behind the endpoint, if the slice says.
	Pod string
	// Node and Zone say where it runs, if the slice says.
	Node, Zone string
}

// HostPort returns Address:Port.
func (e Endpoint) HostPort() string {
	return net.JoinHostPort(e.Address, strconv.Itoa(int(e.Port)))
}

// Options configure a Watcher.
type Options struct {
	Client API
	// Namespace limits the watch to one namespace; empty watches all.
	Namespace string
	// Service limits the watch to the slices of one Service (the
	// kubernetes.io/service-name label); empty watches every Service.
	Service string
	// Port is the name of the port reported in each Endpoint.
	Port string
	// OnChange, if set, is called (from the watch's goroutine, with no
	// lock held) after the endpoints of a Service changed, and for every
	// Service once the first listing is in.
	OnChange func(Key)
	// Backoff is the wait before listing again after an error (1 s by
	// default; it doubles up to 30 s while errors continue).
	Backoff time.Duration
	Log     *slog.Logger
}

// Watcher keeps the EndpointSlices its Options select.
type Watcher struct {
	o Options

	mu     sync.Mutex
	slices map[string]*discoveryv1.EndpointSlice // by namespace/name
	synced bool
	err    error
	// ready is closed when the first listing succeeded or failed.
	ready     chan struct{}
	readyOnce sync.Once
}

// New returns a watcher; Run does the work.
func New(o Options) *Watcher {
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{o: o, slices: map[string]*discoveryv1.EndpointSlice{}, ready: make(chan struct{})}
}

// Run lists and watches until ctx ends, listing again after every error.
// It returns nil when ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	backoff := w.o.Backoff
	failures := 0
	for {
		rv, err := w.list(ctx)
		if err == nil {
			backoff, failures = w.o.Backoff, 0
			err = w.watch(ctx, rv)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			w.setErr(err)
			failures++
			w.logFailure(err, failures, backoff)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// logFailure logs the first failure of a row at warning level (a refusal
// by RBAC at info: the caller has a fallback), the others at debug level.
func (w *Watcher) logFailure(err error, n int, retry time.Duration) {
	args := []any{"namespace", w.o.Namespace, "service", w.o.Service, "retry_in", retry.String(), "error", err}
	switch {
	case n > 1:
		w.o.Log.Debug("EndpointSlice watch still failing; listing again", args...)
	case apierrors.IsForbidden(err):
		w.o.Log.Info("may not list and watch EndpointSlices; grant list and watch on endpointslices (discovery.k8s.io) to the service account to use them", args...)
	default:
		w.o.Log.Warn("EndpointSlice watch failed; listing again", args...)
	}
}

// Ready is closed once the first listing has succeeded or failed; then
// Err tells which.
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Err returns the error of the last listing or watch, nil while it works.
// apierrors.IsForbidden(err) means the credentials may not list
// EndpointSlices.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Synced reports whether a listing has succeeded: only then do Endpoints
// answers mean something.
func (w *Watcher) Synced() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.synced
}

// Endpoints returns the endpoints of a Service, merged over its slices and
// sorted by address and port; duplicates (one address in two slices, as
// during a slice's replacement) are listed once, ready if either says so.
// ok is false before the first listing succeeded.
func (w *Watcher) Endpoints(k Key) (eps []Endpoint, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.synced {
		return nil, false
	}
	for _, s := range w.slices {
		if keyOf(s) != k {
			continue
		}
		eps = append(eps, w.endpointsOf(s)...)
	}
	slices.SortFunc(eps, func(a, b Endpoint) int {
		return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port), compareBool(b.Ready, a.Ready))
	})
	return slices.CompactFunc(eps, func(a, b Endpoint) bool { return a.Address == b.Address && a.Port == b.Port }), true
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// Services lists the Services that have slices now, sorted.
func (w *Watcher) Services() []Key {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Key
	for _, s := range w.slices {
		if k := keyOf(s); !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b Key) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Service, b.Service))
	})
	return out
}

func (w *Watcher) selector() string {
	if w.o.Service == "" {
		return discoveryv1.LabelServiceName // every slice that belongs to a Service
	}
	return labels.Set{discoveryv1.LabelServiceName: w.o.Service}.String()
}

// list replaces the slices with a fresh listing and returns its version.
func (w *Watcher) list(ctx context.Context) (string, error) {
	var (
		items []discoveryv1.EndpointSlice
		rv    string
		cont  string
	)
	for {
		l, err := w.o.Client.EndpointSlices(ctx, w.o.Namespace, metav1.ListOptions{
			LabelSelector: w.selector(), Limit: 500, Continue: cont,
		})
		if err != nil {
			if apierrors.IsResourceExpired(err) && cont != "" {
				cont, items = "", nil // the continue token expired: start over
				continue
			}
			w.readyOnce.Do(func() { w.setErr(err); close(w.ready) })
			return "", fmt.Errorf("list EndpointSlices (namespace %q, %s): %w", w.o.Namespace, w.selector(), err)
		}
		items = append(items, l.Items...)
		rv, cont = l.ResourceVersion, l.Continue
		if cont == "" {
			break
		}
	}
	w.mu.Lock()
	old := w.slices
	w.slices = make(map[string]*discoveryv1.EndpointSlice, len(items))
	for i := range items {
		s := &items[i]
		w.slices[s.Namespace+"/"+s.Name] = s
	}
	first := !w.synced
	w.synced, w.err = true, nil
	changed := changedKeys(old, w.slices, first)
	w.mu.Unlock()
	w.readyOnce.Do(func() { close(w.ready) })
	w.notify(changed...)
	return rv, nil
}

// changedKeys returns the Services whose slices differ between a and b
// (all of b's when all is set).
func changedKeys(a, b map[string]*discoveryv1.EndpointSlice, all bool) []Key {
	var out []Key
	add := func(k Key) {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for name, s := range b {
		if o, ok := a[name]; all || !ok || o.ResourceVersion != s.ResourceVersion {
			add(keyOf(s))
		}
	}
	for name, s := range a {
		if _, ok := b[name]; !ok {
			add(keyOf(s))
		}
	}
	return out
}

// errExpired ends a watch whose version is too old: list again at once.
var errExpired = errors.New("watch version expired")

// watch applies events from version rv until the watch ends.
func (w *Watcher) watch(ctx context.Context, rv string) error {
	for {
		wi, err := w.o.Client.WatchEndpointSlices(ctx, w.o.Namespace, metav1.ListOptions{
			LabelSelector: w.selector(), ResourceVersion: rv, AllowWatchBookmarks: true,
		})
		if err != nil {
			return fmt.Errorf("watch EndpointSlices (namespace %q, %s): %w", w.o.Namespace, w.selector(), err)
		}
		rv, err = w.events(ctx, wi, rv)
		wi.Stop()
		if errors.Is(err, errExpired) {
			return nil // Run lists again after its backoff
		}
		if err != nil || ctx.Err() != nil {
			return err
		}
		// The server closed the watch (its timeout): go on from rv.
	}
}

// events applies a watch's events and returns the last version seen.
func (w *Watcher) events(ctx context.Context, wi watch.Interface, rv string) (string, error) {
	for {
		var ev watch.Event
		var ok bool
		select {
		case <-ctx.Done():
			return rv, nil
		case ev, ok = <-wi.ResultChan():
			if !ok {
				return rv, nil
			}
		}
		switch ev.Type {
		case watch.Error:
			err := apierrors.FromObject(ev.Object)
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				return rv, errExpired
			}
			return rv, fmt.Errorf("watch EndpointSlices: %w", err)
		case watch.Bookmark:
			if m, err := metaOf(ev.Object); err == nil {
				rv = m.GetResourceVersion()
			}
			continue
		}
		s, ok := ev.Object.(*discoveryv1.EndpointSlice)
		if !ok {
			continue
		}
		rv = s.ResourceVersion
		name := s.Namespace + "/" + s.Name
		w.mu.Lock()
		if ev.Type == watch.Deleted {
			delete(w.slices, name)
		} else {
			w.slices[name] = s
		}
		w.mu.Unlock()
		w.notify(keyOf(s))
	}
}

func metaOf(obj any) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", obj)
	}
	return m, nil
}

func (w *Watcher) setErr(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

func (w *Watcher) notify(keys ...Key) {
	if w.o.OnChange == nil {
		return
	}
	for _, k := range keys {
		w.o.OnChange(k)
	}
}

// keyOf names the Service a slice belongs to.
func keyOf(s *discoveryv1.EndpointSlice) Key {
	return Key{Namespace: s.Namespace, Service: s.Labels[discoveryv1.LabelServiceName]}
}

// endpointsOf lists a slice's endpoints with the port w reports. Called
// with mu held.
func (w *Watcher) endpointsOf(s *discoveryv1.EndpointSlice) []Endpoint {
	var port int32
	for i, p := range s.Ports {
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		if (w.o.Port == "" && i == 0) || (w.o.Port != "" && name == w.o.Port) {
			if p.Port != nil {
				port = *p.Port
			}
			break
		}
	}
	var out []Endpoint
	for _, e := range s.Endpoints {
		c := e.Conditions
		ep := Endpoint{
			Port:        port,
			Ready:       c.Ready == nil || *c.Ready,
			Serving:     c.Serving == nil || *c.Serving,
			Terminating: c.Terminating != nil && *c.Terminating,
		}
		if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
			ep.Pod = e.TargetRef.Name
		}
		if e.NodeName != nil {
			ep.Node = *e.NodeName
		}
		if e.Zone != nil {
			ep.Zone = *e.Zone
		}
		for _, a := range e.Addresses {
			ep.Address = a
			out = append(out, ep)
		}
	}
	return out
}
