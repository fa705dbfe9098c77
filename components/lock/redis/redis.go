// Package redis is the lock.redis distributed lock: SET key owner NX EX
// to take a lock, and a script that deletes the key only for its owner to
// release it (Dapr's layout, so tandemd and daprd share locks).
//
// It connects to one Redis node, or to the master Sentinel names (failover
// "true", sentinelMasterName); a failover may lose locks taken just before
// it, since replication is asynchronous. Redis Cluster is refused, as in
// Dapr.
package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/lock"
	"github.com/tandemrun/tandem/internal/redisconn"
)

// Type is the component's spec.type.
const Type = "lock.redis"

// unlockScript deletes KEYS[1] if ARGV[1] holds it: 1 deleted, -1 no such
// lock, -2 held by another owner.
var unlockScript = goredis.NewScript(`local v = redis.call("get", KEYS[1])
if v == false then return -1 end
if v ~= ARGV[1] then return -2 end
return redis.call("del", KEYS[1])`)

// config is the component's connection metadata, with Dapr's names and
// defaults.
type config = redisconn.Config

func parseConfig(md components.Metadata) (config, error) {
	c, err := redisconn.Parse(md.Name, md)
	if err != nil {
		return c, err
	}
	if c.Cluster() {
		return c, fmt.Errorf("component %q: lock.redis does not support Redis Cluster (as in Dapr): point redisHost at a single node and remove redisType \"cluster\", or use Sentinel (failover \"true\", sentinelMasterName)", md.Name)
	}
	return c, nil
}

// Store is a Redis lock store.
type Store struct {
	mu     sync.RWMutex
	client goredis.UniversalClient
}

// New returns an uninitialised store.
func New() *Store { return &Store{} }

// Init connects to the server.
func (s *Store) Init(ctx context.Context, md components.Metadata) error {
	c, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err)
	}
	client, err := c.Connect(ctx, md.Name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.client = client
	s.mu.Unlock()
	return nil
}

func (s *Store) get() (goredis.UniversalClient, func(), error) {
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
