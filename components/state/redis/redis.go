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
// write nor need); a transaction is atomic, one script that checks every
// ETag before it writes (Dapr's MULTI of scripts applies the operations
// before a failing one). The query API is not offered: Dapr's needs the
// RediSearch module and JSON documents.
//
// It connects to one node, a Redis Cluster (redisType "cluster") or the
// master Sentinel names (failover "true", sentinelMasterName). On a cluster
// single-key operations work on any key, but a transaction must keep all
// its keys in one hash slot, since one script cannot span masters:
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
	// HMGET and TTL in one round trip, pipelined: no script for Redis to
	// run. A write between the two can only make the expiry the newer
	// write's.
	var fields *goredis.SliceCmd
	var ttl *goredis.DurationCmd
	_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		fields = p.HMGet(ctx, req.Key, "data", "version")
		ttl = p.TTL(ctx, req.Key)
		return nil
	})
	if err != nil {
		if strings.Contains(err.Error(), "WRONGTYPE") {
			return s.plainGet(ctx, req.Key)
		}
		return nil, fmt.Errorf("get %q: %w", req.Key, err)
	}
	res := fields.Val()
	if len(res) != 2 {
		return nil, fmt.Errorf("get %q: unexpected reply %v", req.Key, res)
	}
	data, ok := res[0].(string)
	if !ok {
		return nil, nil
	}
	ver, _ := res[1].(string)
	resp := &state.GetResponse{Data: []byte(data)}
	if ver != "" {
		resp.ETag = &ver
	}
	if d := ttl.Val(); d > 0 {
		resp.Metadata = state.ExpireTimeMetadata(s.now().Add(d))
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

// multiScript applies a transaction in one round trip, atomically (a
// script runs alone in Redis). KEYS are the transaction's keys, each once;
// ARGV holds six values per operation: "s" (upsert) or "d" (delete), the
// index of its key in KEYS (from 1), its etag ("" = none), "1" for
// first-write, the TTL in seconds (<= 0: persist) and the data. Every
// check runs before the first write, on the versions the earlier
// operations leave, so a failing one writes nothing: the reply is an
// error naming the operation's index (from 0), else the versions the
// keys end with ("" for deleted ones). A key of another type is replaced,
// as the set script does.
var multiScript = goredis.NewScript(`
local cur, replace = {}, {}
for i = 1, #KEYS do
  local v = redis.pcall("HGET", KEYS[i], "version")
  if type(v) == "table" then
    cur[i], replace[i] = false, true
  else
    cur[i] = v
  end
end
local n = #ARGV / 6
for j = 0, n - 1 do
  local b = j * 6
  local k, etag = tonumber(ARGV[b + 2]), ARGV[b + 3]
  local v = cur[k]
  if etag ~= "" and (not v or v ~= etag) then
    return redis.error_reply("` + mismatch + ` " .. j)
  end
  if ARGV[b + 1] == "s" then
    if etag == "" and ARGV[b + 4] == "1" and v then
      return redis.error_reply("` + firstWriteTaken + ` " .. j)
    end
    cur[k] = tostring((tonumber(v) or 0) + 1)
  else
    cur[k] = false
  end
end
for j = 0, n - 1 do
  local b = j * 6
  local k = tonumber(ARGV[b + 2])
  local key = KEYS[k]
  if ARGV[b + 1] == "d" or replace[k] then
    redis.call("DEL", key)
    replace[k] = nil
  end
  if ARGV[b + 1] == "s" then
    redis.call("HSET", key, "data", ARGV[b + 6])
    redis.call("HINCRBY", key, "version", 1)
    local ttl = tonumber(ARGV[b + 5])
    if ttl > 0 then
      redis.call("EXPIRE", key, ttl)
    else
      redis.call("PERSIST", key)
    end
  end
end
local out = {}
for i = 1, #KEYS do
  out[i] = cur[i] or ""
end
return out`)

// firstWriteTaken is the error text of the transaction script when a
// first-write upsert without an etag finds its key.
const firstWriteTaken = "TANDEM_FIRST_WRITE_TAKEN"

// Multi applies a transaction atomically, in one round trip: the multi
// script checks every ETag (and first-write) against the current
// versions, as the earlier operations leave them, and writes everything
// only if all pass.
func (s *Store) Multi(ctx context.Context, req *state.TransactionRequest) error {
	_, err := s.MultiETags(ctx, req)
	return err
}

var _ state.TransactionalETags = (*Store)(nil)

// MultiETags is Multi that returns the versions the keys end with (the
// script's answer).
func (s *Store) MultiETags(ctx context.Context, req *state.TransactionRequest) (map[string]string, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(req.Operations))
	index := make(map[string]int, len(req.Operations))
	args := make([]any, 0, 6*len(req.Operations))
	for _, op := range req.Operations {
		k := op.Key()
		i, ok := index[k]
		if !ok {
			keys = append(keys, k)
			i = len(keys)
			index[k] = i
		}
		if op.Upsert != nil {
			w, err := s.prepare(op.Upsert)
			if err != nil {
				return nil, err
			}
			fw := "0"
			if w.firstWrite {
				fw = "1"
			}
			args = append(args, "s", i, w.etag, fw, w.ttl, w.data)
			continue
		}
		etag := ""
		if state.HasETag(op.Delete.ETag) {
			etag = *op.Delete.ETag
		}
		args = append(args, "d", i, etag, "0", 0, "")
	}
	if s.cfg.conn.Cluster() {
		if err := redisconn.SameSlot(keys); err != nil {
			return nil, fmt.Errorf("transaction: %w (%w)", err, state.ErrNotSupported)
		}
	}
	res, err := multiScript.Run(ctx, s.client, keys, args...).StringSlice()
	if err == nil {
		if len(res) != len(keys) {
			return nil, fmt.Errorf("transaction: unexpected reply %v", res)
		}
		tags := make(map[string]string, len(keys))
		for i, v := range res {
			if v != "" {
				tags[keys[i]] = v
			}
		}
		return tags, nil
	}
	return nil, multiErr(req.Operations, err)
}

// multiErr is the error of a failed multi script: an ETag or first-write
// failure names the operation the script reported ("<reason> <index>").
func multiErr(ops []state.Operation, err error) error {
	msg := err.Error()
	for _, reason := range []string{mismatch, firstWriteTaken} {
		at := strings.Index(msg, reason+" ")
		if at < 0 {
			continue
		}
		j, perr := strconv.Atoi(strings.TrimSpace(msg[at+len(reason)+1:]))
		if perr != nil || j < 0 || j >= len(ops) {
			return fmt.Errorf("transaction: %s: %w", msg, state.ErrETagMismatch)
		}
		if reason == firstWriteTaken {
			return fmt.Errorf("transaction: set %q: key exists and first-write was asked without an etag: %w", ops[j].Key(), state.ErrETagMismatch)
		}
		return fmt.Errorf("transaction: %s %q: %w", opName(ops[j]), ops[j].Key(), state.ErrETagMismatch)
	}
	return fmt.Errorf("transaction: %w", err)
}

func opName(op state.Operation) string {
	if op.Upsert != nil {
		return "set"
	}
	return "delete"
}
