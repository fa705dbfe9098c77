package redis

import (
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
)

var parseConfigCases = []struct {
	name    string
	props   map[string]string
	appID   string
	check   func(c config) bool
	wantErr bool
}{
	{"defaults like Dapr", nil, "app", func(c config) bool {
		return c.Host == "127.0.0.1:6379" && c.ConsumerID == "app" && c.ProcessingTimeout == 60*time.Second &&
			c.RedeliverInterval == 15*time.Second && c.Concurrency == 10 && c.QueueDepth == 100
	}, false},
	{"bare numbers are milliseconds", map[string]string{"processingTimeout": "1500", "redeliverInterval": "0"}, "app", func(c config) bool {
		return c.ProcessingTimeout == 1500*time.Millisecond && c.RedeliverInterval == 0
	}, false},
	{"host without port", map[string]string{"redisHost": "redis", "consumerID": "g"}, "", func(c config) bool {
		return c.Host == "redis:6379" && c.ConsumerID == "g"
	}, false},
	{"no consumer", nil, "", nil, true},
	{"bad duration", map[string]string{"processingTimeout": "soon"}, "app", nil, true},
	{"bad db", map[string]string{"redisDB": "x"}, "app", nil, true},
	{"cluster", map[string]string{"redisHost": "a:7000,b:7001", "redisType": "cluster"}, "app", func(c config) bool {
		return c.Cluster() && len(c.Addrs) == 2
	}, false},
	{"sentinel", map[string]string{"redisHost": "s:26379", "failover": "true", "sentinelMasterName": "m"}, "app", func(c config) bool {
		return c.Failover && c.Master == "m"
	}, false},
	{"sentinel without master name", map[string]string{"redisHost": "s:26379", "failover": "true"}, "app", nil, true},
}

func TestParseConfig(t *testing.T) {
	for _, tt := range parseConfigCases {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(components.Metadata{Name: "r", AppID: tt.appID, Properties: tt.props})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.check != nil && !tt.check(c) {
				t.Errorf("config = %+v", c)
			}
		})
	}
}
