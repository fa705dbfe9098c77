// Package redisconn reads Dapr's Redis connection metadata (redisHost,
// redisUsername, redisPassword, redisDB, enableTLS, dialTimeout) and
// connects: the part every single-node Redis backend shares, whatever its
// kind.
package redisconn

import (
	"context"
	"crypto/tls"
	"fmt"
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

// Config is the connection part of a component's metadata, with Dapr's
// names and defaults.
type Config struct {
	Host      string        // redisHost (":6379" added when it has no port)
	Username  string        // redisUsername
	Password  string        // redisPassword
	DB        int           // redisDB
	EnableTLS bool          // enableTLS
	Timeout   time.Duration // dialTimeout (connect and ping at Init)
}

// Parse reads and checks the connection settings of the component name.
func Parse(name string, md Metadata) (Config, error) {
	c := Config{Host: md.String("redisHost", ""), Username: md.String("redisUsername", ""), Password: md.String("redisPassword", "")}
	if c.Host == "" {
		return c, fmt.Errorf("component %q: metadata %q is required, e.g. localhost:6379", name, "redisHost")
	}
	var err error
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
	if !strings.Contains(c.Host, ":") {
		c.Host += ":6379"
	}
	return c, nil
}

// Connect opens a client and pings the server within Timeout; the client
// is closed again when the ping fails.
func (c Config) Connect(ctx context.Context, name string) (*goredis.Client, error) {
	opts := &goredis.Options{Addr: c.Host, Username: c.Username, Password: c.Password, DB: c.DB, DialTimeout: c.Timeout}
	if c.EnableTLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	client := goredis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("component %q: connect to redis at %s: %w (is the server up and redisHost right?)", name, c.Host, err)
	}
	return client, nil
}
