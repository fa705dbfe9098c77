package redis

import (
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/redisconn"
)

type config struct {
	conn redisconn.Config
	opts *goredis.UniversalOptions
	// defaultTTL is the component's ttlInSeconds, applied to writes without
	// their own; 0 means none.
	defaultTTL int
}

// parseConfig reads Dapr's state.redis metadata. Supported: redisHost,
// redisUsername, redisPassword, redisDB, enableTLS, the topology (redisType
// "cluster"; failover, sentinelMasterName, sentinelUsername,
// sentinelPassword: see internal/redisconn), insecureSkipTLSVerify (or
// insecureSkipVerify),
// ttlInSeconds, redisMaxRetries, redisMinRetryInterval,
// redisMaxRetryInterval, dialTimeout, readTimeout, writeTimeout, poolSize,
// minIdleConns, poolTimeout.
func parseConfig(md components.Metadata) (config, error) {
	var c config
	var err error
	if c.conn, err = redisconn.Parse(md.Name, md); err != nil {
		return c, err
	}
	c.opts = c.conn.Options()
	// Lua and pipelines behave the same on RESP2; it works on every Redis
	// version Dapr supports.
	c.opts.Protocol = 2
	c.opts.DisableIdentity = true
	if c.opts.TLSConfig != nil {
		// Dapr's name, or the one this store read first.
		skip, err := md.Bool("insecureSkipTLSVerify", false)
		if err != nil {
			return c, err
		}
		if !skip {
			if skip, err = md.Bool("insecureSkipVerify", false); err != nil {
				return c, err
			}
		}
		c.opts.TLSConfig.InsecureSkipVerify = skip //nolint:gosec // opt-in, as in Dapr
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
