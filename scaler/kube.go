package scaler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/tandemrun/tandem/internal/endpointslices"
)

// SidecarPortName is the port of the `<app-id>-dapr` Service (and so of
// its EndpointSlices) that carries the sidecars' HTTP API.
const SidecarPortName = "dapr-http"

// ServiceName is the headless Service the operator makes for an app's
// pods (operator/services.ServiceName; repeated here because the scaler
// imports no control-plane package).
func ServiceName(appID string) string { return appID + "-dapr" }

// EndpointSlices finds an app's sidecars on Kubernetes through the API
// server: the endpoints of the EndpointSlices of its `<app-id>-dapr`
// Service, which w lists and watches (w's Options.Port should be
// SidecarPortName). Each serving endpoint is asked at its address and
// port, or at port when port is above 0 (3501: the sidecars' public
// health and metadata port, which daprd's injector opens on every
// interface while the API port listens on loopback).
//
// Unlike DNS, the answer holds no stale record and needs no cluster DNS;
// a Service with no slices, or slices with no serving endpoint, means no
// replica (scaled to zero).
func EndpointSlices(w *endpointslices.Watcher, port int) Finder {
	return FinderFunc(func(ctx context.Context, appID, namespace string) ([]string, error) {
		if namespace == "" {
			return nil, fmt.Errorf("the sidecars of %q: no namespace (the ScaledObject's, or scalerMetadata namespace)", appID)
		}
		if !w.Synced() {
			select {
			case <-w.Ready():
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		eps, ok := w.Endpoints(endpointslices.Key{Namespace: namespace, Service: ServiceName(appID)})
		if !ok {
			err := w.Err()
			if err == nil {
				err = errors.New("not listed yet")
			}
			return nil, fmt.Errorf("the EndpointSlices of %s/%s: %w", namespace, ServiceName(appID), err)
		}
		var out []string
		for _, e := range eps {
			p := int(e.Port)
			if port > 0 {
				p = port
			}
			// A pod that no longer serves (stopping, or never ready) has no
			// figures worth waiting for; one terminating but still serving
			// may hold deliveries in flight, so it is asked.
			if !e.Serving || p == 0 {
				continue
			}
			out = append(out, "http://"+net.JoinHostPort(e.Address, strconv.Itoa(p)))
		}
		return out, nil
	})
}
