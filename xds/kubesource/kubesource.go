// Package kubesource is the xDS server's source of apps on Kubernetes: the
// EndpointSlices of the headless <app-id>-dapr Services the operator keeps,
// followed by watch (internal/endpointslices), so a pod that becomes ready
// or goes away reaches the xDS clients as soon as the API server says so.
package kubesource

import (
	"context"
	"log/slog"
	"strings"

	"github.com/tandemrun/tandem/internal/endpointslices"
	"github.com/tandemrun/tandem/xds"
)

// Defaults: the Service suffix and port name Dapr's operator and injector
// use.
const (
	ServiceSuffix = "-dapr"
	PortName      = "dapr-internal"
)

// Options configure a Source.
type Options struct {
	Client endpointslices.API
	// Namespace limits the source to one namespace; empty means all.
	Namespace string
	Log       *slog.Logger
}

// Source follows the <app-id>-dapr Services' EndpointSlices.
type Source struct {
	w       *endpointslices.Watcher
	changed chan struct{}
}

var _ xds.Source = (*Source)(nil)

// New returns a Source; Run does the work.
func New(o Options) *Source {
	s := &Source{changed: make(chan struct{}, 1)}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s.w = endpointslices.New(endpointslices.Options{
		Client: o.Client, Namespace: o.Namespace, Port: PortName, Log: log.With("component", "xds.kubernetes"),
		OnChange: func(k endpointslices.Key) {
			if !strings.HasSuffix(k.Service, ServiceSuffix) {
				return
			}
			select {
			case s.changed <- struct{}{}:
			default:
			}
		},
	})
	return s
}

// Run lists and watches until ctx ends.
func (s *Source) Run(ctx context.Context) error { return s.w.Run(ctx) }

// Changed receives after an app's endpoints changed.
func (s *Source) Changed() <-chan struct{} { return s.changed }

// Apps returns every <app-id>-dapr Service's endpoints.
func (s *Source) Apps() []xds.App {
	var apps []xds.App
	for _, k := range s.w.Services() {
		id, ok := strings.CutSuffix(k.Service, ServiceSuffix)
		if !ok || id == "" {
			continue
		}
		eps, ok := s.w.Endpoints(k)
		if !ok {
			continue
		}
		app := xds.App{ID: id, Namespace: k.Namespace}
		for _, e := range eps {
			if e.Port == 0 {
				continue
			}
			app.Endpoints = append(app.Endpoints, xds.Endpoint{Host: e.Address, Port: uint32(e.Port), Health: health(e)})
		}
		apps = append(apps, app)
	}
	return apps
}

func health(e endpointslices.Endpoint) xds.Health {
	switch {
	case e.Ready && !e.Terminating:
		return xds.Healthy
	case e.Serving && e.Terminating:
		return xds.Draining
	}
	return xds.Unhealthy
}
