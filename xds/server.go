package xds

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

// Options configure a Server.
type Options struct {
	Source Source
	Build  BuildOptions
	// Debounce is how long a change waits for more changes before the
	// snapshot is rebuilt (20 ms if zero).
	Debounce time.Duration
	Log      *slog.Logger
}

// Server is the xDS management server: it rebuilds the snapshot when its
// Source changes and serves it to every client over ADS, state of the world
// and delta alike. Every client sees the same resources (one node group).
type Server struct {
	o       Options
	cache   cachev3.SnapshotCache
	xds     serverv3.Server
	version atomic.Uint64

	mu      sync.Mutex
	current []App
	nacks   map[string]string // "node/type" -> last NACK reason
	// nackedVersion is the version last rejected by "node/type".
	nackedVersion map[string]string
}

// nodeGroup puts every client in one group: the resources do not depend on
// who asks (the certificate-provider instance names the client's own
// identity).
type nodeGroup struct{}

func (nodeGroup) ID(*corev3.Node) string { return "tandem" }

// New returns a Server; Run builds the first snapshot and follows the
// source.
func New(o Options) (*Server, error) {
	if o.Source == nil {
		return nil, errors.New("xds: a source of apps is required")
	}
	if o.Build.TrustDomain.IsZero() {
		return nil, errors.New("xds: a trust domain is required (set the sidecars' trust domain)")
	}
	if o.Debounce <= 0 {
		o.Debounce = 20 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.Log = o.Log.With("component", "xds")
	s := &Server{o: o, nacks: map[string]string{}, nackedVersion: map[string]string{}}
	// Not the cache's "ADS mode": that holds back a state-of-the-world
	// answer until the request names every resource of the type, and a
	// proxyless client names only the listeners and clusters it dials.
	// Answers still travel over the aggregated stream.
	s.cache = cachev3.NewSnapshotCache(false, nodeGroup{}, nil)
	s.xds = serverv3.NewServer(context.Background(), s.cache, s.callbacks())
	return s, nil
}

// Register adds the aggregated and per-type discovery services to g.
func (s *Server) Register(g *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(g, s.xds)
	routeservice.RegisterRouteDiscoveryServiceServer(g, s.xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, s.xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, s.xds)
}

// Cache is the snapshot cache (for tests and for embedding the resources
// in another server).
func (s *Server) Cache() cachev3.SnapshotCache { return s.cache }

// Run runs the source, publishes a snapshot at once and again after every
// change, until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srcErr := make(chan error, 1)
	go func() { srcErr <- s.o.Source.Run(ctx) }()
	s.publish(ctx)
	for {
		select {
		case <-ctx.Done():
			<-srcErr
			return nil
		case err := <-srcErr:
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("the source of apps stopped")
			}
			return err
		case <-s.o.Source.Changed():
		}
		// Coalesce a burst of changes (sidecars starting together).
		select {
		case <-ctx.Done():
		case <-time.After(s.o.Debounce):
		}
		s.publish(ctx)
	}
}

// Publish rebuilds the snapshot from the source now.
func (s *Server) publish(ctx context.Context) {
	apps := s.o.Source.Apps()
	SortApps(apps)
	s.mu.Lock()
	same := s.current != nil && EqualApps(s.current, apps)
	s.mu.Unlock()
	if same {
		return
	}
	v := strconv.FormatUint(s.version.Add(1), 10)
	snap, err := Build(v, apps, s.o.Build)
	if err != nil {
		// Keep serving the last good snapshot.
		s.o.Log.Error("xds snapshot not published; clients keep the previous one", "version", v, "error", err)
		return
	}
	if err := s.cache.SetSnapshot(ctx, nodeGroup{}.ID(nil), snap); err != nil {
		s.o.Log.Error("set xds snapshot", "version", v, "error", err)
		return
	}
	s.mu.Lock()
	s.current = apps
	s.mu.Unlock()
	n := 0
	for _, a := range apps {
		n += len(a.Endpoints)
	}
	s.o.Log.Info("xds snapshot published", "version", v, "apps", len(apps), "endpoints", n)
}

