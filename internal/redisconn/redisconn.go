// Package redisconn reads Dapr's Redis connection metadata and connects:
// the part every Redis backend shares, whatever its kind (pubsub.redis,
// state.redis, lock.redis, configuration.redis, bindings.redis).
//
// Three topologies, chosen by the same metadata as Dapr's components:
//
//   - a single node (the default, redisType "node"): redisHost is one
//     host:port;
//   - Redis Cluster (redisType "cluster"): redisHost is one or more
//     comma-separated host:port seeds, the client learns the rest;
//   - Sentinel (failover "true"): redisHost lists the sentinels, and
//     sentinelMasterName names the master they monitor; the client asks
//     them for the current master and follows a failover. redisType is then
//     ignored, as Dapr's client behaves the same either way without
//     read-from-replica routing.
//
// Connect returns a go-redis UniversalClient: *goredis.Client for a node
// and for Sentinel, *goredis.ClusterClient for a cluster. What a backend
// cannot do on a cluster (commands and transactions over keys in several
// hash slots, keyspace notifications that each master publishes only for
// its own keys) it checks with Config.Cluster, Slot and EachMaster.
//
// Only backends import this package; internal/redisconn/redistest starts
// real clusters and sentinels for their tests.
package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Metadata is what Parse reads: a component's metadata with Dapr's typed
// getters (components.Metadata).
type Metadata interface {
	String(name, def string) string
	Int(name string, def int) (int, error)
	Bool(name string, def bool) (bool, error)
	Duration(name string, def time.Duration) (time.Duration, error)
}

// Topology values of Config.Type (metadata redisType).
const (
	TypeNode    = "node"
	TypeCluster = "cluster"
)

// defaultPort is added to an address without one, as Dapr does for every
// topology (sentinels too: give their port, usually 26379).
const defaultPort = "6379"

// Config is the connection part of a component's metadata, with Dapr's
// names and defaults.
type Config struct {
	Host             string        // redisHost, normalised: the addresses joined with ","
	Addrs            []string      // redisHost split at commas, each with a port (":6379" added)
	Type             string        // redisType: TypeNode or TypeCluster
	Failover         bool          // failover: Addrs are sentinels
	Master           string        // sentinelMasterName (failover only)
	Username         string        // redisUsername
	Password         string        // redisPassword
	SentinelUsername string        // sentinelUsername: for the sentinels, not the master
	SentinelPassword string        // sentinelPassword
	DB               int           // redisDB (not on a cluster, which has only database 0)
	EnableTLS        bool          // enableTLS
	Timeout          time.Duration // dialTimeout (connect and ping at Init)
}

// Parse reads and checks the connection settings of the component name;
// redisHost is required.
func Parse(name string, md Metadata) (Config, error) { return ParseOr(name, md, "") }

// ParseOr is Parse with a default for redisHost ("" = required).
func ParseOr(name string, md Metadata, defaultHost string) (Config, error) {
	c := Config{
		Host:             md.String("redisHost", defaultHost),
		Type:             strings.ToLower(strings.TrimSpace(md.String("redisType", TypeNode))),
		Master:           md.String("sentinelMasterName", ""),
		Username:         md.String("redisUsername", ""),
		Password:         md.String("redisPassword", ""),
		SentinelUsername: md.String("sentinelUsername", ""),
		SentinelPassword: md.String("sentinelPassword", ""),
	}
	if strings.TrimSpace(c.Host) == "" {
		return c, fmt.Errorf("component %q: metadata %q is required, e.g. localhost:6379 (for a cluster or sentinels: a comma-separated list)", name, "redisHost")
	}
	if c.Type == "" {
		c.Type = TypeNode
	}
	if c.Type != TypeNode && c.Type != TypeCluster {
		return c, fmt.Errorf("component %q: metadata %q is %q; set %q or %q", name, "redisType", c.Type, TypeNode, TypeCluster)
	}
	var err error
	if c.Failover, err = md.Bool("failover", false); err != nil {
		return c, err
	}
	if c.DB, err = md.Int("redisDB", 0); err != nil {
		return c, err
	}
	if c.DB < 0 {
		return c, fmt.Errorf("component %q: metadata %q must not be negative", name, "redisDB")
	}
	if c.EnableTLS, err = md.Bool("enableTLS", false); err != nil {
		return c, err
	}
	if c.Timeout, err = md.Duration("dialTimeout", 5*time.Second); err != nil {
		return c, err
	}
	if c.Timeout <= 0 {
		return c, fmt.Errorf("component %q: metadata %q must be positive", name, "dialTimeout")
	}
	for _, a := range strings.Split(c.Host, ",") {
		if a = strings.TrimSpace(a); a == "" {
			return c, fmt.Errorf("component %q: metadata %q %q has an empty address; separate host:port entries with single commas", name, "redisHost", c.Host)
		}
		c.Addrs = append(c.Addrs, withPort(a))
	}
	c.Host = strings.Join(c.Addrs, ",")
	switch {
	case c.Failover:
		if c.Master == "" {
			return c, fmt.Errorf("component %q: metadata %q is required with failover \"true\": the name the sentinels monitor the master under (sentinel monitor <name> ...)", name, "sentinelMasterName")
		}
		c.Type = TypeNode // one master at a time, whatever redisType says
	case c.Type == TypeCluster:
		if c.DB != 0 {
			return c, fmt.Errorf("component %q: metadata %q is %d, but a Redis Cluster has only database 0; remove redisDB or set it to 0", name, "redisDB", c.DB)
		}
	case len(c.Addrs) > 1:
		return c, fmt.Errorf("component %q: metadata %q lists %d addresses, but redisType is %q (one server); set redisType \"cluster\" for a cluster, or failover \"true\" and sentinelMasterName for sentinels", name, "redisHost", len(c.Addrs), TypeNode)
	}
	return c, nil
}

