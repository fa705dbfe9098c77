package redis

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/configuration"
	"github.com/tandemrun/tandem/components/configuration/configurationtest"
)

func TestContract(t *testing.T) {
	configurationtest.RequireServer(t, "127.0.0.1:6379", "Redis")
	raw := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	defer raw.Close()
	configurationtest.Run(t, func(t *testing.T) configuration.Store {
		s := New(nil)
		if err := s.Init(context.Background(), components.Metadata{Name: "cfg", Properties: map[string]string{"redisHost": "127.0.0.1:6379"}}); err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T, key, value, version string) {
		ctx := context.Background()
		var err error
		switch {
		case value == "":
			err = raw.Del(ctx, key).Err()
		case version == "":
			err = raw.Set(ctx, key, value, 0).Err()
		default:
			err = raw.Set(ctx, key, value+"||"+version, 0).Err()
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Del(context.Background(), key) })
	})
}

var parseConfigCases = []struct {
	name    string
	props   map[string]string
	wantErr bool
}{
	{"minimal", map[string]string{"redisHost": "localhost"}, false},
	{"all", map[string]string{"redisHost": "h:1", "redisPassword": "p", "redisDB": "3", "enableTLS": "false", "dialTimeout": "1s"}, false},
	{"no host", map[string]string{}, true},
	{"bad db", map[string]string{"redisHost": "h", "redisDB": "-1"}, true},
}

func TestParseConfig(t *testing.T) {
	for _, c := range parseConfigCases {
		if _, err := parseConfig(components.Metadata{Name: "cfg", Properties: c.props}); (err != nil) != c.wantErr {
			t.Errorf("%s: err = %v, want error %v", c.name, err, c.wantErr)
		}
	}
	if it := split("v||3"); it.Value != "v" || it.Version != "3" {
		t.Errorf("split = %+v", it)
	}
}
