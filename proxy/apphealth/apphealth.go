// Package apphealth probes the app's health (--enable-app-health-check), as
// daprd does: a probe every interval, the app unhealthy after threshold
// failed probes in a row and healthy again after one that succeeds.
package apphealth

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Probe checks the app's health once; nil means healthy.
type Probe func(ctx context.Context) error

// Config configures a Checker.
type Config struct {
	Probe     Probe
	Interval  time.Duration // between probes; default 5s
	Timeout   time.Duration // of one probe; default 500ms
	Threshold int           // failed probes in a row before unhealthy; default 3
	Log       *slog.Logger
}

// Checker tracks the app's health. Until the first probe succeeds the app
// counts as unhealthy.
type Checker struct {
	cfg Config

	mu        sync.Mutex
	healthy   bool
	changed   chan struct{} // closed and replaced at every change
	failures  int
	unhealthy chan struct{} // closed while unhealthy
}

// New returns a Checker; Run probes.
func New(cfg Config) *Checker {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 500 * time.Millisecond
	}
	if cfg.Threshold <= 0 {
		cfg.Threshold = 3
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	u := make(chan struct{})
	close(u)
	return &Checker{cfg: cfg, changed: make(chan struct{}), unhealthy: u}
}

// Run probes the app until ctx ends.
func (c *Checker) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		err := c.cfg.Probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		c.report(err)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (c *Checker) report(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.failures = 0
		if !c.healthy {
			c.cfg.Log.Info("app is healthy")
			c.healthy = true
			c.unhealthy = make(chan struct{})
			c.notifyLocked()
		}
		return
	}
	c.failures++
	if c.healthy && c.failures >= c.cfg.Threshold {
		c.cfg.Log.Warn("app is unhealthy", "failed_probes", c.failures, "error", err)
		c.healthy = false
		close(c.unhealthy)
		c.notifyLocked()
	}
}

func (c *Checker) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Healthy reports whether the app is healthy now.
func (c *Checker) Healthy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.healthy
}

// Unhealthy returns a channel that is closed while the app is unhealthy
// (take a new one after it becomes healthy again).
func (c *Checker) Unhealthy() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unhealthy
}

// Watch returns the health now and a channel closed at the next change.
func (c *Checker) Watch() (healthy bool, changed <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.healthy, c.changed
}

// HTTPProbe GETs url with client; a 2xx answer is healthy.
func HTTPProbe(client *http.Client, url string) Probe {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("health probe %s: status %d", url, resp.StatusCode)
		}
		return nil
	}
}

// GRPCProbe calls the app's dapr.proto.runtime.v1.AppCallbackHealthCheck.
func GRPCProbe(conn grpc.ClientConnInterface) Probe {
	client := runtimev1.NewAppCallbackHealthCheckClient(conn)
	return func(ctx context.Context) error {
		_, err := client.HealthCheck(ctx, &emptypb.Empty{})
		return err
	}
}
