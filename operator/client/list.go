package client

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	operatorv1 "github.com/dapr/dapr/pkg/proto/operator/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// List returns every resource of kind in the sidecar's namespace, for the
// start-up load: like daprd, a call that finds the operator unreachable,
// busy or slow is tried again, up to Config.MaxAttempts times; any other
// error (a refusal, an undecodable resource) is returned at once.
func (c *Client) List(ctx context.Context, kind Kind) ([]Resource, error) {
	var raw [][]byte
	err := c.retry(ctx, func(ctx context.Context) (err error) {
		raw, err = c.list(ctx, kind)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list %s from the operator at %s: %w", kind, c.cfg.Address, err)
	}
	return decodeAll(kind, raw)
}

// ListOnce is List with a single try (Config.PerTryTimeout).
func (c *Client) ListOnce(ctx context.Context, kind Kind) ([]Resource, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PerTryTimeout)
	defer cancel()
	raw, err := c.list(ctx, kind)
	if err != nil {
		return nil, fmt.Errorf("list %s from the operator at %s: %w", kind, c.cfg.Address, err)
	}
	return decodeAll(kind, raw)
}

// Configuration returns the Configuration named name, retried as List.
// An operator that answers with no configuration means it does not exist:
// daprd stops then ("configuration <name> not found").
func (c *Client) Configuration(ctx context.Context, name string) (Resource, error) {
	var raw []byte
	err := c.retry(ctx, func(ctx context.Context) error {
		resp, err := c.op.GetConfiguration(ctx, &operatorv1.GetConfigurationRequest{Name: name, Namespace: c.cfg.Namespace})
		raw = resp.GetConfiguration()
		return err
	})
	if err != nil {
		return Resource{}, fmt.Errorf("get configuration %s from the operator at %s: %w", name, c.cfg.Address, err)
	}
	if len(raw) == 0 {
		return Resource{}, fmt.Errorf("configuration %s not found", name)
	}
	return decode(Configurations, raw)
}

func decodeAll(kind Kind, raw [][]byte) ([]Resource, error) {
	out := make([]Resource, 0, len(raw))
	for _, b := range raw {
		r, err := decode(kind, b)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// retry runs call until it succeeds, fails for good, Config.MaxAttempts
// tries are spent, or ctx ends. Each try has Config.PerTryTimeout.
func (c *Client) retry(ctx context.Context, call func(context.Context) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		tctx, cancel := context.WithTimeout(ctx, c.cfg.PerTryTimeout)
		err = call(tctx)
		cancel()
		if err == nil || !transient(err) || attempt >= c.cfg.MaxAttempts || ctx.Err() != nil {
			return err
		}
		// ±10 % jitter, as daprd's retry interceptor.
		wait := time.Duration(float64(c.cfg.RetryWait) * (0.9 + 0.2*rand.Float64()))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// transient: what daprd's retry interceptor tries again (Unavailable,
// ResourceExhausted) and a per-try timeout.
func transient(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded:
		return true
	}
	return false
}
