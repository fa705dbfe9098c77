// Package postgresql is the configuration.postgresql store, in Dapr's
// layout: a table (metadata table) with columns key, value, version and
// metadata (json); when a key has several rows the highest numeric
// version wins. Subscriptions LISTEN on a channel (metadata notifyChannel,
// or the request's pgNotifyChannel) that a trigger of the user's notifies
// with {"data": <the changed row>}, as Dapr documents.
package postgresql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/configuration"
)

// Type is the component's spec.type.
const Type = "configuration.postgresql"

const maxIdentifierLength = 64

var (
	allowedKey        = regexp.MustCompile(`^[a-zA-Z0-9./_]*$`)
	allowedIdentifier = regexp.MustCompile(`^[a-z0-9./_]*$`)
)

// config is the component's metadata, with Dapr's names and defaults.
type config struct {
	ConnectionString string        // connectionString
	Table            string        // table
	NotifyChannel    string        // notifyChannel (alias pgNotifyChannel)
	Timeout          time.Duration // timeout (alias timeoutInSeconds), default 20s
}

func identifier(md components.Metadata, prop, v string) error {
	if len(v) > maxIdentifierLength {
		return fmt.Errorf("component %q: metadata %q: %q is longer than %d characters", md.Name, prop, v, maxIdentifierLength)
	}
	if !allowedIdentifier.MatchString(v) {
		return fmt.Errorf("component %q: metadata %q: %q may hold only lower-case letters, digits, '.', '/' and '_'", md.Name, prop, v)
	}
	return nil
}

func parseConfig(md components.Metadata) (config, error) {
	c := config{
		ConnectionString: md.String("connectionString", ""),
		Table:            md.String("table", ""),
		NotifyChannel:    md.String("notifyChannel", md.String("pgNotifyChannel", "")),
	}
	if c.ConnectionString == "" {
		return c, fmt.Errorf("component %q: metadata %q is required, e.g. \"host=localhost user=postgres dbname=dapr\"", md.Name, "connectionString")
	}
	if c.Table == "" {
		return c, fmt.Errorf("component %q: metadata %q is required: the table with columns key, value, version, metadata", md.Name, "table")
	}
	if err := identifier(md, "table", c.Table); err != nil {
		return c, err
	}
	if c.NotifyChannel != "" {
		if err := identifier(md, "notifyChannel", c.NotifyChannel); err != nil {
			return c, err
		}
	}
	name := "timeout"
	if _, ok := md.Get(name); !ok {
		name = "timeoutInSeconds"
	}
	var err error
	if c.Timeout, err = md.Duration(name, 20*time.Second); err != nil {
		return c, err
	}
	if c.Timeout <= 0 {
		return c, fmt.Errorf("component %q: metadata %q must be positive", md.Name, name)
	}
	if _, err := pgxpool.ParseConfig(c.ConnectionString); err != nil {
		return c, fmt.Errorf("component %q: metadata %q is malformed", md.Name, "connectionString")
	}
	return c, nil
}

// Store is a PostgreSQL configuration store.
type Store struct {
	log  *slog.Logger
	name string
	cfg  config

	mu   sync.RWMutex
	db   *pgxpool.Pool
	wg   sync.WaitGroup
	stop chan struct{}
}

// New returns an uninitialised store; log may be nil.
func New(log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{log: log, stop: make(chan struct{})}
}

// Init connects and checks that the table exists.
func (s *Store) Init(ctx context.Context, md components.Metadata) error {
	c, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err)
	}
	pcfg, _ := pgxpool.ParseConfig(c.ConnectionString)
	cctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	db, err := pgxpool.NewWithConfig(cctx, pcfg)
	if err != nil {
		return fmt.Errorf("component %q: connect to postgresql: %w", md.Name, err)
	}
	if err := db.Ping(cctx); err != nil {
		db.Close()
		return fmt.Errorf("component %q: connect to postgresql at %s:%d: %w (is the server up and the connectionString right?)", md.Name, pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, err)
	}
	var exists bool
	if err := db.QueryRow(cctx, "SELECT EXISTS (SELECT FROM pg_tables WHERE tablename = $1)", c.Table).Scan(&exists); err != nil {
		db.Close()
		return fmt.Errorf("component %q: check table %q: %w", md.Name, c.Table, err)
	}
	if !exists {
		db.Close()
		return fmt.Errorf("component %q: table %q does not exist: create it with columns key, value, version and metadata (json)", md.Name, c.Table)
	}
	s.mu.Lock()
	s.db, s.cfg, s.name = db, c, md.Name
	s.mu.Unlock()
	return nil
}

func (s *Store) pool() (*pgxpool.Pool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, errors.New("configuration store is not initialised or closed")
	}
	return s.db, nil
}

