// Package redis is the configuration.redis store: each item is a Redis
// string key holding "value" or "value||version" (Dapr's layout), and
// changes are followed through Redis keyspace notifications, which the
// server must publish (notify-keyspace-events with at least K, g and $,
// e.g. "KEA"; Init turns them on when the server allows CONFIG SET).
//
// On a Redis Cluster (redisType "cluster") each master publishes the
// notifications of its own keys only, so Init configures every master and
// Subscribe listens on every master, and reading all keys scans every
// master; masters added or promoted after Subscribe are not followed
// (subscribe again). With Sentinel (failover "true") the subscription moves
// to the new master after a failover, but CONFIG SET is not replicated:
// set notify-keyspace-events in every server's redis.conf.
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
	client goredis.UniversalClient
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
	_ = redisconn.EachMaster(pctx, client, func(ctx context.Context, m *goredis.Client) error {
		if ev, err := m.ConfigGet(ctx, "notify-keyspace-events").Result(); err == nil && !notifies(ev["notify-keyspace-events"]) {
			if err := m.ConfigSet(ctx, "notify-keyspace-events", "KEA").Err(); err != nil {
				s.log.Warn("Redis does not publish keyspace notifications and refused CONFIG SET; subscriptions will see no changes until notify-keyspace-events is set to KEA", "component", md.Name, "server", m.Options().Addr, "error", err)
			}
		}
		return nil
	})
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

func (s *Store) get() (goredis.UniversalClient, error) {
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
		if keys, err = allKeys(ctx, c); err != nil {
			return nil, err
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

// allKeys scans every master (a cluster's masters each hold some keys).
func allKeys(ctx context.Context, c goredis.UniversalClient) ([]string, error) {
	var mu sync.Mutex // EachMaster calls concurrently
	var keys []string
	err := redisconn.EachMaster(ctx, c, func(ctx context.Context, m *goredis.Client) error {
		var found []string
		iter := m.Scan(ctx, 0, "*", 1000).Iterator()
		for iter.Next(ctx) {
			found = append(found, iter.Val())
		}
		if err := iter.Err(); err != nil {
			return fmt.Errorf("redis: list keys on %s: %w", m.Options().Addr, err)
		}
		mu.Lock()
		keys = append(keys, found...)
		mu.Unlock()
		return nil
	})
	return keys, err
}

// Subscribe follows keys (every key when empty) through keyspace
// notifications.
func (s *Store) Subscribe(ctx context.Context, keys []string, md map[string]string, h configuration.Handler) error {
	c, err := s.get()
	if err != nil {
		return err
	}
	prefix := "__keyspace@" + strconv.Itoa(s.cfg.DB) + "__:"
	channels := make([]string, len(keys))
	for i, k := range keys {
		channels[i] = prefix + k
	}
	// One subscription per master: each publishes only its own keys' events.
	var mu sync.Mutex
	var subs []*goredis.PubSub
	err = redisconn.EachMaster(ctx, c, func(ctx context.Context, m *goredis.Client) error {
		var ps *goredis.PubSub
		if len(keys) == 0 {
			ps = m.PSubscribe(ctx, prefix+"*")
		} else {
			ps = m.Subscribe(ctx, channels...)
		}
		mu.Lock()
		subs = append(subs, ps)
		mu.Unlock()
		if _, err := ps.Receive(ctx); err != nil {
			return fmt.Errorf("redis: subscribe to keyspace notifications on %s: %w", m.Options().Addr, err)
		}
		return nil
	})
	if err != nil {
		for _, ps := range subs {
			_ = ps.Close()
		}
		return err
	}
	msgs := make(chan *goredis.Message)
	for _, ps := range subs {
		s.wg.Go(func() {
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
					select {
					case msgs <- m:
					case <-ctx.Done():
						return
					case <-s.stop:
						return
					}
				}
			}
		})
	}
	// One goroutine calls the handler, so changes arrive one at a time.
	s.wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.stop:
				return
			case m := <-msgs:
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
	})
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
