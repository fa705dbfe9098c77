// Package xds is the name resolver that takes endpoints from Tandem's xDS
// server (`tandem xds`, operator --xds-port) by push, instead of polling a
// registry: the sidecar is an xDS client like a proxyless gRPC app.
//
// It keeps one delta ADS stream to the server (go-control-plane's protos on
// a plain gRPC stream) and subscribes, on the first lookup of each app, to
// the app's ClusterLoadAssignment, "cluster/<app-id>.<namespace>". Every
// change the server pushes updates the local table that Resolve and List
// answer from, and is announced through resolve.Notifier, so the cache in
// front (resolve.Cached, with outlier ejection on top) drops the app's old
// list at once.
//
// The server being down never stops the sidecar: the stream is opened
// again with backoff, lookups keep answering from the last endpoints
// received, and an app never received fails at once with an error naming
// the server. On reconnection the stream subscribes again, telling the
// server the versions it holds. An app not looked up for unsubscribeAfter
// is unsubscribed from, so a sidecar that stopped calling an app stops
// receiving its changes; its next lookup subscribes again.
//
// Configuration (spec.nameResolution.configuration):
//
//	server     the xDS server's host:port (required)
//	serverID   the server's SPIFFE ID (default: any ID of our trust anchors
//	           ending in /dapr-xds or /dapr-operator)
//	insecure   plaintext to the server (false: mTLS with this sidecar's SVID)
//	timeout    how long an app's first lookup waits for the server (2s)
//	unsubscribeAfter  how long an app may go without a lookup before it is
//	           unsubscribed from (10m; 0 never)
//
// It registers nothing: the server's source does (the SQLite registry,
// EndpointSlices). The resolvers package adds the SQLite registration when
// the configuration has a "registry" map.
package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"path"
	"slices"
	"strconv"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/invoke/resolve"
)

// EndpointType is the type URL of the resources subscribed to.
const EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

// Backoff bounds of the reconnection.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// connectWait bounds how long a lookup waits for the first
	// connection attempt (with timeout if that is longer).
	connectWait = 5 * time.Second
)

// ClusterName is the EDS resource of an app, as the server names it
// (xds.ClusterName in the control plane; a test holds the two equal).
func ClusterName(appID, namespace string) string { return "cluster/" + appID + "." + namespace }

// Resolver is the xDS client.
type Resolver struct {
	o    Options
	ns   string // namespace of requests that name none
	node *corev3.Node
	log  *slog.Logger
	cc   *grpc.ClientConn

	closeOnce sync.Once
	closed    chan struct{}

	// sendMu serializes sends on the stream; taken before mu.
	sendMu sync.Mutex

	mu       sync.Mutex
	apps     map[string]*entry // by cluster name
	stream   *stream           // nil while disconnected
	failures int               // failed attempts since the last good stream
	lastErr  error
	state    chan struct{} // closed and replaced when stream or failures change
	onChange func(resolve.Request)
}

// entry is one subscribed app.
type entry struct {
	req     resolve.Request
	version string
	addrs   []string // healthy endpoints, sorted
	// known: the server sent the resource (addrs may still be empty when
	// none is healthy). absent: it removed it, or did not send it within
	// the first lookup's wait.
	known, absent bool
	ready         chan struct{} // closed at the first answer (or removal)
	// used is the time of the last lookup; an app unused for
	// UnsubscribeAfter is dropped.
	used time.Time
}

type stream struct {
	s        grpc.BidiStreamingClient[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]
	nodeSent bool
}

var (
	_ resolve.Resolver = (*Resolver)(nil)
	_ resolve.Lister   = (*Resolver)(nil)
	_ resolve.Notifier = (*Resolver)(nil)
	_ resolve.Runner   = (*Resolver)(nil)
)

