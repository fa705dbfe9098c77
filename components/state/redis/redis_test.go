package redis

import (
	"context"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/statetest"
)

const addr = "127.0.0.1:6379"

func open(t *testing.T, props map[string]string) *Store {
	t.Helper()
	statetest.RequireServer(t, addr)
	p := map[string]string{"redisHost": addr}
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
	{"missing host", map[string]string{}, "redisHost is required"},
	{"cluster", map[string]string{"redisHost": "h:1", "redisType": "cluster"}, "not supported"},
	{"bad db", map[string]string{"redisHost": "h:1", "redisDB": "x"}, "not an integer"},
	{"ok", map[string]string{"redisHost": "h:1", "redisDB": "3", "enableTLS": "true", "dialTimeout": "2s"}, ""},
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
			if err != nil || c.opts.DB != 3 || c.opts.TLSConfig == nil {
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
