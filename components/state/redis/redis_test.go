package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/statetest"
	"github.com/tandemrun/tandem/internal/redisconn"
	"github.com/tandemrun/tandem/internal/redisconn/redistest"
)

const addr = "127.0.0.1:6379"

func open(t *testing.T, props map[string]string) *Store {
	t.Helper()
	statetest.RequireServer(t, addr)
	return openWith(t, map[string]string{"redisHost": addr}, props)
}

// openWith opens a store with the metadata base plus props.
func openWith(t *testing.T, base, props map[string]string) *Store {
	t.Helper()
	p := map[string]string{}
	for k, v := range base {
		p[k] = v
	}
	for k, v := range props {
		p[k] = v
	}
	s := New(nil)
	if err := s.Init(context.Background(), components.Metadata{Name: "redis", Type: Type, Properties: p}); err != nil {
		t.Fatalf("init: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Store { return open(t, nil) })
}

// TestConformanceCluster runs the suite on a three-master Redis Cluster
// (each subtest's keys share a hash tag, so its transactions are in one
// slot), then checks transactions across slots fail clearly and change
// nothing, and that single-key writes reach every master.
func TestConformanceCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	md := map[string]string{"redisHost": c.Host(), "redisType": "cluster"}
	statetest.Run(t, func(t *testing.T) state.Store { return openWith(t, md, nil) })
	t.Run("TransactionAcrossSlots", func(t *testing.T) {
		s := openWith(t, md, nil)
		ctx := context.Background()
		suffix := randomSuffix()
		a, b := "statetest-a-"+suffix, "statetest-b-"+suffix
		if redisconn.Slot(a) == redisconn.Slot(b) {
			t.Skip("the random keys happen to share a slot")
		}
		t.Cleanup(func() {
			_ = s.Delete(context.Background(), &state.DeleteRequest{Key: a})
			_ = s.Delete(context.Background(), &state.DeleteRequest{Key: b})
		})
		err := s.Multi(ctx, &state.TransactionRequest{Operations: []state.Operation{
			{Upsert: &state.SetRequest{Key: a, Value: []byte(`1`)}},
			{Upsert: &state.SetRequest{Key: b, Value: []byte(`2`)}},
		}})
		if !errors.Is(err, state.ErrNotSupported) || !strings.Contains(err.Error(), "hash tag") {
			t.Fatalf("transaction across slots: %v; want ErrNotSupported explaining hash tags", err)
		}
		for _, k := range []string{a, b} {
			if r, err := s.Get(ctx, &state.GetRequest{Key: k}); err != nil || r != nil {
				t.Fatalf("get %q after the refused transaction = %+v, %v; want nothing written", k, r, err)
			}
		}
		// The same keys with a common tag work.
		ta, tb := "statetest-{"+suffix+"}-a", "statetest-{"+suffix+"}-b"
		t.Cleanup(func() {
			_ = s.Delete(context.Background(), &state.DeleteRequest{Key: ta})
			_ = s.Delete(context.Background(), &state.DeleteRequest{Key: tb})
		})
		if err := s.Multi(ctx, &state.TransactionRequest{Operations: []state.Operation{
			{Upsert: &state.SetRequest{Key: ta, Value: []byte(`1`)}},
			{Upsert: &state.SetRequest{Key: tb, Value: []byte(`2`)}},
		}}); err != nil {
			t.Fatalf("transaction with a hash tag: %v", err)
		}
	})
	t.Run("KeysOnEveryMaster", func(t *testing.T) {
		s := openWith(t, md, nil)
		ctx := context.Background()
		raw := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs})
		defer raw.Close()
		var keys []string
		for i := range 30 {
			key := fmt.Sprintf("statetest-spread-%d-%s", i, randomSuffix())
			keys = append(keys, key)
			if err := s.Set(ctx, &state.SetRequest{Key: key, Value: []byte(`"v"`), Metadata: map[string]string{"ttlInSeconds": "60"}}); err != nil {
				t.Fatalf("set %q: %v", key, err)
			}
		}
		var withKeys atomic.Int32
		err := raw.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
			if m.DBSize(ctx).Val() > 0 {
				withKeys.Add(1)
			}
			return nil
		})
		if err != nil || withKeys.Load() != 3 {
			t.Fatalf("masters holding keys = %d, %v; want all 3", withKeys.Load(), err)
		}
		for _, key := range keys {
			if err := s.Delete(ctx, &state.DeleteRequest{Key: key}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestConformanceSentinel runs the suite through a sentinel, then fails
// the master over and checks a store opened before keeps reading what was
// written before and writing after.
func TestConformanceSentinel(t *testing.T) {
	sn := redistest.StartSentinel(t)
	md := map[string]string{"redisHost": sn.Sentinel, "failover": "true", "sentinelMasterName": redistest.MasterName}
	statetest.Run(t, func(t *testing.T) state.Store { return openWith(t, md, nil) })
	t.Run("Failover", func(t *testing.T) {
		s := openWith(t, md, nil)
		ctx := context.Background()
		key := "statetest-failover-" + randomSuffix()
		t.Cleanup(func() { _ = s.Delete(context.Background(), &state.DeleteRequest{Key: key}) })
		if err := s.Set(ctx, &state.SetRequest{Key: key, Value: []byte(`"before"`)}); err != nil {
			t.Fatal(err)
		}
		// WAIT: the replica has the write before it is promoted.
		if err := s.client.Do(ctx, "WAIT", 1, 5000).Err(); err != nil {
			t.Fatalf("wait for the replica: %v", err)
		}
		if now := sn.Failover(t); now != sn.Replica {
			t.Fatalf("new master %s, want the former replica %s", now, sn.Replica)
		}
		r, err := s.Get(ctx, &state.GetRequest{Key: key})
		if err != nil || r == nil || string(r.Data) != `"before"` {
			t.Fatalf("get after failover = %+v, %v", r, err)
		}
		etag := *r.ETag
		if err := s.Set(ctx, &state.SetRequest{Key: key, Value: []byte(`"after"`), ETag: &etag}); err != nil {
			t.Fatalf("set after failover: %v", err)
		}
		if err := s.Multi(ctx, &state.TransactionRequest{Operations: []state.Operation{
			{Upsert: &state.SetRequest{Key: key, Value: []byte(`"tx"`)}},
		}}); err != nil {
			t.Fatalf("transaction after failover: %v", err)
		}
		if r, err := s.Get(ctx, &state.GetRequest{Key: key}); err != nil || r == nil || string(r.Data) != `"tx"` {
			t.Fatalf("get = %+v, %v", r, err)
		}
	})
}

// TestDaprLayout checks keys are hashes {data, version} like Dapr's, and
// that a hash written the way Dapr writes it (with its "first-write" field)
// reads back and accepts our writes.
func TestDaprLayout(t *testing.T) {
	s := open(t, nil)
	ctx := context.Background()
	raw := goredis.NewClient(&goredis.Options{Addr: addr, Protocol: 2})
	key := "statetest-layout||k"
	dapr := "statetest-layout||dapr"
	raw.Del(ctx, key, dapr)
	t.Cleanup(func() {
		raw.Del(context.Background(), key, dapr)
		_ = raw.Close()
	})

	if err := s.Set(ctx, &state.SetRequest{Key: key, Value: []byte(`{"a":1}`), Metadata: map[string]string{"ttlInSeconds": "100"}}); err != nil {
		t.Fatal(err)
	}
	h, err := raw.HGetAll(ctx, key).Result()
	if err != nil || h["data"] != `{"a":1}` || h["version"] != "1" || len(h) != 2 {
		t.Fatalf("hash = %v, %v; want data and version 1", h, err)
	}
	if ttl := raw.TTL(ctx, key).Val(); ttl <= 0 {
		t.Fatalf("ttl = %v, want an expiry", ttl)
	}
	raw.HSet(ctx, dapr, "data", `"from dapr"`, "version", "7", "first-write", "0")
	r, err := s.Get(ctx, &state.GetRequest{Key: dapr})
	if err != nil || r == nil || string(r.Data) != `"from dapr"` || *r.ETag != "7" {
		t.Fatalf("get Dapr hash = %+v, %v", r, err)
	}
	etag := "7"
	if err := s.Set(ctx, &state.SetRequest{Key: dapr, Value: []byte(`"ours"`), ETag: &etag}); err != nil {
		t.Fatal(err)
	}
	if v := raw.HGet(ctx, dapr, "version").Val(); v != "8" {
		t.Fatalf("version = %q, want 8", v)
	}
	// Plain string keys (very old Dapr) read without an etag.
	raw.Del(ctx, dapr)
	raw.Set(ctx, dapr, "plain", 0)
	r, err = s.Get(ctx, &state.GetRequest{Key: dapr})
	if err != nil || r == nil || string(r.Data) != "plain" || r.ETag != nil {
		t.Fatalf("get plain = %+v, %v", r, err)
	}
}

// TestTransactionScript checks what the transaction script does beyond
// the suite: a plain string key (very old Dapr) is replaced by an upsert,
// an etag checked later in the list sees the version an earlier operation
// left (a key deleted and written again starts at 1), TTLs are set and
// cleared, and a failing operation named in the error leaves the keys as
// they were.
func TestTransactionScript(t *testing.T) {
	s := open(t, nil)
	ctx := context.Background()
	raw := goredis.NewClient(&goredis.Options{Addr: addr, Protocol: 2})
	plain, hashed := "statetest-txscript||plain", "statetest-txscript||hashed"
	raw.Del(ctx, plain, hashed)
	t.Cleanup(func() {
		raw.Del(context.Background(), plain, hashed)
		_ = raw.Close()
	})
	raw.Set(ctx, plain, "old", 0)
	raw.HSet(ctx, hashed, "data", `"v5"`, "version", "5")
	raw.Expire(ctx, hashed, time.Hour)
	v5, v1 := "5", "1"
	if err := s.Multi(ctx, &state.TransactionRequest{Operations: []state.Operation{
		{Upsert: &state.SetRequest{Key: plain, Value: []byte(`"new"`), Metadata: map[string]string{"ttlInSeconds": "100"}}},
		{Delete: &state.DeleteRequest{Key: hashed, ETag: &v5}},
		{Upsert: &state.SetRequest{Key: hashed, Value: []byte(`"again"`), Options: state.Options{Concurrency: state.FirstWrite}}},
		{Upsert: &state.SetRequest{Key: hashed, Value: []byte(`"twice"`), ETag: &v1}},
	}}); err != nil {
		t.Fatalf("multi: %v", err)
	}
	if h := raw.HGetAll(ctx, plain).Val(); h["data"] != `"new"` || h["version"] != "1" {
		t.Fatalf("plain key after the upsert = %v, want a hash at version 1", h)
	}
	if ttl := raw.TTL(ctx, plain).Val(); ttl <= 0 {
		t.Fatalf("plain key's ttl = %v, want an expiry", ttl)
	}
	if h := raw.HGetAll(ctx, hashed).Val(); h["data"] != `"twice"` || h["version"] != "2" {
		t.Fatalf("hashed key = %v, want data twice at version 2", h)
	}
	if ttl := raw.TTL(ctx, hashed).Val(); ttl != -1 {
		t.Fatalf("hashed key's ttl = %v, want none (persisted)", ttl)
	}
	err := s.Multi(ctx, &state.TransactionRequest{Operations: []state.Operation{
		{Upsert: &state.SetRequest{Key: plain, Value: []byte(`"lost"`)}},
		{Upsert: &state.SetRequest{Key: hashed, Value: []byte(`"lost"`), ETag: &v5}},
	}})
	if !errors.Is(err, state.ErrETagMismatch) || !strings.Contains(err.Error(), hashed) {
		t.Fatalf("multi with a stale etag = %v, want an etag mismatch naming %q", err, hashed)
	}
	if d := raw.HGet(ctx, plain, "data").Val(); d != `"new"` {
		t.Fatalf("plain key after the failed transaction = %q, want it unchanged", d)
	}
}

func TestDefaultTTL(t *testing.T) {
	s := open(t, map[string]string{"ttlInSeconds": "100"})
	ctx := context.Background()
	key := "statetest-defttl||k"
	t.Cleanup(func() { _ = s.Delete(context.Background(), &state.DeleteRequest{Key: key}) })
	if err := s.Set(ctx, &state.SetRequest{Key: key, Value: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Get(ctx, &state.GetRequest{Key: key}); r == nil || r.Metadata[state.MetadataTTLExpireTime] == "" {
		t.Fatalf("component ttlInSeconds not applied: %+v", r)
	}
	if err := s.Set(ctx, &state.SetRequest{Key: key, Value: []byte(`1`), Metadata: map[string]string{"ttlInSeconds": "-1"}}); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Get(ctx, &state.GetRequest{Key: key}); r == nil || r.Metadata != nil {
		t.Fatalf("ttlInSeconds -1 did not remove the expiry: %+v", r)
	}
}

var configCases = []struct {
	name    string
	props   map[string]string
	wantErr string
}{
	{"missing host", map[string]string{}, `"redisHost" is required`},
	{"several hosts, no topology", map[string]string{"redisHost": "h:1,h:2"}, `set redisType "cluster"`},
	{"sentinel without master name", map[string]string{"redisHost": "h:1", "failover": "true"}, "sentinelMasterName"},
	{"bad db", map[string]string{"redisHost": "h:1", "redisDB": "x"}, "not an integer"},
	{"ok", map[string]string{"redisHost": "h:1", "redisDB": "3", "enableTLS": "true", "dialTimeout": "2s", "insecureSkipTLSVerify": "true"}, ""},
}

func TestConfig(t *testing.T) {
	for _, tc := range configCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(components.Metadata{Name: "r", Properties: tc.props})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.opts.DB != 3 || c.opts.TLSConfig == nil || !c.opts.TLSConfig.InsecureSkipVerify {
				t.Fatalf("config = %+v, %v", c.opts, err)
			}
		})
	}
}

func TestInitUnreachable(t *testing.T) {
	s := New(nil)
	err := s.Init(context.Background(), components.Metadata{Name: "r", Properties: map[string]string{"redisHost": "127.0.0.1:1", "dialTimeout": "200ms", "redisMaxRetries": "0"}})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("init against a closed port: %v", err)
	}
}