// New checks the configuration and prepares the connection; Run connects
// and keeps the stream up.
func New(cfg resolve.Config) (*Resolver, error) {
	o, err := ParseOptions(cfg.Configuration)
	if err != nil {
		return nil, fmt.Errorf("xds name resolution: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "nameresolution.xds", "server", o.Server)
	var creds credentials.TransportCredentials
	switch {
	case o.Insecure:
		creds = insecure.NewCredentials()
		log.Warn("xds name resolution talks plaintext to the xDS server (insecure: true)")
	case cfg.Identity == nil:
		return nil, errors.New("xds name resolution: this sidecar has no SVID to authenticate to the xDS server with: enable mTLS (--enable-mtls, --sentry-address) or, for a plaintext server, set insecure: true")
	default:
		creds = credentials.NewTLS(identity.ClientTLS(cfg.Identity, serverAuthorizer(o.ServerID)))
	}
	cc, err := grpc.NewClient(o.Server,
		grpc.WithTransportCredentials(creds),
		// The server allows a ping every 10 s at most.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	if err != nil {
		return nil, fmt.Errorf("xds name resolution: server %q: %w", o.Server, err)
	}
	ns := cfg.Self.Namespace
	if ns == "" {
		ns = identity.DefaultNamespace
	}
	id := "tandemd"
	if cfg.Self.AppID != "" {
		id = cfg.Self.AppID + "." + ns
		if cfg.Self.Address != "" {
			id += "/" + net.JoinHostPort(cfg.Self.Address, strconv.Itoa(cfg.Self.InternalPort))
		}
	}
	return &Resolver{
		o: o, ns: ns, log: log, cc: cc,
		node:   &corev3.Node{Id: id, Cluster: cfg.Self.AppID, UserAgentName: "tandemd"},
		closed: make(chan struct{}),
		apps:   map[string]*entry{},
		state:  make(chan struct{}),
	}, nil
}

// serverAuthorizer accepts id, or without one the control plane's xDS
// identities.
func serverAuthorizer(id spiffeid.ID) tlsconfig.Authorizer {
	if !id.IsZero() {
		return tlsconfig.AuthorizeID(id)
	}
	return tlsconfig.AdaptMatcher(func(got spiffeid.ID) error {
		switch path.Base(got.Path()) {
		case "dapr-xds", "dapr-operator":
			return nil
		}
		return fmt.Errorf("the server's SPIFFE ID %s is not an xDS server's (…/dapr-xds or …/dapr-operator); set serverID to accept it", got)
	})
}

// OnChange implements resolve.Notifier.
func (r *Resolver) OnChange(fn func(resolve.Request)) {
	r.mu.Lock()
	r.onChange = fn
	r.mu.Unlock()
}

// Resolve returns the first healthy instance; resolve.Cached in front
// spreads calls over List instead.
func (r *Resolver) Resolve(ctx context.Context, req resolve.Request) (string, error) {
	addrs, err := r.List(ctx, req)
	if err != nil {
		return "", err
	}
	return addrs[0], nil
}

// List returns the healthy endpoints of req.AppID the server last pushed.
// The first lookup of an app subscribes to it and waits for the answer.
func (r *Resolver) List(ctx context.Context, req resolve.Request) ([]string, error) {
	if req.Namespace == "" {
		req.Namespace = r.ns
	}
	name := ClusterName(req.AppID, req.Namespace)
	r.mu.Lock()
	e := r.apps[name]
	if e == nil {
		e = &entry{req: req, ready: make(chan struct{}), used: time.Now()}
		r.apps[name] = e
		r.mu.Unlock()
		r.subscribe(name)
		r.mu.Lock()
	}
	e.used = time.Now()
	if addrs, err, done := r.answerLocked(e, name); done {
		r.mu.Unlock()
		return addrs, err
	}
	r.mu.Unlock()
	if err := r.waitFirstAttempt(ctx); err != nil {
		return nil, fmt.Errorf("xds name resolution: app %q: %w", req.AppID, err)
	}
	r.mu.Lock()
	down, lastErr := r.stream == nil, r.lastErr
	r.mu.Unlock()
	if down {
		return nil, r.unreachable(req, lastErr)
	}

	t := time.NewTimer(r.o.Timeout)
	defer t.Stop()
	select {
	case <-e.ready:
	case <-t.C:
	case <-ctx.Done():
		return nil, fmt.Errorf("xds name resolution: app %q: %w", req.AppID, ctx.Err())
	case <-r.closed:
		return nil, errors.New("xds name resolution: closed")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if addrs, err, done := r.answerLocked(e, name); done {
		return addrs, err
	}
	if r.stream == nil {
		return nil, r.unreachable(req, r.lastErr)
	}
	// Still connected and no answer: the server has no such app. The
	// subscription stays; a later push brings it.
	e.absent = true
	return nil, fmt.Errorf("app %q: the xDS server at %s has no endpoints for %s (no answer within %v): %w",
		req.AppID, r.o.Server, name, r.o.Timeout, resolve.ErrNotFound)
}

// waitFirstAttempt waits while the first connection to the server is
// being made (a sidecar's first calls at start-up), so that the answer's
// timeout does not count the handshake; at most connectWait.
func (r *Resolver) waitFirstAttempt(ctx context.Context) error {
	t := time.NewTimer(max(r.o.Timeout, connectWait))
	defer t.Stop()
	for {
		r.mu.Lock()
		settled, ch := r.stream != nil || r.failures > 0, r.state
		r.mu.Unlock()
		if settled {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-r.closed:
			return errors.New("closed")
		}
	}
}

// changedLocked wakes waitFirstAttempt; mu is held.
func (r *Resolver) changedLocked() {
	close(r.state)
	r.state = make(chan struct{})
}

// answerLocked answers from e if the server has spoken about it.
func (r *Resolver) answerLocked(e *entry, name string) ([]string, error, bool) {
	switch {
	case e.known && len(e.addrs) > 0:
		return slices.Clone(e.addrs), nil, true
	case e.known:
		return nil, fmt.Errorf("app %q: no healthy endpoint in %s at the xDS server %s: %w", e.req.AppID, name, r.o.Server, resolve.ErrNotFound), true
	case e.absent:
		return nil, fmt.Errorf("app %q: the xDS server at %s has no endpoints for %s: %w", e.req.AppID, r.o.Server, name, resolve.ErrNotFound), true
	}
	return nil, nil, false
}

func (r *Resolver) unreachable(req resolve.Request, err error) error {
	if err == nil {
		err = errors.New("not connected yet")
	}
	return fmt.Errorf("xds name resolution: app %q: no connection to the xDS server at %s (%v); reconnecting", req.AppID, r.o.Server, err)
}

// subscribe asks the server for name on the current stream; without one,
// the next stream subscribes to every app anyway.
func (r *Resolver) subscribe(name string) {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	r.mu.Lock()
	st := r.stream
	r.mu.Unlock()
	if st == nil {
		return
	}
	// A failed send ends the stream; Run sees it on Recv and reconnects.
	_ = r.sendLocked(st, &discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResourceNamesSubscribe: []string{name}})
}

// sendLocked sends on st; sendMu is held. The node goes on the first
// request of a stream.
func (r *Resolver) sendLocked(st *stream, req *discoveryv3.DeltaDiscoveryRequest) error {
	if !st.nodeSent {
		req.Node = r.node
		st.nodeSent = true
	}
	return st.s.Send(req)
}

// Run keeps a stream to the server, reconnecting with backoff, until ctx
// ends or Close is called. It returns nil: an unreachable server is
// logged, never fatal.
func (r *Resolver) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(2)
	go func() {
		defer wg.Done()
		select {
		case <-r.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	go func() {
		defer wg.Done()
		r.unsubscribeIdle(ctx)
	}()
	for ctx.Err() == nil {
		started := time.Now()
		got, err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		r.mu.Lock()
		r.stream = nil
		if got || time.Since(started) > maxBackoff {
			r.failures = 0
		}
		r.failures++
		r.lastErr = err
		r.changedLocked()
		n := r.failures
		r.mu.Unlock()
		d := backoff(n)
		if n == 1 {
			r.log.Warn("xds server unreachable; lookups use the last endpoints received, reconnecting", "error", err, "retry_in", d.Round(time.Millisecond).String())
		} else {
			r.log.Debug("xds server still unreachable", "error", err, "attempt", n, "retry_in", d.Round(time.Millisecond).String())
		}
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	return nil
}

// unsubscribeIdle drops, until ctx ends, the apps not looked up for
// UnsubscribeAfter: a sidecar that stopped calling an app stops receiving
// its endpoint changes. It checks a few times per period.
func (r *Resolver) unsubscribeIdle(ctx context.Context) {
	after := r.o.UnsubscribeAfter
	if after <= 0 {
		return
	}
	tick := time.NewTicker(min(max(after/4, 10*time.Millisecond), time.Minute))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.dropUnused(time.Now().Add(-after))
		}
	}
}

// dropUnused unsubscribes from the apps last looked up before cutoff and
// tells the cache in front to forget them.
func (r *Resolver) dropUnused(cutoff time.Time) {
	r.sendMu.Lock()
	r.mu.Lock()
	var names []string
	var dropped []resolve.Request
	for name, e := range r.apps {
		if e.used.Before(cutoff) {
			names = append(names, name)
			dropped = append(dropped, e.req)
			delete(r.apps, name)
			e.markReady()
		}
	}
	st, fn := r.stream, r.onChange
	r.mu.Unlock()
	if len(names) > 0 && st != nil {
		slices.Sort(names)
		// A failed send ends the stream; Run sees it on Recv and reconnects,
		// subscribing only to the apps still in the table.
		_ = r.sendLocked(st, &discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResourceNamesUnsubscribe: names})
	}
	r.sendMu.Unlock()
	for _, req := range dropped {
		r.log.Debug("unsubscribed from an app not looked up lately", "app_id", req.AppID, "namespace", req.Namespace, "unused_for", r.o.UnsubscribeAfter.String())
		if fn != nil {
			fn(req)
		}
	}
}

// backoff is the wait before attempt n+1: exponential from minBackoff to
// maxBackoff, with ±20 % jitter so many sidecars do not come back at once.
func backoff(n int) time.Duration {
	d := minBackoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// session opens one stream, subscribes to every app asked for so far and
// applies the server's pushes until the stream fails. got reports whether
// the server answered at all.
func (r *Resolver) session(ctx context.Context) (got bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(r.cc).DeltaAggregatedResources(ctx)
	if err != nil {
		return false, err
	}
	st := &stream{s: s}
	r.sendMu.Lock()
	r.mu.Lock()
	first := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, InitialResourceVersions: map[string]string{}}
	for name, e := range r.apps {
		first.ResourceNamesSubscribe = append(first.ResourceNamesSubscribe, name)
		if e.known {
			first.InitialResourceVersions[name] = e.version
		}
	}
	r.stream = st
	r.changedLocked()
	r.mu.Unlock()
	// An empty first request would subscribe to everything (xDS's legacy
	// wildcard): with nothing to ask for yet, the first lookup asks.
	if len(first.ResourceNamesSubscribe) > 0 {
		slices.Sort(first.ResourceNamesSubscribe)
		err = r.sendLocked(st, first)
	}
	r.sendMu.Unlock()
	if err != nil {
		return false, err
	}
	r.log.Info("connected to the xds server", "node", r.node.GetId())
	for {
		resp, err := s.Recv()
		if err != nil {
			return got, err
		}
		got = true
		ack := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: EndpointType, ResponseNonce: resp.GetNonce()}
		if bad := r.apply(resp); bad != nil {
			r.log.Warn("rejected resources from the xds server; keeping the previous ones", "error", bad)
			ack.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: bad.Error()}
		}
		r.sendMu.Lock()
		err = r.sendLocked(st, ack)
		r.sendMu.Unlock()
		if err != nil {
			return got, err
		}
	}
}

