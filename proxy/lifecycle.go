package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/apphealth"
)

// AppHealthCheck configures app health probes (--enable-app-health-check).
type AppHealthCheck struct {
	Path      string // HTTP apps; default /healthz
	Interval  time.Duration
	Timeout   time.Duration
	Threshold int
}

// errAppUnhealthy is daprd's answer to a call for an unhealthy app.
const errAppUnhealthy = "app is not in a healthy state"

// Blocking shutdown log lines, as daprd writes them.
const (
	logBlockExpired   = "Block shutdown period expired, entering shutdown..."
	logBlockUnhealthy = "App reported unhealthy, entering shutdown..."
)

// CheckHealth turns on health probes of the app, before the app is handed
// to the invoker and the Sidecar: from then on calls to it fail while it is
// unhealthy, and the Sidecar runs subscriptions only while it is healthy.
// The returned checker's Run probes; run it as a task that outlives the
// Sidecar's (probes go on through a blocking shutdown). It is nil when
// there is no app.
func (a *App) CheckHealth(hc AppHealthCheck, log *slog.Logger) *apphealth.Checker {
	var probe apphealth.Probe
	switch {
	case a == nil:
		return nil
	case a.HTTP != nil:
		path := hc.Path
		if path == "" {
			path = "/healthz"
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		probe = apphealth.HTTPProbe(&http.Client{Transport: a.HTTP.Client().Transport}, a.HTTP.BaseURL()+path)
	case a.GRPC != nil:
		probe = apphealth.GRPCProbe(a.GRPC.Conn())
	default:
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a.health = apphealth.New(apphealth.Config{
		Probe: probe, Interval: hc.Interval, Timeout: hc.Timeout, Threshold: hc.Threshold,
		Log: log.With("component", "apphealth"),
	})
	return a.health
}

// healthGated is the app as invocations reach it when health probes are
// on: while the app is unhealthy, calls fail at once with daprd's error.
type healthGated struct {
	next   invoke.AppChannel
	health *apphealth.Checker
}

func (h healthGated) Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error) {
	if !h.health.Healthy() {
		return nil, status.Error(codes.Internal, errAppUnhealthy)
	}
	return h.next.Invoke(ctx, req)
}

// subscribeWhileHealthy runs the pub/sub subscriptions while the app is
// healthy until ctx ends, as daprd starts and stops them with the app's
// health; the first time the app is healthy, its configuration is read
// first.
func (s *Sidecar) subscribeWhileHealthy(ctx context.Context, health *apphealth.Checker) {
	s.whileHealthy(ctx, health, "pub/sub subscriptions", func(ctx context.Context) error {
		s.readAppConfig(ctx) // once, the first time the app is healthy
		if s.o.APIs.PubSub == nil {
			<-ctx.Done()
			return nil
		}
		return s.o.APIs.PubSub.Run(ctx, s.o.App.api())
	})
}

// blockShutdown keeps the APIs serving after a terminate signal (ctx
// ended), with the subscriptions stopped, until d elapses or the app
// reports unhealthy (daprd's blocking shutdown), then calls stop. It
// returns early, without logging, when done ends first.
func (s *Sidecar) blockShutdown(ctx, done context.Context, d time.Duration, stop func()) {
	select {
	case <-ctx.Done():
	case <-done.Done():
		return
	}
	defer stop()
	s.log.Info(fmt.Sprintf("Blocking graceful shutdown for %s or until app reports unhealthy...", d))
	var unhealthy <-chan struct{}
	switch {
	case s.o.App.healthChecker() != nil:
		unhealthy = s.o.App.healthChecker().Unhealthy()
	case !s.appReady.Load():
		ch := make(chan struct{})
		close(ch)
		unhealthy = ch
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		s.log.Info(logBlockExpired)
	case <-unhealthy:
		s.log.Info(logBlockUnhealthy)
	case <-done.Done():
	}
}
