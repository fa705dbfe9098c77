package grpcapi

import (
	"context"
	"fmt"
	"sync"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/tandemrun/tandem/components/configuration"
	"github.com/tandemrun/tandem/proxy/apierr"
)

func configurationItems(items map[string]*configuration.Item) map[string]*commonv1.ConfigurationItem {
	out := make(map[string]*commonv1.ConfigurationItem, len(items))
	for k, v := range items {
		out[k] = &commonv1.ConfigurationItem{Value: v.Value, Version: v.Version, Metadata: v.Metadata}
	}
	return out
}

// GetConfiguration reads configuration items.
func (a *API) GetConfiguration(ctx context.Context, in *runtimev1.GetConfigurationRequest) (*runtimev1.GetConfigurationResponse, error) {
	if a.cfg.Configuration == nil {
		return a.UnimplementedDaprServer.GetConfiguration(ctx, in)
	}
	items, err := a.cfg.Configuration.Get(ctx, in.GetStoreName(), in.GetKeys(), in.GetMetadata())
	if err != nil {
		return &runtimev1.GetConfigurationResponse{}, apierr.GRPC(err)
	}
	return &runtimev1.GetConfigurationResponse{Items: configurationItems(items)}, nil
}

// GetConfigurationAlpha1 is GetConfiguration under its alpha name.
func (a *API) GetConfigurationAlpha1(ctx context.Context, in *runtimev1.GetConfigurationRequest) (*runtimev1.GetConfigurationResponse, error) {
	return a.GetConfiguration(ctx, in)
}

// SubscribeConfiguration sends the subscription's ID first, then every
// change, until the caller disconnects, UnsubscribeConfiguration names the
// ID, or the sidecar stops.
func (a *API) SubscribeConfiguration(in *runtimev1.SubscribeConfigurationRequest, stream runtimev1.Dapr_SubscribeConfigurationServer) error {
	if a.cfg.Configuration == nil {
		return a.UnimplementedDaprServer.SubscribeConfiguration(in, stream)
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	// Changes wait until the ID has been sent; sends are one at a time.
	var mu sync.Mutex
	mu.Lock()
	id, err := a.cfg.Configuration.Subscribe(ctx, in.GetStoreName(), in.GetKeys(), in.GetMetadata(),
		func(_ context.Context, id string, items map[string]*configuration.Item) error {
			mu.Lock()
			defer mu.Unlock()
			return stream.Send(&runtimev1.SubscribeConfigurationResponse{Id: id, Items: configurationItems(items)})
		})
	if err != nil {
		mu.Unlock()
		return apierr.GRPC(err)
	}
	err = stream.Send(&runtimev1.SubscribeConfigurationResponse{Id: id})
	mu.Unlock()
	if err != nil {
		_ = a.cfg.Configuration.Unsubscribe(id)
		return err
	}
	done := a.cfg.Configuration.Done(id)
	select {
	case <-ctx.Done():
	case <-done:
	case <-a.closing:
	}
	_ = a.cfg.Configuration.Unsubscribe(id)
	return nil
}

// SubscribeConfigurationAlpha1 is SubscribeConfiguration under its alpha
// name.
func (a *API) SubscribeConfigurationAlpha1(in *runtimev1.SubscribeConfigurationRequest, stream runtimev1.Dapr_SubscribeConfigurationAlpha1Server) error {
	return a.SubscribeConfiguration(in, stream.(runtimev1.Dapr_SubscribeConfigurationServer))
}

// UnsubscribeConfiguration ends a subscription by ID (deprecated in Dapr:
// disconnecting does the same).
func (a *API) UnsubscribeConfiguration(ctx context.Context, in *runtimev1.UnsubscribeConfigurationRequest) (*runtimev1.UnsubscribeConfigurationResponse, error) {
	if a.cfg.Configuration == nil {
		return a.UnimplementedDaprServer.UnsubscribeConfiguration(ctx, in)
	}
	if err := a.cfg.Configuration.Unsubscribe(in.GetId()); err != nil {
		return &runtimev1.UnsubscribeConfigurationResponse{Ok: false, Message: fmt.Sprintf("failed to unsubscribe to configuration request %s: subscription does not exist", in.GetId())}, nil
	}
	return &runtimev1.UnsubscribeConfigurationResponse{Ok: true}, nil
}

// UnsubscribeConfigurationAlpha1 is UnsubscribeConfiguration under its
// alpha name.
func (a *API) UnsubscribeConfigurationAlpha1(ctx context.Context, in *runtimev1.UnsubscribeConfigurationRequest) (*runtimev1.UnsubscribeConfigurationResponse, error) {
	return a.UnsubscribeConfiguration(ctx, in)
}
