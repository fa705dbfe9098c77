package proxy

import (
	"context"

	"github.com/tandemrun/tandem/proxy/apphealth"
)

// runInputBindings delivers input binding events once the app listens,
// only while it is healthy when health probes are on (as daprd starts and
// stops reading its bindings with the app's health).
func (s *Sidecar) runInputBindings(ctx context.Context) error {
	b := s.o.APIs.Bindings
	if b == nil || s.o.App.api().HTTP == nil && s.o.App.api().GRPC == nil {
		return nil
	}
	if !s.appReady.Load() && !s.waitForApp(ctx) {
		return nil
	}
	if h := s.o.App.healthChecker(); h != nil {
		s.whileHealthy(ctx, h, "input bindings", func(ctx context.Context) error { return b.Run(ctx, s.o.App.api()) })
		return nil
	}
	return b.Run(ctx, s.o.App.api())
}

// whileHealthy runs run while the app is healthy until ctx ends,
// cancelling it when the app turns unhealthy and running it again once
// the app is healthy.
func (s *Sidecar) whileHealthy(ctx context.Context, health *apphealth.Checker, what string, run func(context.Context) error) {
	for {
		healthy, changed := health.Watch()
		if !healthy {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				continue
			}
		}
		runCtx, cancel := context.WithCancel(ctx)
		unhealthy := health.Unhealthy()
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := run(runCtx); err != nil {
				s.log.Error(what+" stopped", "error", err)
			}
		}()
		select {
		case <-ctx.Done():
		case <-unhealthy:
			s.log.Info("app is unhealthy: " + what + " paused until it is healthy again")
		}
		cancel()
		<-done
		if ctx.Err() != nil {
			return
		}
	}
}

// runJobs lets the app take its triggered jobs once it listens, only while
// it is healthy when health probes are on (daprd opens and closes its job
// streams with the app's health).
func (s *Sidecar) runJobs(ctx context.Context) error {
	j := s.o.APIs.Jobs
	if !j.Enabled() || s.o.App.api().HTTP == nil && s.o.App.api().GRPC == nil {
		return nil
	}
	if !s.appReady.Load() && !s.waitForApp(ctx) {
		return nil
	}
	if h := s.o.App.healthChecker(); h != nil {
		s.whileHealthy(ctx, h, "scheduler jobs", func(ctx context.Context) error { return j.Deliver(ctx, s.o.App.api()) })
		return nil
	}
	return j.Deliver(ctx, s.o.App.api())
}