func numericVersion(v string) int {
	n, err := strconv.Atoi(v)
	if err != nil {
		return -1
	}
	return n
}

// Get reads keys (every item when empty); the highest numeric version of
// a key wins.
func (s *Store) Get(ctx context.Context, keys []string, _ map[string]string) (map[string]*configuration.Item, error) {
	db, err := s.pool()
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if !allowedKey.MatchString(k) {
			return nil, fmt.Errorf("invalid key : '%v'", k)
		}
	}
	q := "SELECT key, value, version, metadata FROM " + s.cfg.Table
	var args []any
	if len(keys) > 0 {
		q += " WHERE key = ANY($1)"
		args = append(args, keys)
	}
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("error in querying configuration store: %w", err)
	}
	defer rows.Close()
	items := map[string]*configuration.Item{}
	best := map[string]int{}
	for rows.Next() {
		var key string
		var value, version *string
		var meta map[string]string
		if err := rows.Scan(&key, &value, &version, &meta); err != nil {
			return nil, fmt.Errorf("error in reading data from configuration store: %w", err)
		}
		it := &configuration.Item{Metadata: meta}
		if value != nil {
			it.Value = *value
		}
		if version != nil {
			it.Version = *version
		}
		if old, ok := items[key]; ok && old != nil && numericVersion(it.Version) <= best[key] {
			continue
		}
		items[key], best[key] = it, numericVersion(it.Version)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("error in querying configuration store: %w", err)
	}
	return items, nil
}

// Subscribe LISTENs on the notify channel and delivers the changed rows of
// keys (every key when empty).
func (s *Store) Subscribe(ctx context.Context, keys []string, md map[string]string, h configuration.Handler) error {
	db, err := s.pool()
	if err != nil {
		return err
	}
	channel := s.cfg.NotifyChannel
	if channel == "" {
		for k, v := range md {
			if strings.EqualFold(k, "pgNotifyChannel") {
				channel = v
			}
		}
	}
	if channel == "" {
		return fmt.Errorf("unable to subscribe to %q. notifyChannel must be set in component metadata or request metadata", s.cfg.Table)
	}
	if len(channel) > maxIdentifierLength || !allowedIdentifier.MatchString(channel) {
		return fmt.Errorf("invalid notifyChannel name %q. non-alphanumerics or upper cased names are not supported", channel)
	}
	conn, err := db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("error acquiring connection: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		conn.Release()
		return fmt.Errorf("error listening to channel: %w", err)
	}
	listenCtx, cancel := context.WithCancel(ctx)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		select {
		case <-listenCtx.Done():
		case <-s.stop:
			cancel()
		}
	}()
	go func() {
		defer s.wg.Done()
		defer cancel()
		// The connection leaves the pool: it is LISTENing.
		defer func() { _ = conn.Hijack().Close(context.Background()) }()
		for {
			n, err := conn.Conn().WaitForNotification(listenCtx)
			if err != nil {
				if listenCtx.Err() == nil {
					s.log.Error("configuration subscription ended: waiting for notifications failed", "component", s.name, "channel", channel, "error", err)
				}
				return
			}
			key, it, ok := parsePayload(n.Payload)
			if !ok {
				s.log.Info("unknown format of data received in notify event", "component", s.name, "payload", n.Payload)
				continue
			}
			if len(keys) > 0 && !slices.Contains(keys, key) {
				continue
			}
			if err := h(listenCtx, map[string]*configuration.Item{key: it}); err != nil && listenCtx.Err() == nil {
				s.log.Error("configuration change not delivered", "component", s.name, "key", key, "error", err)
			}
		}
	}()
	return nil
}

// parsePayload reads a notification {"data": {"key","value","version",
// "metadata"}} (column names in any case).
func parsePayload(payload string) (string, *configuration.Item, bool) {
	var p struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(payload), &p); err != nil || p.Data == nil {
		return "", nil, false
	}
	it := &configuration.Item{Metadata: map[string]string{}}
	var key string
	for k, v := range p.Data {
		switch strings.ToLower(k) {
		case "key":
			key, _ = v.(string)
		case "value":
			it.Value, _ = v.(string)
		case "version":
			it.Version, _ = v.(string)
		case "metadata":
			if m, ok := v.(map[string]any); ok {
				for mk, mv := range m {
					if s, ok := mv.(string); ok {
						it.Metadata[mk] = s
					}
				}
			}
		}
	}
	return key, it, key != ""
}

// Close stops the subscriptions and closes the pool; it may be called more
// than once.
func (s *Store) Close() error {
	s.mu.Lock()
	db := s.db
	s.db = nil
	if db != nil {
		close(s.stop)
	}
	s.mu.Unlock()
	s.wg.Wait()
	if db != nil {
		db.Close()
	}
	return nil
}
