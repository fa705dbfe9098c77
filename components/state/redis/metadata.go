package redis

import (
	"crypto/tls"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
)

type config struct {
	opts goredis.Options
	// defaultTTL is the component's ttlInSeconds, applied to writes without
	// their own; 0 means none.
	defaultTTL int
}

// parseConfig reads Dapr's state.redis metadata. Supported: redisHost,
// redisUsername, redisPassword, redisDB, enableTLS, ttlInSeconds,
// redisMaxRetries, redisMinRetryInterval, redisMaxRetryInterval, dialTimeout,
// readTimeout, writeTimeout, poolSize, minIdleConns, poolTimeout. Cluster and
// sentinel modes (redisType cluster, failover) are refused.
func parseConfig(md components.Metadata) (config, error) {
	var c config
	host := md.String("redisHost", "")
	if host == "" {
		return c, fmt.Errorf("component %q: metadata redisHost is required, e.g. \"localhost:6379\"", md.Name)
	}
	if t := md.String("redisType", "node"); t != "node" {
		return c, fmt.Errorf("component %q: metadata redisType %q is not supported: only \"node\"", md.Name, t)
	}
	if f, err := md.Bool("failover", false); err != nil || f {
		return c, fmt.Errorf("component %q: metadata failover (sentinel) is not supported", md.Name)
	}
	c.opts = goredis.Options{
		Addr:     host,
		Username: md.String("redisUsername", ""),
		Password: md.String("redisPassword", ""),
		// Lua and pipelines behave the same on RESP2; it works on every
		// Redis version Dapr supports.
		Protocol:        2,
		DisableIdentity: true,
	}
	var err error
	if c.opts.DB, err = md.Int("redisDB", 0); err != nil {
		return c, err
	}
	tlsOn, err := md.Bool("enableTLS", false)
	if err != nil {
		return c, err
	}
	if tlsOn {
		skip, err := md.Bool("insecureSkipVerify", false)
		if err != nil {
			return c, err
		}
		c.opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: skip} //nolint:gosec // opt-in, as in Dapr
	}
	if c.defaultTTL, err = md.Int("ttlInSeconds", 0); err != nil {
		return c, err
	}
	if c.opts.MaxRetries, err = md.Int("redisMaxRetries", 3); err != nil {
		return c, err
	}
	durations := []struct {
		name string
		dst  *time.Duration
		def  time.Duration
	}{
		{"redisMinRetryInterval", &c.opts.MinRetryBackoff, 8 * time.Millisecond},
		{"redisMaxRetryInterval", &c.opts.MaxRetryBackoff, 512 * time.Millisecond},
		{"dialTimeout", &c.opts.DialTimeout, 5 * time.Second},
		{"readTimeout", &c.opts.ReadTimeout, 3 * time.Second},
		{"writeTimeout", &c.opts.WriteTimeout, 3 * time.Second},
		{"poolTimeout", &c.opts.PoolTimeout, 4 * time.Second},
	}
	for _, d := range durations {
		if *d.dst, err = md.Duration(d.name, d.def); err != nil {
			return c, err
		}
	}
	if c.opts.PoolSize, err = md.Int("poolSize", 0); err != nil {
		return c, err
	}
	if c.opts.MinIdleConns, err = md.Int("minIdleConns", 0); err != nil {
		return c, err
	}
	return c, nil
}