// withPort adds the default port to an address without one.
func withPort(a string) string {
	if _, _, err := net.SplitHostPort(a); err == nil {
		return a
	}
	return net.JoinHostPort(strings.Trim(a, "[]"), defaultPort)
}

// Cluster reports whether the configuration is a Redis Cluster.
func (c Config) Cluster() bool { return c.Type == TypeCluster && !c.Failover }

// Describe names the server(s) for log lines and errors.
func (c Config) Describe() string {
	switch {
	case c.Failover:
		return fmt.Sprintf("redis master %q through sentinels %s", c.Master, c.Host)
	case c.Cluster():
		return "redis cluster at " + c.Host
	}
	return "redis at " + c.Host
}

// Options returns the client options the metadata sets; a backend may set
// more (retries, pool sizes, protocol) before NewClient.
func (c Config) Options() *goredis.UniversalOptions {
	o := &goredis.UniversalOptions{
		Addrs:            append([]string(nil), c.Addrs...),
		Username:         c.Username,
		Password:         c.Password,
		SentinelUsername: c.SentinelUsername,
		SentinelPassword: c.SentinelPassword,
		DB:               c.DB,
		DialTimeout:      c.Timeout,
	}
	if c.Failover {
		o.MasterName = c.Master
	}
	if c.EnableTLS {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return o
}

// NewClient builds the client for the topology, without connecting: a
// *goredis.ClusterClient for a cluster, a *goredis.Client otherwise (for
// Sentinel, one that finds the master through the sentinels).
func (c Config) NewClient(o *goredis.UniversalOptions) goredis.UniversalClient {
	switch {
	case c.Failover:
		return goredis.NewFailoverClient(o.Failover())
	case c.Cluster():
		return goredis.NewClusterClient(o.Cluster())
	}
	return goredis.NewClient(o.Simple())
}

// Connect opens a client with Options and pings the server within Timeout;
// the client is closed again when the ping fails.
func (c Config) Connect(ctx context.Context, name string) (goredis.UniversalClient, error) {
	return c.ConnectWith(ctx, name, c.Options())
}

// ConnectWith is Connect with options the backend adjusted.
func (c Config) ConnectWith(ctx context.Context, name string, o *goredis.UniversalOptions) (goredis.UniversalClient, error) {
	client := c.NewClient(o)
	pctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if err := c.ping(pctx, client); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("component %q: connect to %s: %w (%s)", name, c.Describe(), err, c.hint())
	}
	return client, nil
}

// ping checks the server; on a cluster every master must answer, so that
// a half-configured cluster fails at Init rather than on some keys later.
func (c Config) ping(ctx context.Context, client goredis.UniversalClient) error {
	if err := client.Ping(ctx).Err(); err != nil {
		return err
	}
	if cc, ok := client.(*goredis.ClusterClient); ok {
		info, err := cc.ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Errorf("cluster info: %w", err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return errors.New("cluster_state is not ok: the cluster is still forming or lost slots")
		}
		return cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
			return m.Ping(ctx).Err()
		})
	}
	return nil
}

// hint says what to check when connecting failed.
func (c Config) hint() string {
	switch {
	case c.Failover:
		return "are the sentinels up, do they monitor a master named by sentinelMasterName, and is that master reachable from here? sentinelUsername/sentinelPassword are for the sentinels, redisUsername/redisPassword for the master"
	case c.Cluster():
		return "is redisHost a node of a running cluster whose every slot is served (redis-cli --cluster check)? redisType \"cluster\" needs cluster-enabled servers"
	}
	return "is the server up and redisHost right? For a cluster set redisType \"cluster\"; for sentinels failover \"true\""
}

// EachMaster calls fn with a client of every master: each master of a
// cluster, or the one server (or current sentinel master) otherwise. The
// clients belong to client; fn must not close them.
func EachMaster(ctx context.Context, client goredis.UniversalClient, fn func(ctx context.Context, master *goredis.Client) error) error {
	switch c := client.(type) {
	case *goredis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *goredis.Client:
		return fn(ctx, c)
	}
	return fmt.Errorf("redisconn: unsupported client %T", client)
}
