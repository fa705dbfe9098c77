package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
)

// EtcdOptions configure the embedded etcd server (Dapr scheduler's
// --etcd-* flags).
type EtcdOptions struct {
	// Name is this replica's ID, a name in InitialCluster.
	Name string
	// InitialCluster is "<id>=http(s)://host:peer-port" for every replica.
	InitialCluster []string
	// DataDir is --etcd-data-dir; the data goes in Dapr's sub-folder of it.
	DataDir string
	// Kubernetes puts the data in <DataDir>/dapr-0.1 (a pod's volume)
	// rather than <DataDir>/<namespace>-<id>/dapr-0.1.
	Kubernetes bool
	Namespace  string
	// ClientListenAddress and ClientPort are where the etcd client API
	// listens.
	ClientListenAddress string
	ClientPort          int
	// The rest are etcd's tuning knobs; zero keeps etcd's default.
	SpaceQuota           int64
	CompactionMode       string
	CompactionRetention  string
	SnapshotCount        uint64
	MaxSnapshots         uint
	MaxWALs              uint
	BackendBatchLimit    int
	BackendBatchInterval time.Duration
	MaxTxnOps            uint
	DefragThresholdMB    uint
	ElectionTickAdvance  bool
	Metrics              string
	// LogLevel is etcd's own log level (its logs go to stderr).
	LogLevel string
}

// Etcd is a running embedded etcd server.
type Etcd struct {
	e        *embed.Etcd
	endpoint string
}

// peerURLs reads --etcd-initial-cluster.
func peerURLs(cluster []string) (map[string]url.URL, error) {
	urls := map[string]url.URL{}
	for _, c := range cluster {
		id, addr, ok := strings.Cut(c, "=")
		if !ok {
			return nil, fmt.Errorf("--etcd-initial-cluster entry %q is not <id>=http://<ip>:<peer-port>", c)
		}
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("--etcd-initial-cluster entry %q: include http:// or https:// and host:port", c)
		}
		urls[id] = *u
	}
	return urls, nil
}

// StartEtcd starts the embedded etcd server and returns once it serves
// (it has joined its cluster), or when ctx ends.
func StartEtcd(ctx context.Context, o EtcdOptions) (*Etcd, error) {
	urls, err := peerURLs(o.InitialCluster)
	if err != nil {
		return nil, err
	}
	peer, ok := urls[o.Name]
	if !ok {
		return nil, fmt.Errorf("scheduler ID %s is not found in --etcd-initial-cluster %s: give every replica an entry <id>=http://host:port", o.Name, strings.Join(o.InitialCluster, ","))
	}
	cfg := embed.NewConfig()
	cfg.Name = o.Name
	cfg.InitialCluster = strings.Join(o.InitialCluster, ",")
	cfg.MaxRequestBytes = 1<<31 - 1
	cfg.WarningApplyDuration = 5 * time.Second
	cfg.AdvertisePeerUrls = []url.URL{peer}
	listenPeer := peer
	if ip := net.ParseIP(peer.Hostname()); o.Kubernetes || (ip == nil && peer.Hostname() != "localhost") {
		listenPeer.Host = net.JoinHostPort("0.0.0.0", peer.Port())
	}
	cfg.ListenPeerUrls = []url.URL{listenPeer}
	// https peers (Dapr's with mTLS) get etcd's self-signed peer
	// certificates: the peer traffic is then encrypted, though not bound
	// to sentry identities.
	cfg.PeerAutoTLS = peer.Scheme == "https"
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort(o.ClientListenAddress, strconv.Itoa(o.ClientPort))}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	if o.Kubernetes {
		cfg.Dir = filepath.Join(o.DataDir, "dapr-0.1")
	} else {
		cfg.Dir = filepath.Join(o.DataDir, o.Namespace+"-"+o.Name, "dapr-0.1")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd data dir: %w (choose another --etcd-data-dir)", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "member")); err == nil {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	if o.SpaceQuota > 0 {
		cfg.QuotaBackendBytes = o.SpaceQuota
	}
	if o.CompactionMode != "" {
		cfg.AutoCompactionMode = o.CompactionMode
		cfg.AutoCompactionRetention = o.CompactionRetention
	}
	setIf(&cfg.SnapshotCount, o.SnapshotCount)
	setIf(&cfg.MaxSnapFiles, o.MaxSnapshots)
	setIf(&cfg.MaxWalFiles, o.MaxWALs)
	setIf(&cfg.BackendBatchLimit, o.BackendBatchLimit)
	setIf(&cfg.BackendBatchInterval, o.BackendBatchInterval)
	setIf(&cfg.MaxTxnOps, o.MaxTxnOps)
	setIf(&cfg.BootstrapDefragThresholdMegabytes, o.DefragThresholdMB)
	cfg.InitialElectionTickAdvance = o.ElectionTickAdvance
	if o.Metrics != "" {
		cfg.Metrics = o.Metrics
	}
	cfg.LogLevel = o.LogLevel
	if cfg.LogLevel == "" {
		cfg.LogLevel = "warn"
	}
	cfg.LogOutputs = []string{"stderr"}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd (peer %s, client %s, data %s): %w", listenPeer.String(), clientURL.String(), cfg.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	return &Etcd{e: e, endpoint: clientURL.Host}, nil
}

func setIf[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// Endpoint is the client API's host:port.
func (e *Etcd) Endpoint() string { return e.endpoint }

// Run keeps the server until ctx ends, then stops it; it fails when etcd
// does.
func (e *Etcd) Run(ctx context.Context) error {
	defer e.e.Close()
	select {
	case <-ctx.Done():
		return nil
	case err, ok := <-e.e.Err():
		if !ok || err == nil {
			return errors.New("embedded etcd stopped")
		}
		return fmt.Errorf("embedded etcd: %w", err)
	}
}

// LocalClient is a client of this embedded etcd that calls its server in
// process, as function calls through etcd's v3rpc interfaces: no socket,
// HTTP/2 framing or protobuf round trip through gRPC for each transaction.
// Close it before the server stops.
func (e *Etcd) LocalClient() *clientv3.Client { return v3client.New(e.e.Server) }

// ClientOptions configure a client of the store.
type ClientOptions struct {
	Endpoints []string
	Username  string
	Password  string
}

// NewClient connects a client to etcd.
func NewClient(o ClientOptions) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   o.Endpoints,
		Username:    o.Username,
		Password:    o.Password,
		DialTimeout: 20 * time.Second,
		// Jobs carry their data (a few megabytes is allowed), and the
		// engine lists them all at once: no client-side message bound
		// below the server's.
		MaxCallSendMsgSize: 1<<31 - 1,
		MaxCallRecvMsgSize: 1<<31 - 1,
		Logger:             zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(o.Endpoints, ","), err)
	}
	return c, nil
}
