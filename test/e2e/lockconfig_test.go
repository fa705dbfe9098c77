package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestLockAndConfigurationWithGoSDK: the distributed lock (lock.redis) and
// the configuration API (configuration.redis: get, and a subscription that
// sees a change) through the Dapr Go SDK.
func TestLockAndConfigurationWithGoSDK(t *testing.T) {
	needRedis(t)
	res := t.TempDir()
	err := os.WriteFile(filepath.Join(res, "components.yaml"), []byte(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: locks
spec:
  type: lock.redis
  version: v1
  metadata:
  - name: redisHost
    value: `+redisAddr+`
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: config
spec:
  type: configuration.redis
  version: v1
  metadata:
  - name: redisHost
    value: `+redisAddr+`
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	sc := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "lockapp", ResourcesDir: res})
	c, err := dapr.NewClientWithAddress(sc.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	resource := "order-" + time.Now().Format("150405.000000")
	var got *dapr.LockResponse
	for deadline := time.Now().Add(15 * time.Second); ; {
		got, err = c.TryLockAlpha1(ctx, "locks", &dapr.LockRequest{ResourceID: resource, LockOwner: "a", ExpiryInSeconds: 30})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // the component initialises in the background
	}
	if err != nil || !got.Success {
		t.Fatalf("TryLock = %v, %v", got, err)
	}
	if got, err := c.TryLockAlpha1(ctx, "locks", &dapr.LockRequest{ResourceID: resource, LockOwner: "b", ExpiryInSeconds: 30}); err != nil || got.Success {
		t.Fatalf("second owner = %v, %v", got, err)
	}
	if un, err := c.UnlockAlpha1(ctx, "locks", &dapr.UnlockRequest{ResourceID: resource, LockOwner: "a"}); err != nil || un.Status != "SUCCESS" {
		t.Fatalf("Unlock = %v, %v", un, err)
	}

	raw := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	defer raw.Close()
	key := "e2ecfg_" + time.Now().Format("150405_000000")
	defer raw.Del(context.Background(), key)
	raw.Set(ctx, key, "blue||1", 0)
	item, err := c.GetConfigurationItem(ctx, "config", key)
	if err != nil || item == nil || item.Value != "blue" || item.Version != "1" {
		t.Fatalf("GetConfigurationItem = %v, %v", item, err)
	}
	changes := make(chan string, 4)
	id, err := c.SubscribeConfigurationItems(ctx, "config", []string{key}, func(_ string, items map[string]*dapr.ConfigurationItem) {
		if it := items[key]; it != nil {
			changes <- it.Value
		}
	})
	if err != nil || id == "" {
		t.Fatalf("SubscribeConfigurationItems = %q, %v", id, err)
	}
	raw.Set(ctx, key, "green||2", 0)
	select {
	case v := <-changes:
		if v != "green" {
			t.Errorf("change %q", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription saw no change")
	}
	if err := c.UnsubscribeConfigurationItems(ctx, "config", id); err != nil {
		t.Fatal(err)
	}
}
