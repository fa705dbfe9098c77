// Package redis is the lock.redis distributed lock: SET key owner NX EX
// to take a lock, and a script that deletes the key only for its owner to
// release it (Dapr's layout, so tandemd and daprd share locks).
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/lock"
)

// Type is the component's spec.type.
const Type = "lock.redis"

// unlockScript deletes KEYS[1] if ARGV[1] holds it: 1 deleted, -1 no such
// lock, -2 held by another owner.
var unlockScript = goredis.NewScript(`local v = redis.call("get", KEYS[1])
if v == false then return -1 end
if v ~= ARGV[1] then return -2 end
return redis.call("del", KEYS[1])`)

// config is the component's metadata, with Dapr's names and defaults.
type config struct {
	Host      string        // redisHost
	Username  string        // redisUsername
	Password  string        // redisPassword
	DB        int           // redisDB
	EnableTLS bool          // enableTLS
	Timeout   time.Duration // dialTimeout
}

func parseConfig(md components.Metadata) (config, error) {
	c := config{Host: md.String("redisHost", ""), Username: md.String("redisUsername", ""), Password: md.String("redisPassword", "")}
	if c.Host == "" {
		return c, fmt.Errorf("component %q: metadata %q is required, e.g. localhost:6379", md.Name, "redisHost")
	}
	var err error
	if c.DB, err = md.Int("redisDB", 0); err != nil {
		return c, err
	}
	if c.DB < 0 {
		return c, fmt.Errorf("component %q: metadata %q must not be negative", md.Name, "redisDB")
	}
	if c.EnableTLS, err = md.Bool("enableTLS", false); err != nil {
		return c, err
	}
	if c.Timeout, err = md.Duration("dialTimeout", 5*time.Second); err != nil {
		return c, err
	}
	if c.Timeout <= 0 {
		return c, fmt.Errorf("component %q: metadata %q must be positive", md.Name, "dialTimeout")
	}
	if strings.EqualFold(md.String("redisType", "node"), "cluster") || md.String("failover", "") == "true" {
		return c, fmt.Errorf("component %q: lock.redis needs a single Redis node (redisType cluster and failover are not supported, as in Dapr)", md.Name)
	}
	if !strings.Contains(c.Host, ":") {
		c.Host += ":6379"
	}
	return c, nil
}

// Store is a Redis lock store.
type Store struct {
	mu     sync.RWMutex
	client *goredis.Client
}

// New returns an uninitialised store.
func New() *Store { return &Store{} }

// Init connects to the server.
func (s *Store) Init(ctx context.Context, md components.Metadata) error {
	c, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err)
	}
	opts := &goredis.Options{Addr: c.Host, Username: c.Username, Password: c.Password, DB: c.DB, DialTimeout: c.Timeout}
	if c.EnableTLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	client := goredis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		_ = client.Close()
		return fmt.Errorf("component %q: connect to redis at %s: %w (is the server up and redisHost right?)", md.Name, c.Host, err)
	}
	s.mu.Lock()
	s.client = client
	s.mu.Unlock()
	return nil
}

func (s *Store) get() (*goredis.Client, func(), error) {
	s.mu.RLock()
	if s.client == nil {
		s.mu.RUnlock()
		return nil, nil, errors.New("lock store is not initialised or closed")
	}
	return s.client, s.mu.RUnlock, nil
}

// TryLock sets key to owner if it is not set, expiring after expiry
// seconds.
func (s *Store) TryLock(ctx context.Context, key, owner string, expiry int32) (bool, error) {
	c, done, err := s.get()
	if err != nil {
		return false, err
	}
	defer done()
	ok, err := c.SetNX(ctx, key, owner, time.Duration(expiry)*time.Second).Result()
	if err != nil {
		return false, fmt.Errorf("redis: %w", err)
	}
	return ok, nil
}

// Unlock deletes key if owner holds it.
func (s *Store) Unlock(ctx context.Context, key, owner string) (lock.UnlockStatus, error) {
	c, done, err := s.get()
	if err != nil {
		return lock.InternalError, err
	}
	defer done()
	n, err := unlockScript.Run(ctx, c, []string{key}, owner).Int()
	switch {
	case err != nil:
		return lock.InternalError, fmt.Errorf("redis: %w", err)
	case n == -2:
		return lock.LockBelongsToOther, nil
	case n >= 1:
		return lock.Success, nil
	}
	return lock.LockDoesNotExist, nil
}

// Close closes the connection pool; it may be called more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		return nil
	}
	err := s.client.Close()
	s.client = nil
	return err
}
