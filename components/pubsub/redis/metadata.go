package redis

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/internal/redisconn"
)

// config is the component's metadata, with Dapr's names and defaults.
type config struct {
	// The connection: redisHost (default 127.0.0.1:6379), redisUsername,
	// redisPassword, redisDB, enableTLS, dialTimeout, and the topology
	// (redisType, failover, sentinelMasterName, sentinelUsername,
	// sentinelPassword).
	redisconn.Config

	ConsumerID        string        // consumerID (default: app ID)
	ProcessingTimeout time.Duration // processingTimeout; 0 disables reclaiming
	RedeliverInterval time.Duration // redeliverInterval; 0 disables reclaiming
	QueueDepth        int           // queueDepth: entries read per XREADGROUP
	Concurrency       int           // concurrency: default handlers per subscription
	MaxLenApprox      int64         // maxLenApprox: XADD MAXLEN ~ n (0 = unbounded)
}

func parseConfig(md components.Metadata) (config, error) {
	c := config{ConsumerID: md.String(pubsub.MetadataConsumerID, md.AppID)}
	var err error
	if c.Config, err = redisconn.ParseOr(md.Name, md, "127.0.0.1:6379"); err != nil {
		return c, err
	}
	if c.ProcessingTimeout, err = msDuration(md, "processingTimeout", 60*time.Second); err != nil {
		return c, err
	}
	if c.RedeliverInterval, err = msDuration(md, "redeliverInterval", 15*time.Second); err != nil {
		return c, err
	}
	if c.QueueDepth, err = md.Int("queueDepth", 100); err != nil {
		return c, err
	}
	if c.Concurrency, err = md.Int("concurrency", pubsub.DefaultConcurrency); err != nil {
		return c, err
	}
	maxLen, err := md.Int("maxLenApprox", 0)
	if err != nil {
		return c, err
	}
	c.MaxLenApprox = int64(maxLen)
	if c.ConsumerID == "" {
		return c, fmt.Errorf("component %q: metadata %q is empty and there is no app ID; set consumerID", md.Name, pubsub.MetadataConsumerID)
	}
	if c.QueueDepth < 1 || c.Concurrency < 1 {
		return c, fmt.Errorf("component %q: queueDepth and concurrency must be at least 1", md.Name)
	}
	return c, nil
}

// msDuration parses a duration the way Dapr's Redis pub/sub does: a Go
// duration ("30s") or a bare number of milliseconds.
func msDuration(md components.Metadata, name string, def time.Duration) (time.Duration, error) {
	v, ok := md.Get(name)
	v = strings.TrimSpace(v)
	if !ok || v == "" {
		return def, nil
	}
	if n, err := strconv.ParseUint(v, 10, 63); err == nil {
		return time.Duration(n) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("component %q: metadata %q: %q is not a duration like 30s or a number of milliseconds", md.Name, name, v)
	}
	return d, nil
}
