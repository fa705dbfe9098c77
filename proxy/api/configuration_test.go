package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/configuration"
	"github.com/tandemrun/tandem/components/configuration/configurationtest"
	cfgredis "github.com/tandemrun/tandem/components/configuration/redis"
	"github.com/tandemrun/tandem/proxy/apierr"
)

func TestConfigurationAPI(t *testing.T) {
	ctx := context.Background()
	if _, err := NewConfiguration(ConfigurationConfig{}).Get(ctx, "s", nil, nil); !errors.Is(err, apierr.ConfigurationStoresNotConfigured()) {
		t.Fatalf("no stores: %v", err)
	}
	configurationtest.RequireServer(t, "127.0.0.1:6379", "Redis")
	newFn, types := components.FactoryFromMap(map[string]func() configuration.Store{cfgredis.Type: func() configuration.Store { return cfgredis.New(nil) }})
	m := components.NewManager(configuration.Kind(newFn, types), components.ManagerOptions{Resolve: components.Env{AppID: "me"}.Resolve})
	t.Cleanup(func() { _ = m.Close() })
	m.Apply([]components.Component{{Name: "cfg", Type: cfgredis.Type, InitTimeout: components.DefaultInitTimeout, Metadata: md("redisHost", "127.0.0.1:6379")}})
	waitUntil(t, "cfg ready", func() bool { _, err := m.Registry().Ready("cfg"); return err == nil })
	c := NewConfiguration(ConfigurationConfig{Registry: m.Registry()})
	t.Cleanup(c.Close)
	if _, err := c.Get(ctx, "nope", nil, nil); !errors.Is(err, apierr.ConfigurationStoreNotFound("nope")) {
		t.Fatalf("unknown store: %v", err)
	}

	raw := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	defer raw.Close()
	key := "cfgapi-" + configurationtest.RandomSuffix()
	t.Cleanup(func() { raw.Del(context.Background(), key) })
	raw.Set(ctx, key, "one||1", 0)
	items, err := c.Get(ctx, "cfg", []string{key}, nil)
	if err != nil || items[key] == nil || items[key].Value != "one" || items[key].Version != "1" {
		t.Fatalf("Get = %v, %v", items, err)
	}

	// gRPC-style subscription: changes go to send with the ID.
	got := make(chan string, 4)
	id, err := c.Subscribe(ctx, "cfg", []string{key}, nil, func(_ context.Context, id string, items map[string]*configuration.Item) error {
		got <- id + "=" + items[key].Value
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	raw.Set(ctx, key, "two||2", 0)
	select {
	case v := <-got:
		if v != id+"=two" {
			t.Errorf("change %q", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no change")
	}
	if err := c.Unsubscribe(id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done(id):
	case <-time.After(time.Second):
		t.Fatal("Done not closed after Unsubscribe")
	}
	if err := c.Unsubscribe(id); err == nil {
		t.Error("second Unsubscribe succeeded")
	}

	// HTTP-style subscription: the app gets POST /configuration/cfg/<key>.
	var mu sync.Mutex
	var posted []string
	app := serveApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev struct {
			ID    string
			Items map[string]configuration.Item
		}
		_ = json.Unmarshal(b, &ev)
		mu.Lock()
		posted = append(posted, r.URL.Path+" "+ev.Items[key].Value)
		mu.Unlock()
	}))
	if _, err := c.SubscribeApp("cfg", []string{key}, nil); err == nil {
		t.Fatal("SubscribeApp without an app succeeded")
	}
	c.UseApp(app)
	if _, err := c.SubscribeApp("cfg", []string{key}, nil); err != nil {
		t.Fatal(err)
	}
	raw.Set(ctx, key, "three", 0)
	waitUntil(t, "the app to get the change", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(posted) > 0 && posted[0] == "/configuration/cfg/"+key+" three"
	})
}
