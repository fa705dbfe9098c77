package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/builtin"
	"github.com/tandemrun/tandem/scaler"
)

// brokers asks the pub/sub brokers themselves for a backlog when no
// sidecar of the app runs (scaled to zero): the Component files of
// --resources-path, opened as the app would (its app ID as the consumer
// group or durable), one instance per app and component, kept open.
type brokers struct {
	set *components.Set
	log *slog.Logger

	mu   sync.Mutex
	open map[[2]string]pubsub.PubSub // app ID, component -> instance
}

func newBrokers(dirs []string, log *slog.Logger) (*brokers, error) {
	set, err := components.Load(dirs, "")
	if err != nil {
		return nil, fmt.Errorf("--resources-path: %w", err)
	}
	return &brokers{set: set, log: log, open: map[[2]string]pubsub.PubSub{}}, nil
}

// Backlog is scaler.Options.Broker.
func (b *brokers) Backlog(ctx context.Context, q scaler.Query) (float64, bool, error) {
	if q.PubsubName == "" || q.Topic == "" {
		return 0, false, nil
	}
	ps, err := b.instance(ctx, q.AppID, q.PubsubName)
	if err != nil || ps == nil {
		return 0, false, err
	}
	bl, ok := ps.(pubsub.Backlogger)
	if !ok {
		return 0, false, nil
	}
	backlog, err := bl.Backlog(ctx, q.Topic)
	if err != nil {
		return 0, false, err
	}
	return float64(backlog.Total()), true, nil
}

func (b *brokers) instance(ctx context.Context, appID, name string) (pubsub.PubSub, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ps, ok := b.open[[2]string{appID, name}]; ok {
		return ps, nil
	}
	c, ok := b.set.Component(name)
	if !ok || c.Category() != "pubsub" {
		return nil, nil
	}
	newPS, ok := builtin.Factories(b.log)[c.Type]
	if !ok {
		return nil, nil
	}
	md, err := components.Env{AppID: appID}.Resolve(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("pub/sub %q for app %q: %w", name, appID, err)
	}
	ps := newPS()
	if err := ps.Init(ctx, md); err != nil {
		return nil, fmt.Errorf("pub/sub %q for app %q: %w", name, appID, err)
	}
	b.open[[2]string{appID, name}] = ps
	return ps, nil
}

// Close closes the instances opened.
func (b *brokers) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, ps := range b.open {
		errs = append(errs, ps.Close())
	}
	return errors.Join(errs...)
}
