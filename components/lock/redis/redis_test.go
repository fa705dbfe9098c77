package redis

import (
	"context"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/lock"
	"github.com/tandemrun/tandem/components/lock/locktest"
)

func TestContract(t *testing.T) {
	locktest.RequireServer(t, "127.0.0.1:6379", "Redis")
	locktest.Run(t, func(t *testing.T) lock.Store {
		s := New()
		if err := s.Init(context.Background(), components.Metadata{Name: "lk", Properties: map[string]string{"redisHost": "127.0.0.1:6379"}}); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

var parseConfigCases = []struct {
	name    string
	props   map[string]string
	wantErr bool
}{
	{"minimal", map[string]string{"redisHost": "localhost"}, false},
	{"all", map[string]string{"redisHost": "h:1", "redisPassword": "p", "redisDB": "1", "enableTLS": "true"}, false},
	{"no host", map[string]string{}, true},
	{"cluster", map[string]string{"redisHost": "h", "redisType": "cluster"}, true},
}

func TestParseConfig(t *testing.T) {
	for _, c := range parseConfigCases {
		if _, err := parseConfig(components.Metadata{Name: "lk", Properties: c.props}); (err != nil) != c.wantErr {
			t.Errorf("%s: err = %v, want error %v", c.name, err, c.wantErr)
		}
	}
}
