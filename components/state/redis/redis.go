// Package redis is the state.redis store on github.com/redis/go-redis/v9,
// with ETags, TTLs and atomic transactions.
//
// It keeps Dapr's layout, so Dapr and Tandem read each other's keys: each key
// is a HASH with field "data" (the value's bytes: JSON text, or the raw bytes
// of a binary value) and field "version" (an integer incremented on every
// write, which is the ETag); TTLs are Redis expirations (EXPIRE / PERSIST).
// Single writes are Lua scripts that check the ETag and write atomically.
//
// Differences from Dapr's component, on purpose: an ETag given with
// concurrency last-write is checked (Dapr's Redis ignores it, unlike its
// other stores); first-write without an ETag fails on any existing key
// (Dapr's Redis decides by a "first-write" hash field, which we neither
// write nor need); transactions are atomic with WATCH/MULTI/EXEC (Dapr's
// MULTI of scripts applies the operations before a failing one). The query
// API is not offered: Dapr's needs the RediSearch module and JSON documents.
//
// It connects to one node, a Redis Cluster (redisType "cluster") or the
// master Sentinel names (failover "true", sentinelMasterName). On a cluster
// single-key operations work on any key, but a transaction must keep all
// its keys in one hash slot, since WATCH/MULTI/EXEC cannot span masters:
// give the keys a common hash tag ("order-{42}-items", "order-{42}-total";
// the app-ID prefix has no braces, so the tag is the user's). A transaction
// over several slots fails with state.ErrNotSupported and says so (Dapr's
// component instead splits it per slot and applies it non-atomically).
// Actor state keys ("app||type||id||key") carry no tag, so an actor's
// multi-key transactions need a node or Sentinel.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/internal/redisconn"
)

// Type is the component type this store registers as.
const Type = "state.redis"

// mismatch is the error text the scripts return on an ETag failure.
const mismatch = "TANDEM_ETAG_MISMATCH"

// setScript: KEYS[1] key; ARGV[1] etag ("" = none); ARGV[2] data;
// ARGV[3] "1" for first-write; ARGV[4] TTL seconds (<= 0: persist).
// A key of another type (a plain string from very old Dapr versions) is
// replaced, as Dapr does.
var setScript = goredis.NewScript(`
local ver = redis.pcall("HGET", KEYS[1], "version")
if type(ver) == "table" then
  redis.call("DEL", KEYS[1])
  ver = false
end
if ARGV[1] ~= "" then
  if not ver or ver ~= ARGV[1] then
    return redis.error_reply("` + mismatch + `")
  end
elseif ARGV[3] == "1" and ver then
  return redis.error_reply("` + mismatch + `")
end
redis.call("HSET", KEYS[1], "data", ARGV[2])
local v = redis.call("HINCRBY", KEYS[1], "version", 1)
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call("EXPIRE", KEYS[1], ttl)
else
  redis.call("PERSIST", KEYS[1])
end
return v`)

// delScript: KEYS[1] key; ARGV[1] etag ("" = none).
var delScript = goredis.NewScript(`
if ARGV[1] ~= "" then
  local ver = redis.pcall("HGET", KEYS[1], "version")
  if type(ver) == "table" or not ver or ver ~= ARGV[1] then
    return redis.error_reply("` + mismatch + `")
  end
end
return redis.call("DEL", KEYS[1])`)

// getScript returns {data, version, ttl} in one round trip.
var getScript = goredis.NewScript(`
local r = redis.call("HMGET", KEYS[1], "data", "version")
if not r[1] then
  return false
end
return {r[1], r[2] or "", redis.call("TTL", KEYS[1])}`)

// Store is the Redis state store.
type Store struct {
	log    *slog.Logger
	cfg    config
	client goredis.UniversalClient
	now    func() time.Time
}

var (
	_ state.Store         = (*Store)(nil)
	_ state.Transactional = (*Store)(nil)
)

// New returns a store that logs to log (nil: discard).
func New(log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{log: log, now: time.Now}
}

// NewStore is New as a state.Store, for registries.
func NewStore(log *slog.Logger) state.Store { return New(log) }

