package api

import (
	"context"
	"errors"
	"testing"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/lock"
	"github.com/tandemrun/tandem/components/lock/locktest"
	lockredis "github.com/tandemrun/tandem/components/lock/redis"
	"github.com/tandemrun/tandem/proxy/apierr"
)

func TestLockAPI(t *testing.T) {
	ctx := context.Background()
	none := NewLock(LockConfig{AppID: "me"})
	_, err := none.TryLock(ctx, &runtimev1.TryLockRequest{StoreName: "s", ResourceId: "r", LockOwner: "o", ExpiryInSeconds: 1})
	if !errors.Is(err, apierr.LockStoresNotConfigured()) {
		t.Fatalf("no stores: %v", err)
	}
	locktest.RequireServer(t, "127.0.0.1:6379", "Redis")
	newFn, types := components.FactoryFromMap(map[string]func() lock.Store{lockredis.Type: func() lock.Store { return lockredis.New() }})
	m := components.NewManager(lock.Kind(newFn, types), components.ManagerOptions{Resolve: components.Env{AppID: "me"}.Resolve})
	t.Cleanup(func() { _ = m.Close() })
	m.Apply([]components.Component{{Name: "locks", Type: lockredis.Type, InitTimeout: components.DefaultInitTimeout, Metadata: md("redisHost", "127.0.0.1:6379")}})
	waitUntil(t, "locks ready", func() bool { _, err := m.Registry().Ready("locks"); return err == nil })
	l := NewLock(LockConfig{Registry: m.Registry(), AppID: "me"})

	for _, c := range []struct {
		req  *runtimev1.TryLockRequest
		want *apierr.Error
	}{
		{&runtimev1.TryLockRequest{StoreName: "locks", ResourceId: "r", LockOwner: "o"}, apierr.LockRequestField("ExpiryInSeconds is not positive in lock store %s", "locks")},
		{&runtimev1.TryLockRequest{StoreName: "locks", LockOwner: "o", ExpiryInSeconds: 1}, apierr.LockRequestField("ResourceId is empty in lock store %s", "locks")},
		{&runtimev1.TryLockRequest{StoreName: "locks", ResourceId: "r", ExpiryInSeconds: 1}, apierr.LockRequestField("LockOwner is empty in lock store %s", "locks")},
		{&runtimev1.TryLockRequest{StoreName: "nope", ResourceId: "r", LockOwner: "o", ExpiryInSeconds: 1}, apierr.LockStoreNotFound("nope")},
		{&runtimev1.TryLockRequest{StoreName: "locks", ResourceId: "a||b", LockOwner: "o", ExpiryInSeconds: 1}, apierr.TryLock(errors.New(""))},
	} {
		if _, err := l.TryLock(ctx, c.req); !errors.Is(err, c.want) {
			t.Errorf("TryLock(%v) = %v, want %v", c.req, err, c.want)
		}
	}

	res := "res-" + locktest.RandomSuffix()
	out, err := l.TryLock(ctx, &runtimev1.TryLockRequest{StoreName: "locks", ResourceId: res, LockOwner: "o1", ExpiryInSeconds: 30})
	if err != nil || !out.GetSuccess() {
		t.Fatalf("TryLock = %v, %v", out, err)
	}
	// daprd's key layout: lock||<app id>||<resource>.
	raw := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	defer raw.Close()
	if v := raw.Get(ctx, "lock||me||"+res).Val(); v != "o1" {
		t.Errorf("key holds %q", v)
	}
	if out, _ := l.TryLock(ctx, &runtimev1.TryLockRequest{StoreName: "locks", ResourceId: res, LockOwner: "o2", ExpiryInSeconds: 30}); out.GetSuccess() {
		t.Error("a second owner took the lock")
	}
	un, err := l.Unlock(ctx, &runtimev1.UnlockRequest{StoreName: "locks", ResourceId: res, LockOwner: "o2"})
	if err != nil || un.GetStatus() != runtimev1.UnlockResponse_LOCK_BELONGS_TO_OTHERS {
		t.Errorf("Unlock by another = %v, %v", un, err)
	}
	un, err = l.Unlock(ctx, &runtimev1.UnlockRequest{StoreName: "locks", ResourceId: res, LockOwner: "o1"})
	if err != nil || un.GetStatus() != runtimev1.UnlockResponse_SUCCESS {
		t.Errorf("Unlock = %v, %v", un, err)
	}
	un, _ = l.Unlock(ctx, &runtimev1.UnlockRequest{StoreName: "locks", ResourceId: res, LockOwner: "o1"})
	if un.GetStatus() != runtimev1.UnlockResponse_LOCK_DOES_NOT_EXIST {
		t.Errorf("second Unlock = %v", un)
	}
}
