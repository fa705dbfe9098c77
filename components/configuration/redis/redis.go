// Package redis is the configuration.redis store: each item is a Redis
// string key holding "value" or "value||version" (Dapr's layout), and
// changes are followed through Redis keyspace notifications, which the
// server must publish (notify-keyspace-events with at least K, g and $,
// e.g. "KEA"; Init turns them on when the server allows CONFIG SET).
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/configuration"
	"github.com/tandemrun/tandem/internal/redisconn"
)

// Type is the component's spec.type.
const Type = "configuration.redis"

const separator = "||"

// config is the component's connection metadata, with Dapr's names and
// defaults.
type config = redisconn.Config

func parseConfig(md components.Metadata) (config, error) {
	return redisconn.Parse(md.Name, md)
}

// Store is a Redis configuration store.
type Store struct {
	log  *slog.Logger
	name string
	cfg  config

	mu     sync.RWMutex
	client *goredis.Client
	wg     sync.WaitGroup
	stop   chan struct{}
}

// New returns an uninitialised store; log may be nil.
func New(log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{log: log, stop: make(chan struct{})}
}

// Init connects and makes sure keyspace notifications are on.
func (s *Store) Init(ctx context.Context, md components.Metadata) error {
	c, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err)
	}
	client, err := c.Connect(ctx, md.Name)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if ev, err := client.ConfigGet(pctx, "notify-keyspace-events").Result(); err == nil && !notifies(ev["notify-keyspace-events"]) {
		if err := client.ConfigSet(pctx, "notify-keyspace-events", "KEA").Err(); err != nil {
			s.log.Warn("Redis does not publish keyspace notifications and refused CONFIG SET; subscriptions will see no changes until notify-keyspace-events is set to KEA", "component", md.Name, "error", err)
		}
	}
	s.mu.Lock()
	s.client, s.cfg, s.name = client, c, md.Name
	s.mu.Unlock()
	return nil
}

// notifies reports whether a notify-keyspace-events value publishes the
// keyspace events of string sets and deletions.
func notifies(v string) bool {
	if !strings.Contains(v, "K") {
		return false
	}
	return strings.Contains(v, "A") || strings.Contains(v, "$") && strings.Contains(v, "g")
}

func (s *Store) get() (*goredis.Client, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.client == nil {
		return nil, errors.New("configuration store is not initialised or closed")
	}
	return s.client, nil
}

// split reads Dapr's "value||version" layout.
func split(raw string) *configuration.Item {
	v, ver, _ := strings.Cut(raw, separator)
	if i := strings.Index(ver, separator); i >= 0 {
		ver = ver[:i]
	}
	return &configuration.Item{Value: v, Version: ver, Metadata: map[string]string{}}
}

// Get reads keys (every key when empty); keys that are missing or not
// strings are left out, as in Dapr.
func (s *Store) Get(ctx context.Context, keys []string, _ map[string]string) (map[string]*configuration.Item, error) {
	c, err := s.get()
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		iter := c.Scan(ctx, 0, "*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			return nil, fmt.Errorf("redis: list keys: %w", err)
		}
	}
	items := make(map[string]*configuration.Item, len(keys))
	for _, k := range keys {
		raw, err := c.Get(ctx, k).Result()
		switch {
		case errors.Is(err, goredis.Nil):
			continue
		case err != nil && strings.Contains(err.Error(), "WRONGTYPE"):
			continue
		case err != nil:
			return nil, fmt.Errorf("fail to get configuration for redis key=%s, error is %w", k, err)
		}
		if it := split(raw); it.Value != "" {
			items[k] = it
		}
	}
	return items, nil
}

// Subscribe follows keys (every key when empty) through keyspace
// notifications.
func (s *Store) Subscribe(ctx context.Context, keys []string, md map[string]string, h configuration.Handler) error {
	c, err := s.get()
	if err != nil {
		return err
	}
	prefix := "__keyspace@" + strconv.Itoa(s.cfg.DB) + "__:"
	var ps *goredis.PubSub
	if len(keys) == 0 {
		ps = c.PSubscribe(ctx, prefix+"*")
	} else {
		channels := make([]string, len(keys))
		for i, k := range keys {
			channels[i] = prefix + k
		}
		ps = c.Subscribe(ctx, channels...)
	}
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return fmt.Errorf("redis: subscribe to keyspace notifications: %w", err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer ps.Close()
		ch := ps.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.stop:
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				key := strings.TrimPrefix(m.Channel, prefix)
				items, err := s.Get(ctx, []string{key}, md)
				if err != nil {
					s.log.Error("configuration change not read", "component", s.name, "key", key, "error", err)
					continue
				}
				if len(items) == 0 {
					items = map[string]*configuration.Item{key: {}}
				}
				if err := h(ctx, items); err != nil && ctx.Err() == nil {
					s.log.Error("configuration change not delivered", "component", s.name, "key", key, "error", err)
				}
			}
		}
	}()
	return nil
}

// Close stops the subscriptions and closes the connection pool; it may be
// called more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	c := s.client
	s.client = nil
	if c != nil {
		close(s.stop)
	}
	s.mu.Unlock()
	s.wg.Wait()
	if c == nil {
		return nil
	}
	return c.Close()
}