func randomSuffix() string { return strconv.FormatUint(rand.Uint64(), 36) }

// TestMultiErr: the script's failure reply names the operation; one that
// cannot be read is still an ETag mismatch; any other error is not.
func TestMultiErr(t *testing.T) {
	ops := []state.Operation{
		{Upsert: &state.SetRequest{Key: "a"}},
		{Delete: &state.DeleteRequest{Key: "b"}},
	}
	if err := multiErr(ops, errors.New(mismatch+" 1")); !errors.Is(err, state.ErrETagMismatch) || !strings.Contains(err.Error(), `delete "b"`) {
		t.Errorf("mismatch on operation 1 = %v, want an etag mismatch naming delete \"b\"", err)
	}
	if err := multiErr(ops, errors.New(firstWriteTaken+" 0")); !errors.Is(err, state.ErrETagMismatch) || !strings.Contains(err.Error(), `set "a": key exists`) {
		t.Errorf("first-write on operation 0 = %v, want an etag mismatch naming set \"a\"", err)
	}
	if err := multiErr(ops, errors.New(mismatch+" 7")); !errors.Is(err, state.ErrETagMismatch) {
		t.Errorf("mismatch on an operation out of range = %v, want an etag mismatch", err)
	}
	if err := multiErr(ops, errors.New("NOSCRIPT")); errors.Is(err, state.ErrETagMismatch) {
		t.Errorf("another error = %v, want no etag mismatch", err)
	}
}