// Init connects and pings Redis.
func (s *Store) Init(ctx context.Context, md components.Metadata) error {
	cfg, err := parseConfig(md)
	if err != nil {
		return err
	}
	client, err := cfg.conn.ConnectWith(ctx, md.Name, cfg.opts)
	if err != nil {
		return err
	}
	s.cfg, s.client = cfg, client
	s.log.Debug("redis state store ready", "component", md.Name, "server", cfg.conn.Describe(), "db", cfg.opts.DB)
	return nil
}

// Features: ETags, transactions and TTL.
func (s *Store) Features() []state.Feature {
	return []state.Feature{state.FeatureETag, state.FeatureTransactional, state.FeatureTTL}
}

// Close closes the connection pool.
func (s *Store) Close() error {
	if s.client == nil {
		return nil
	}
	err := s.client.Close()
	s.client = nil
	return err
}

// Get returns a value or nil.
func (s *Store) Get(ctx context.Context, req *state.GetRequest) (*state.GetResponse, error) {
	if req.Key == "" {
		return nil, errors.New("get: missing key")
	}
	res, err := getScript.Run(ctx, s.client, []string{req.Key}).Slice()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		if strings.Contains(err.Error(), "WRONGTYPE") {
			return s.plainGet(ctx, req.Key)
		}
		return nil, fmt.Errorf("get %q: %w", req.Key, err)
	}
	if len(res) != 3 {
		return nil, fmt.Errorf("get %q: unexpected reply %v", req.Key, res)
	}
	data, _ := res[0].(string)
	ver, _ := res[1].(string)
	resp := &state.GetResponse{Data: []byte(data)}
	if ver != "" {
		resp.ETag = &ver
	}
	if ttl, ok := res[2].(int64); ok && ttl > 0 {
		resp.Metadata = state.ExpireTimeMetadata(s.now().Add(time.Duration(ttl) * time.Second))
	}
	return resp, nil
}

// plainGet reads a key stored as a plain string, which Dapr also accepts.
func (s *Store) plainGet(ctx context.Context, key string) (*state.GetResponse, error) {
	v, err := s.client.Get(ctx, key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", key, err)
	}
	return &state.GetResponse{Data: v}, nil
}

// write is a validated set: etag "" when none, ttl in seconds.
type write struct {
	key, etag  string
	data       []byte
	firstWrite bool
	ttl        int
}

func (s *Store) prepare(req *state.SetRequest) (write, error) {
	if req.Key == "" {
		return write{}, errors.New("set: missing key")
	}
	if err := req.Options.Validate(); err != nil {
		return write{}, fmt.Errorf("set %q: %w", req.Key, err)
	}
	w := write{key: req.Key, data: req.Value, firstWrite: req.Options.Concurrency == state.FirstWrite, ttl: s.cfg.defaultTTL}
	ttl, ok, err := state.TTLSeconds(req.Metadata)
	if err != nil {
		return write{}, fmt.Errorf("set %q: %w", req.Key, err)
	}
	if ok {
		w.ttl = ttl
	}
	if state.HasETag(req.ETag) {
		if _, err := strconv.ParseInt(*req.ETag, 10, 64); err != nil {
			return write{}, fmt.Errorf("set %q: etag %q: %w", req.Key, *req.ETag, state.ErrETagInvalid)
		}
		w.etag = *req.ETag
	}
	return w, nil
}

// Set writes one key with the set script.
func (s *Store) Set(ctx context.Context, req *state.SetRequest) error {
	w, err := s.prepare(req)
	if err != nil {
		return err
	}
	fw := "0"
	if w.firstWrite {
		fw = "1"
	}
	err = setScript.Run(ctx, s.client, []string{w.key}, w.etag, w.data, fw, w.ttl).Err()
	return scriptErr("set", w.key, err)
}

// Delete removes one key with the delete script.
func (s *Store) Delete(ctx context.Context, req *state.DeleteRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	etag := ""
	if state.HasETag(req.ETag) {
		etag = *req.ETag
	}
	return scriptErr("delete", req.Key, delScript.Run(ctx, s.client, []string{req.Key}, etag).Err())
}