// SetSnapshot publishes snap as it is, bypassing Build (tests use it to
// inject resources a client rejects).
func (s *Server) SetSnapshot(ctx context.Context, snap *cachev3.Snapshot) error {
	s.mu.Lock()
	s.current = nil
	s.mu.Unlock()
	return s.cache.SetSnapshot(ctx, nodeGroup{}.ID(nil), snap)
}

// NACKs returns the last rejection reason by "node-id/type-url".
func (s *Server) NACKs() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.nacks))
	for k, v := range s.nacks {
		out[k] = v
	}
	return out
}

// nack records a client's rejection of the version the server sent with
// nonce. A client that rejects a version asks again and may be answered
// with the same version: only the first rejection of a version is logged
// as a warning.
func (s *Server) nack(node *corev3.Node, typeURL, rejected, accepted, nonce, reason string) {
	key := node.GetId() + "/" + typeURL
	s.mu.Lock()
	first := s.nackedVersion[key] != rejected || s.nacks[key] != reason
	s.nacks[key] = reason
	s.nackedVersion[key] = rejected
	s.mu.Unlock()
	level := slog.LevelDebug
	if first {
		level = slog.LevelWarn
	}
	s.o.Log.Log(context.Background(), level, "xds client rejected resources; it keeps its previous version",
		"node", node.GetId(), "type", typeURL, "rejected_version", rejected, "accepted_version", accepted, "nonce", nonce, "reason", reason)
}

func (s *Server) callbacks() serverv3.Callbacks {
	nodes := sync.Map{} // stream id -> *corev3.Node (sent on the first request only)
	nodeOf := func(id int64, n *corev3.Node) *corev3.Node {
		if n != nil {
			nodes.Store(id, n)
			return n
		}
		if v, ok := nodes.Load(id); ok {
			return v.(*corev3.Node)
		}
		return nil
	}
	// sent is the version each response carried, by "stream/nonce", until
	// the client answers that nonce: a NACK names the nonce of the rejected
	// response and the version it still holds.
	sent := sync.Map{}
	sentVersion := func(id int64, nonce string) string {
		if v, ok := sent.LoadAndDelete(strconv.FormatInt(id, 10) + "/" + nonce); ok {
			return v.(string)
		}
		return ""
	}
	return serverv3.CallbackFuncs{
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			n := nodeOf(id, req.GetNode())
			rejected := sentVersion(id, req.GetResponseNonce())
			if d := req.GetErrorDetail(); d != nil {
				s.nack(n, req.GetTypeUrl(), rejected, req.GetVersionInfo(), req.GetResponseNonce(), d.GetMessage())
			}
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			sent.Store(strconv.FormatInt(id, 10)+"/"+resp.GetNonce(), resp.GetVersionInfo())
		},
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			n := nodeOf(id, req.GetNode())
			rejected := sentVersion(id, req.GetResponseNonce())
			if d := req.GetErrorDetail(); d != nil {
				s.nack(n, req.GetTypeUrl(), rejected, "", req.GetResponseNonce(), d.GetMessage())
			}
			return nil
		},
		StreamDeltaResponseFunc: func(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			sent.Store(strconv.FormatInt(id, 10)+"/"+resp.GetNonce(), resp.GetSystemVersionInfo())
		},
		StreamOpenFunc: func(_ context.Context, id int64, typeURL string) error {
			s.o.Log.Debug("xds stream opened", "stream", id, "type", typeURL)
			return nil
		},
		StreamClosedFunc: func(id int64, n *corev3.Node) {
			nodes.Delete(id)
			forgetStream(&sent, id)
			s.o.Log.Debug("xds stream closed", "stream", id, "node", n.GetId())
		},
		DeltaStreamClosedFunc: func(id int64, n *corev3.Node) {
			nodes.Delete(id)
			forgetStream(&sent, id)
			s.o.Log.Debug("xds delta stream closed", "stream", id, "node", n.GetId())
		},
	}
}

// forgetStream drops a closed stream's unanswered nonces.
func forgetStream(sent *sync.Map, id int64) {
	prefix := strconv.FormatInt(id, 10) + "/"
	sent.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), prefix) {
			sent.Delete(k)
		}
		return true
	})
}
