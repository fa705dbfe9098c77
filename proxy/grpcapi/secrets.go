package grpcapi

import (
	"context"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/tandemrun/tandem/proxy/apierr"
)

// GetSecret returns one secret.
func (a *API) GetSecret(ctx context.Context, in *runtimev1.GetSecretRequest) (*runtimev1.GetSecretResponse, error) {
	if a.cfg.Secrets == nil {
		return a.UnimplementedDaprServer.GetSecret(ctx, in)
	}
	data, err := a.cfg.Secrets.Get(ctx, in.GetStoreName(), in.GetKey(), in.GetMetadata())
	if err != nil {
		return nil, apierr.GRPC(err)
	}
	return &runtimev1.GetSecretResponse{Data: data}, nil
}

// GetBulkSecret returns every secret secrets.scopes allows.
func (a *API) GetBulkSecret(ctx context.Context, in *runtimev1.GetBulkSecretRequest) (*runtimev1.GetBulkSecretResponse, error) {
	if a.cfg.Secrets == nil {
		return a.UnimplementedDaprServer.GetBulkSecret(ctx, in)
	}
	data, err := a.cfg.Secrets.BulkGet(ctx, in.GetStoreName(), in.GetMetadata())
	if err != nil {
		return nil, apierr.GRPC(err)
	}
	out := &runtimev1.GetBulkSecretResponse{Data: make(map[string]*runtimev1.SecretResponse, len(data))}
	for name, v := range data {
		out.Data[name] = &runtimev1.SecretResponse{Secrets: v}
	}
	return out, nil
}
