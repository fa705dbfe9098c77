package api

import (
	"context"
	"errors"
	"log/slog"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/lock"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/resiliency"
)

// LockConfig is what the distributed lock API serves with.
type LockConfig struct {
	Registry *components.Registry[*lock.Instance]
	// AppID prefixes lock keys (keyPrefix appid, the default).
	AppID string
	// Resiliency, if set, returns the policies in effect: calls run under
	// the store's outbound policy.
	Resiliency func() *resiliency.Set
	Log        *slog.Logger
}

// Lock is the distributed lock API (v1.0-alpha1). It is safe for
// concurrent use.
type Lock struct {
	cfg LockConfig
	log *slog.Logger
}

// NewLock returns the lock API for cfg.
func NewLock(cfg LockConfig) *Lock {
	if cfg.Registry == nil {
		cfg.Registry = components.NewRegistry[*lock.Instance]()
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Lock{cfg: cfg, log: log.With("component", "lock")}
}

type lockRequest interface {
	GetResourceId() string
	GetLockOwner() string
	GetStoreName() string
}

// store validates req as daprd does and takes its store for the call.
func (l *Lock) store(req lockRequest) (*lock.Instance, func(), string, error) {
	if len(l.cfg.Registry.Names()) == 0 {
		return nil, nil, "", apierr.LockStoresNotConfigured()
	}
	if req.GetResourceId() == "" {
		return nil, nil, "", apierr.LockRequestField("ResourceId is empty in lock store %s", req.GetStoreName())
	}
	if req.GetLockOwner() == "" {
		return nil, nil, "", apierr.LockRequestField("LockOwner is empty in lock store %s", req.GetStoreName())
	}
	inst, release, err := l.cfg.Registry.Acquire(req.GetStoreName())
	if err != nil {
		l.log.Debug("lock store unavailable", "store", req.GetStoreName(), "error", err)
		return nil, nil, "", apierr.LockStoreNotFound(req.GetStoreName())
	}
	key, err := inst.Prefix.KeyOf(req.GetResourceId(), req.GetStoreName(), l.cfg.AppID)
	if err != nil {
		release()
		return nil, nil, "", err
	}
	return inst, release, key, nil
}

func (l *Lock) policy(store string) *resiliency.Policy {
	if l.cfg.Resiliency == nil {
		return nil
	}
	return l.cfg.Resiliency().ForComponentOutbound(store, resiliency.Lock)
}

// TryLock takes a lock for its owner if it is free.
func (l *Lock) TryLock(ctx context.Context, req *runtimev1.TryLockRequest) (*runtimev1.TryLockResponse, error) {
	if req.GetExpiryInSeconds() <= 0 {
		return &runtimev1.TryLockResponse{}, apierr.LockRequestField("ExpiryInSeconds is not positive in lock store %s", req.GetStoreName())
	}
	inst, release, key, err := l.store(req)
	if err != nil {
		var ae *apierr.Error
		if errors.As(err, &ae) {
			return &runtimev1.TryLockResponse{}, err
		}
		return &runtimev1.TryLockResponse{}, apierr.TryLock(err)
	}
	defer release()
	op := func(ctx context.Context) (bool, error) {
		return inst.Store.TryLock(ctx, key, req.GetLockOwner(), req.GetExpiryInSeconds())
	}
	var ok bool
	if p := l.policy(req.GetStoreName()); p != nil {
		ok, err = resiliency.Do(ctx, p, op)
	} else {
		ok, err = op(ctx)
	}
	if err != nil {
		l.log.Debug("try lock failed", "store", req.GetStoreName(), "error", err)
		return &runtimev1.TryLockResponse{}, apierr.TryLock(err)
	}
	return &runtimev1.TryLockResponse{Success: ok}, nil
}

// Unlock releases a lock its owner holds.
func (l *Lock) Unlock(ctx context.Context, req *runtimev1.UnlockRequest) (*runtimev1.UnlockResponse, error) {
	internal := &runtimev1.UnlockResponse{Status: runtimev1.UnlockResponse_INTERNAL_ERROR}
	inst, release, key, err := l.store(req)
	if err != nil {
		var ae *apierr.Error
		if errors.As(err, &ae) {
			return internal, err
		}
		return internal, apierr.Unlock(err)
	}
	defer release()
	op := func(ctx context.Context) (lock.UnlockStatus, error) {
		return inst.Store.Unlock(ctx, key, req.GetLockOwner())
	}
	var st lock.UnlockStatus
	if p := l.policy(req.GetStoreName()); p != nil {
		st, err = resiliency.Do(ctx, p, op)
	} else {
		st, err = op(ctx)
	}
	if err != nil {
		l.log.Debug("unlock failed", "store", req.GetStoreName(), "error", err)
		return internal, apierr.Unlock(err)
	}
	return &runtimev1.UnlockResponse{Status: runtimev1.UnlockResponse_Status(st)}, nil
}
