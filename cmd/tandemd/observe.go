package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/observe"
)

// observability builds metrics, tracing and API logging from the flags and
// the Configuration. The returned stop flushes buffered spans.
func observability(ctx context.Context, o *Options, cfg *config.Configuration, reg *prometheus.Registry, log *slog.Logger) (observe.Hooks, *observe.Metrics, func(), error) {
	var m *observe.Metrics
	if o.MetricsEnabled && cfg.MetricsEnabled() {
		var err error
		m, err = observe.NewMetrics(reg, observe.MetricsOptionsFromConfig(o.AppID, o.MetricsNamespace, cfg.Spec.Metrics))
		if err != nil {
			return observe.Hooks{}, nil, nil, err
		}
	}

	topts, err := observe.TracingOptionsFromConfig(o.AppID, cfg, os.Getenv, os.Stdout)
	if err != nil {
		return observe.Hooks{}, nil, nil, err
	}
	topts.Log = log.With("component", "tracing")
	tr, err := observe.NewTracing(ctx, topts)
	if err != nil {
		return observe.Hooks{}, nil, nil, fmt.Errorf("tracing: %w", err)
	}
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("flush traces on shutdown", "error", err)
		}
	}

	apiLogging := cfg.Spec.Logging.APILogging.Enabled
	if o.EnableAPILogging != nil {
		apiLogging = *o.EnableAPILogging
	}
	var al *observe.APILogger
	if apiLogging {
		al = observe.NewAPILogger(observe.APILogOptions{
			Log:              log.With("component", "api"),
			ObfuscateURLs:    cfg.Spec.Logging.APILogging.ObfuscateURLs,
			OmitHealthChecks: cfg.Spec.Logging.APILogging.OmitHealthChecks,
		})
	}
	return observe.NewHooks(m, tr, al), m, stop, nil
}