// apply updates the table from one push and tells the cache in front
// which apps changed. A resource that does not decode is an error (a
// NACK); the others of the push are applied.
func (r *Resolver) apply(resp *discoveryv3.DeltaDiscoveryResponse) error {
	if resp.GetTypeUrl() != "" && resp.GetTypeUrl() != EndpointType {
		return fmt.Errorf("unexpected type %s", resp.GetTypeUrl())
	}
	var bad []error
	var changed []resolve.Request
	r.mu.Lock()
	for _, res := range resp.GetResources() {
		e := r.apps[res.GetName()]
		if e == nil {
			continue // not asked for (yet)
		}
		var la endpointv3.ClusterLoadAssignment
		if err := res.GetResource().UnmarshalTo(&la); err != nil {
			bad = append(bad, fmt.Errorf("%s: %w", res.GetName(), err))
			continue
		}
		addrs, err := healthy(&la)
		if err != nil {
			bad = append(bad, fmt.Errorf("%s: %w", res.GetName(), err))
			continue
		}
		if !e.known || !slices.Equal(addrs, e.addrs) {
			changed = append(changed, e.req)
		}
		e.version, e.addrs, e.known, e.absent = res.GetVersion(), addrs, true, false
		e.markReady()
	}
	for _, name := range resp.GetRemovedResources() {
		e := r.apps[name]
		if e == nil {
			continue
		}
		if e.known {
			changed = append(changed, e.req)
		}
		e.version, e.addrs, e.known, e.absent = "", nil, false, true
		e.markReady()
	}
	fn := r.onChange
	r.mu.Unlock()
	if fn != nil {
		for _, req := range changed {
			fn(req)
		}
	}
	for _, req := range changed {
		r.log.Debug("endpoints pushed", "app_id", req.AppID, "namespace", req.Namespace)
	}
	return errors.Join(bad...)
}

func (e *entry) markReady() {
	select {
	case <-e.ready:
	default:
		close(e.ready)
	}
}

// healthy returns the sorted host:port of la's endpoints that take calls
// (HEALTHY, or UNKNOWN as xDS treats it).
func healthy(la *endpointv3.ClusterLoadAssignment) ([]string, error) {
	var out []string
	for _, loc := range la.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			switch lb.GetHealthStatus() {
			case corev3.HealthStatus_HEALTHY, corev3.HealthStatus_UNKNOWN:
			default:
				continue
			}
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if sa.GetAddress() == "" || sa.GetPortValue() == 0 || sa.GetPortValue() > 65535 {
				return nil, fmt.Errorf("endpoint without a socket address and port: %v", lb.GetEndpoint().GetAddress())
			}
			out = append(out, net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10)))
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Close stops Run and the connection.
func (r *Resolver) Close() error {
	r.closeOnce.Do(func() {
		close(r.closed)
		_ = r.cc.Close()
	})
	return nil
}
