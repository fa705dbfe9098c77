package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/configuration"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/resiliency"
)

// ConfigurationConfig is what the configuration API serves with.
type ConfigurationConfig struct {
	Registry *components.Registry[configuration.Store]
	// Resiliency, if set, returns the policies in effect: reads and
	// subscriptions run under the store's outbound policy.
	Resiliency func() *resiliency.Set
	Log        *slog.Logger
}

// Configuration is the configuration API: reads, and subscriptions that
// last until their context ends or Unsubscribe names them. It is safe for
// concurrent use.
type Configuration struct {
	cfg ConfigurationConfig
	log *slog.Logger

	mu   sync.Mutex
	subs map[string]*subscription
	app  App
}

type subscription struct {
	cancel context.CancelFunc
	done   <-chan struct{}
}

// NewConfiguration returns the configuration API for cfg.
func NewConfiguration(cfg ConfigurationConfig) *Configuration {
	if cfg.Registry == nil {
		cfg.Registry = components.NewRegistry[configuration.Store]()
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Configuration{cfg: cfg, log: log.With("component", "configuration"), subs: map[string]*subscription{}}
}

func (c *Configuration) store(name string) (configuration.Store, func(), error) {
	if len(c.cfg.Registry.Names()) == 0 {
		return nil, nil, apierr.ConfigurationStoresNotConfigured()
	}
	s, release, err := c.cfg.Registry.Acquire(name)
	if err != nil {
		c.log.Debug("configuration store unavailable", "store", name, "error", err)
		return nil, nil, apierr.ConfigurationStoreNotFound(name)
	}
	return s, release, nil
}

func (c *Configuration) policy(store string) *resiliency.Policy {
	if c.cfg.Resiliency == nil {
		return nil
	}
	return c.cfg.Resiliency().ForComponentOutbound(store, resiliency.Configuration)
}

// Get reads keys (every item when empty) from store.
func (c *Configuration) Get(ctx context.Context, store string, keys []string, md map[string]string) (map[string]*configuration.Item, error) {
	s, release, err := c.store(store)
	if err != nil {
		return nil, err
	}
	defer release()
	op := func(ctx context.Context) (map[string]*configuration.Item, error) { return s.Get(ctx, keys, md) }
	var items map[string]*configuration.Item
	if p := c.policy(store); p != nil {
		items, err = resiliency.Do(ctx, p, op)
	} else {
		items, err = op(ctx)
	}
	if err != nil {
		return nil, apierr.ConfigurationGet(keys, store, err)
	}
	return items, nil
}

// Subscribe follows keys of store, sending each change to send with the
// subscription's ID, until ctx ends or Unsubscribe(id). It returns the ID
// once the subscription is in place.
func (c *Configuration) Subscribe(ctx context.Context, store string, keys []string, md map[string]string, send func(ctx context.Context, id string, items map[string]*configuration.Item) error) (string, error) {
	s, release, err := c.store(store)
	if err != nil {
		return "", err
	}
	id := uuid.NewString()
	subCtx, cancel := context.WithCancel(ctx)
	keys = slices.Sorted(slices.Values(keys))
	op := func(ctx context.Context) (struct{}, error) {
		return struct{}{}, s.Subscribe(subCtx, keys, md, func(ctx context.Context, items map[string]*configuration.Item) error {
			return send(ctx, id, items)
		})
	}
	if p := c.policy(store); p != nil {
		_, err = resiliency.Do(ctx, p, op)
	} else {
		_, err = op(ctx)
	}
	if err != nil {
		cancel()
		release()
		return "", apierr.ConfigurationSubscribe(keys, store, err)
	}
	c.mu.Lock()
	c.subs[id] = &subscription{cancel: cancel, done: subCtx.Done()}
	c.mu.Unlock()
	// The store instance stays in use (not closed by a reload) while the
	// subscription lasts.
	context.AfterFunc(subCtx, func() {
		c.mu.Lock()
		delete(c.subs, id)
		c.mu.Unlock()
		release()
	})
	return id, nil
}

// Unsubscribe ends subscription id.
func (c *Configuration) Unsubscribe(id string) error {
	c.mu.Lock()
	sub, ok := c.subs[id]
	delete(c.subs, id)
	c.mu.Unlock()
	if !ok {
		return apierr.ConfigurationUnsubscribe(id, fmt.Errorf("subscription with id %s does not exist", id))
	}
	sub.cancel()
	return nil
}

// Done returns a channel closed when subscription id ends; closed already
// for an unknown ID.
func (c *Configuration) Done(id string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sub, ok := c.subs[id]; ok {
		return sub.done
	}
	closed := make(chan struct{})
	close(closed)
	return closed
}

// Close ends every subscription.
func (c *Configuration) Close() {
	c.mu.Lock()
	subs := c.subs
	c.subs = map[string]*subscription{}
	c.mu.Unlock()
	for _, sub := range subs {
		sub.cancel()
	}
}

// UseApp sets the app that HTTP subscriptions post changes to.
func (c *Configuration) UseApp(app App) {
	c.mu.Lock()
	c.app = app
	c.mu.Unlock()
}

// SubscribeApp subscribes for the app (the HTTP API's subscribe): each
// changed key is posted to the app at /configuration/<store>/<key> as
// {"id","items"}, under the store's inbound Resiliency policy; the
// subscription lasts until Unsubscribe or Close.
func (c *Configuration) SubscribeApp(store string, keys []string, md map[string]string) (string, error) {
	c.mu.Lock()
	app := c.app
	c.mu.Unlock()
	if app.HTTP == nil {
		return "", &apierr.Error{Code: "ERR_APP_CHANNEL_NIL", HTTPStatus: http.StatusInternalServerError, GRPCCode: codes.Internal,
			Message: "app channel is not initialized. cannot subscribe to configuration updates"}
	}
	return c.Subscribe(context.Background(), store, keys, md, func(ctx context.Context, id string, items map[string]*configuration.Item) error {
		body, err := json.Marshal(struct {
			ID    string                         `json:"id"`
			Items map[string]*configuration.Item `json:"items"`
		}{id, items})
		if err != nil {
			return err
		}
		var p *resiliency.Policy
		if c.cfg.Resiliency != nil {
			p = c.cfg.Resiliency().ForComponentInbound(store, resiliency.Configuration)
		}
		for key := range items {
			call := func(ctx context.Context) (struct{}, error) {
				resp, err := app.HTTP.Invoke(ctx, appRequest("configuration/"+store+"/"+key, commonv1.HTTPExtension_POST, body, nil))
				if err != nil {
					return struct{}{}, err
				}
				_ = resp.Body.Close()
				if code := resp.Message.GetStatus().GetCode(); code != http.StatusOK {
					return struct{}{}, fmt.Errorf("error sending configuration item to application, status %d", code)
				}
				return struct{}{}, nil
			}
			if p != nil {
				_, err = resiliency.Do(ctx, p, call)
			} else {
				_, err = call(ctx)
			}
			if err != nil {
				c.log.Error("error sending configuration item to the app", "store", store, "key", key, "error", err)
			}
		}
		return nil
	})
}
