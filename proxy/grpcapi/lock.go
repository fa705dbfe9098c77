package grpcapi

import (
	"context"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/tandemrun/tandem/proxy/apierr"
)

// TryLockAlpha1 takes a distributed lock.
func (a *API) TryLockAlpha1(ctx context.Context, in *runtimev1.TryLockRequest) (*runtimev1.TryLockResponse, error) {
	if a.cfg.Lock == nil {
		return a.UnimplementedDaprServer.TryLockAlpha1(ctx, in)
	}
	out, err := a.cfg.Lock.TryLock(ctx, in)
	return out, apierr.GRPC(err)
}

// UnlockAlpha1 releases a distributed lock.
func (a *API) UnlockAlpha1(ctx context.Context, in *runtimev1.UnlockRequest) (*runtimev1.UnlockResponse, error) {
	if a.cfg.Lock == nil {
		return a.UnimplementedDaprServer.UnlockAlpha1(ctx, in)
	}
	out, err := a.cfg.Lock.Unlock(ctx, in)
	return out, apierr.GRPC(err)
}