func scriptErr(op, key string, err error) error {
	switch {
	case err == nil:
		return nil
	case strings.Contains(err.Error(), mismatch):
		return fmt.Errorf("%s %q: %w", op, key, state.ErrETagMismatch)
	}
	return fmt.Errorf("%s %q: %w", op, key, err)
}

// maxTxAttempts bounds retries when a watched key changes under a
// transaction.
const maxTxAttempts = 20

// Multi applies a transaction atomically: it WATCHes the keys, checks every
// ETag against the current versions, then writes everything in MULTI/EXEC;
// if another client changed a key in between, EXEC fails and it starts over.
func (s *Store) Multi(ctx context.Context, req *state.TransactionRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	writes := make([]write, len(req.Operations))
	keys := make([]string, 0, len(req.Operations))
	seen := map[string]bool{}
	for i, op := range req.Operations {
		if op.Upsert != nil {
			w, err := s.prepare(op.Upsert)
			if err != nil {
				return err
			}
			writes[i] = w
		} else {
			writes[i] = write{key: op.Delete.Key}
			if state.HasETag(op.Delete.ETag) {
				writes[i].etag = *op.Delete.ETag
			}
		}
		if !seen[op.Key()] {
			seen[op.Key()] = true
			keys = append(keys, op.Key())
		}
	}
	if s.cfg.conn.Cluster() {
		if err := redisconn.SameSlot(keys); err != nil {
			return fmt.Errorf("transaction: %w (%w)", err, state.ErrNotSupported)
		}
	}
	for attempt := 0; attempt < maxTxAttempts; attempt++ {
		err := s.client.Watch(ctx, func(tx *goredis.Tx) error {
			return s.multiOnce(ctx, tx, req.Operations, writes, keys)
		}, keys...)
		if !errors.Is(err, goredis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("transaction: keys kept changing under it after %d attempts; retry later", maxTxAttempts)
}

func (s *Store) multiOnce(ctx context.Context, tx *goredis.Tx, ops []state.Operation, writes []write, keys []string) error {
	// Current versions ("" = missing), updated as the operations are
	// simulated so later operations see earlier ones.
	versions := make(map[string]string, len(keys))
	wrongType := map[string]bool{}
	for _, k := range keys {
		v, err := tx.HGet(ctx, k, "version").Result()
		switch {
		case errors.Is(err, goredis.Nil):
			v = ""
		case err != nil && strings.Contains(err.Error(), "WRONGTYPE"):
			// Replaced by the write, as the set script does.
			v, wrongType[k] = "", true
		case err != nil:
			return fmt.Errorf("transaction: read %q: %w", k, err)
		}
		versions[k] = v
	}
	for i, op := range ops {
		w := writes[i]
		cur := versions[w.key]
		if w.etag != "" && cur != w.etag {
			return fmt.Errorf("transaction: %s %q: %w", opName(op), w.key, state.ErrETagMismatch)
		}
		if op.Upsert != nil && w.etag == "" && w.firstWrite && cur != "" {
			return fmt.Errorf("transaction: set %q: key exists and first-write was asked without an etag: %w", w.key, state.ErrETagMismatch)
		}
		if op.Upsert != nil {
			n, _ := strconv.ParseInt(cur, 10, 64)
			versions[w.key] = strconv.FormatInt(n+1, 10)
		} else {
			versions[w.key] = ""
		}
	}
	_, err := tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for i, op := range ops {
			w := writes[i]
			if op.Delete != nil {
				p.Del(ctx, w.key)
				continue
			}
			if wrongType[w.key] {
				p.Del(ctx, w.key)
				wrongType[w.key] = false
			}
			p.HSet(ctx, w.key, "data", w.data)
			p.HIncrBy(ctx, w.key, "version", 1)
			if w.ttl > 0 {
				p.Expire(ctx, w.key, time.Duration(w.ttl)*time.Second)
			} else {
				p.Persist(ctx, w.key)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.TxFailedErr) {
		return fmt.Errorf("transaction: %w", err)
	}
	return err
}

func opName(op state.Operation) string {
	if op.Upsert != nil {
		return "set"
	}
	return "delete"
}
