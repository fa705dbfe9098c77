package xds

import (
	"cmp"
	"context"
	"slices"
)

// Health is an endpoint's health as xDS reports it.
type Health int

// Endpoint health states.
const (
	// Healthy endpoints take calls.
	Healthy Health = iota
	// Draining endpoints finish their calls but take no new ones (a
	// terminating pod).
	Draining
	// Unhealthy endpoints are listed but take no calls (a stale registry
	// row, a pod that is not ready).
	Unhealthy
)

// Endpoint is one sidecar's internal gRPC (mTLS) address.
type Endpoint struct {
	Host   string
	Port   uint32
	Health Health
}

// App is one app ID in one namespace and its sidecars.
type App struct {
	ID        string
	Namespace string
	Endpoints []Endpoint
}

// Source tells which sidecars exist. Implementations push: Changed
// delivers (coalesced) after the set of Apps changed.
type Source interface {
	// Run keeps the source current until ctx ends.
	Run(ctx context.Context) error
	// Apps returns the current apps; it may be called at any time, also
	// before the first change.
	Apps() []App
	// Changed receives after Apps changed.
	Changed() <-chan struct{}
}

// SortApps orders apps by namespace and ID, and each app's endpoints by
// address, so equal sets compare equal.
func SortApps(apps []App) {
	for i := range apps {
		slices.SortFunc(apps[i].Endpoints, func(a, b Endpoint) int {
			return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Port, b.Port))
		})
	}
	slices.SortFunc(apps, func(a, b App) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.ID, b.ID))
	})
}

// EqualApps reports whether two sorted app lists are the same.
func EqualApps(a, b []App) bool {
	return slices.EqualFunc(a, b, func(x, y App) bool {
		return x.ID == y.ID && x.Namespace == y.Namespace && slices.Equal(x.Endpoints, y.Endpoints)
	})
}
