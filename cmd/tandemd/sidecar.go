package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/resolve/resolvers"
	"github.com/tandemrun/tandem/proxy"
	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/proxy/resilient"
	"github.com/tandemrun/tandem/resiliency"
	sentryclient "github.com/tandemrun/tandem/sentry/client"
)

// defaultResolver is daprd's self-hosted default name resolution.
const defaultResolver = "mdns"

// resolveCacheTTL bounds how stale a resolved address list may be.
const resolveCacheTTL = 2 * time.Second

func runSidecar(ctx context.Context, o *Options, log *slog.Logger) error {
	for _, ig := range o.Ignored {
		log.Info("flag accepted but ignored: Tandem does not implement this feature yet", "flag", ig)
	}
	cfg, err := config.LoadFiles(os.Getenv, o.ConfigPaths...)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		log.Warn("configuration", "warning", w.String())
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var src *identity.Source
	if o.EnableMTLS {
		var err error
		src, err = startIdentity(ctx, o, cfg, reg, log)
		if err != nil {
			return err
		}
		if src == nil { // ctx ended while waiting for sentry
			return nil
		}
	} else {
		log.Warn("mTLS is disabled: sidecar-to-sidecar traffic is plaintext and callers are not authenticated; pass --enable-mtls with --sentry-address to turn it on")
	}

	if o.EnableProfiling {
		if _, err := startProfiling(ctx, o.ListenAddresses, o.ProfilePort, log.With("component", "profiling")); err != nil {
			return err
		}
	}

	live, err := newLiveConfig(cfg, o.AppProtocol, log)
	if err != nil {
		return err
	}
	go live.watch(ctx, o.ConfigPaths, reloadInterval)

	obs, metrics, stopTracing, err := observability(ctx, o, cfg, reg, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	if obs, err = withAPIAccess(obs, cfg.Spec.API, log); err != nil {
		return err
	}

	rc := loadComponents(o, log)
	defer rc.Close()
	// Resiliency files come from the resource folders and follow their
	// hot reload; every call looks up the policies in effect.
	resLog := log.With("component", "resiliency")
	policies := resilient.NewPolicies(o.AppID, resLog,
		resiliency.WithLogger(resLog), resiliency.WithHooks(metrics.ResiliencyHooks()))
	rc.useResiliency(policies, resLog)
	stateAPI := api.NewState(api.StateConfig{
		Registry: rc.states.Registry(), AppID: o.AppID, Namespace: o.Namespace,
		Metadata: rc.Metadata, Log: log.With("component", "state"), Resiliency: policies.Set,
	})
	secretsAPI := api.NewSecrets(api.SecretsConfig{
		Registry: rc.secrets.Registry(), Allowed: live.secretAllowed, Log: log.With("component", "secrets"),
	})
	pubsubAPI := api.NewPubSub(api.PubSubConfig{
		Registry: rc.pubsubs.Registry(), AppID: o.AppID, Namespace: o.Namespace,
		Declarative: rc.Subscriptions, Log: log, Resiliency: policies.Set, Scopes: rc.topicScopes.Of,
	})
	rc.onChange = pubsubAPI.Reload
	go rc.watch(ctx, o.ResourcesPaths, o.AppID)

	nr := cfg.Spec.NameResolution
	component := nr.Component
	if component == "" {
		component = defaultResolver
	}
	nrConfig, _ := nr.Configuration.(map[string]any)
	// ejecting wraps name resolution (set by NewResolver, which proxy.New
	// calls before WrapInvoker): it takes failing instances out of
	// rotation and learns from the invoker decorator which instance
	// served each call.
	var ejecting *resilient.Resolver
	onEject, onReturn := metrics.EjectorHooks()
	ejection := resiliency.EjectorConfig{
		OnEject: func(addr string, d time.Duration) {
			resLog.Warn("instance keeps failing; taken out of rotation", "address", addr, "for", d.String())
			if onEject != nil {
				onEject(addr, d)
			}
		},
		OnReturn: func(addr string) {
			resLog.Info("instance back in rotation", "address", addr)
			if onReturn != nil {
				onReturn(addr)
			}
		},
	}
	s, err := proxy.New(proxy.Options{
		AppID: o.AppID, Namespace: o.Namespace, RuntimeVersion: version,
		AppPort: o.AppPort, AppProtocol: o.AppProtocol, AppChannelAddress: o.AppChannelAddress, AppAPIToken: o.AppAPIToken,
		ListenAddresses: o.ListenAddresses, HTTPPort: o.HTTPPort, GRPCPort: o.GRPCPort,
		InternalListenAddress: o.InternalGRPCListenAddress, InternalPort: o.InternalGRPCPort, HostIP: o.HostIP,
		MaxRequestBodySize: int64(o.MaxRequestBodySize), ReadBufferSize: o.ReadBufferSize, APIToken: o.APIToken,
		Identity: src, Authorize: live.authorize, AuthorizeGRPC: live.authorizeGRPC,
		NewResolver: func(self resolve.Instance) (resolve.Resolver, error) {
			r, err := resolvers.New(component, resolve.Config{Self: self, Configuration: nrConfig, Log: log.With("component", "nameresolution")})
			if err != nil {
				return nil, err
			}
			ejecting = resilient.NewResolver(resolve.NewCached(r, resolveCacheTTL), resilient.ResolverOptions{Ejection: ejection})
			return ejecting, nil
		},
		WrapInvoker: func(next invoke.Invoker) invoke.Invoker {
			return resilient.NewInvoker(resilient.InvokerOptions{Next: next, Policies: policies.Set, Resolver: ejecting, Log: resLog})
		},
		State: stateAPI, Secrets: secretsAPI, PubSub: pubsubAPI, Subscriptions: pubsubAPI.Subscriptions,
		Components:           rc.Registered,
		Extended:             rc.Extended,
		MetricsListenAddress: o.MetricsListenAddress, MetricsPort: metricsPort(o), Metrics: reg,
		HTTPMiddleware: obs.HTTPMiddleware, GRPCServerOptions: obs.GRPCServerOptions,
		InternalServerOptions: obs.InternalServerOptions, TransportDialOptions: obs.DialOptions,
		AppHTTPTransport: obs.AppHTTPTransport,
		GracefulShutdown: o.GracefulShutdown, Log: log,
	})
	if err != nil {
		return err
	}
	log.Info("name resolution", "component", component)
	return s.Run(ctx)
}

func metricsPort(o *Options) int {
	if !o.MetricsEnabled {
		return -1
	}
	return o.MetricsPort
}

// startIdentity obtains the first SVID from sentry (retrying until it
// answers or ctx ends) and keeps it renewed in the background.
func startIdentity(ctx context.Context, o *Options, cfg *config.Configuration, reg *prometheus.Registry, log *slog.Logger) (*identity.Source, error) {
	anchorsPEM := o.TrustAnchors
	if len(anchorsPEM) == 0 && o.TrustAnchorsFile != "" {
		b, err := os.ReadFile(o.TrustAnchorsFile)
		if err != nil {
			return nil, fmt.Errorf("read trust anchors file: %w", err)
		}
		anchorsPEM = b
	}
	anchors, err := sentryclient.ParseTrustAnchors(anchorsPEM)
	if err != nil {
		return nil, fmt.Errorf("trust anchors (DAPR_TRUST_ANCHORS or --trust-anchors-file): %w", err)
	}
	sentryID, err := sentryclient.SentryID(o.ControlPlaneTrustDomain, o.ControlPlaneNamespace)
	if err != nil {
		return nil, err
	}
	token := o.SentryToken
	if token == "" && o.SentryTokenFile != "" {
		b, err := os.ReadFile(o.SentryTokenFile)
		if err != nil {
			return nil, fmt.Errorf("read sentry token file: %w", err)
		}
		token = string(trimSpace(b))
	}
	// The anchors live in src from the start, so that sentry is verified
	// against the current ones after a root rotation.
	src := identity.NewSource()
	src.SetTrustAnchors(anchors)
	client, err := sentryclient.New(sentryclient.Config{Address: o.SentryAddress, CurrentTrustAnchors: src.TrustAnchors, SentryID: sentryID, Token: token})
	if err != nil {
		return nil, err
	}
	var issuer identity.Issuer = client
	if len(o.TrustAnchors) == 0 && o.TrustAnchorsFile != "" {
		// The watched file alone decides the anchors (as in Dapr);
		// without it they follow sentry's responses.
		issuer = identity.AnchorsFromFileOnly(client)
		go func() {
			_ = identity.WatchTrustAnchorsFile(ctx, o.TrustAnchorsFile, src, 0, log.With("component", "identity"), nil)
		}()
	}
	appID := o.AppID
	if o.SentryLocalIdentity != "" {
		appID = o.SentryLocalIdentity
	}
	id, err := identity.AppID(cfg.TrustDomain(), o.Namespace, appID)
	if err != nil {
		return nil, err
	}
	rotated := prometheus.NewCounter(prometheus.CounterOpts{Name: "dapr_runtime_mtls_workload_cert_rotated_total", Help: "Successful workload certificate issuances."})
	failed := prometheus.NewCounter(prometheus.CounterOpts{Name: "dapr_runtime_mtls_workload_cert_rotated_fail_total", Help: "Failed workload certificate issuances."})
	expiry := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tandem_workload_cert_expiry_timestamp_seconds", Help: "Expiry of the current workload certificate (Unix seconds)."})
	reg.MustRegister(rotated, failed, expiry,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tandem_workload_cert_expiry_seconds", Help: "Seconds until the current workload certificate expires."}, func() float64 {
			if svid, err := src.GetX509SVID(); err == nil {
				return time.Until(svid.Certificates[0].NotAfter).Seconds()
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tandem_trust_anchors_expiry_seconds", Help: "Seconds until the first of the trust anchors expires."}, func() float64 {
			if t := identity.EarliestExpiry(src.TrustAnchors()); !t.IsZero() {
				return time.Until(t).Seconds()
			}
			return 0
		}))

	rot := &identity.Rotator{
		ID: id, Issuer: issuer, Source: src, Log: log.With("component", "identity"),
		OnRotate: func(s *x509svid.SVID) {
			rotated.Inc()
			expiry.Set(float64(s.Certificates[0].NotAfter.Unix()))
		},
		OnFailure: func(error) { failed.Inc() },
	}
	next, err := firstSVID(ctx, rot, o.SentryAddress, log)
	if err != nil || ctx.Err() != nil {
		_ = client.Close()
		return nil, err
	}
	svid, _ := src.GetX509SVID()
	log.Info("workload certificate issued", "spiffe_id", id.String(),
		"serial", svid.Certificates[0].SerialNumber.String(),
		"not_after", svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339))
	go func() {
		_ = rot.Run(ctx, next)
		_ = client.Close()
	}()
	return src, nil
}

func firstSVID(ctx context.Context, rot *identity.Rotator, addr string, log *slog.Logger) (time.Time, error) {
	wait := 500 * time.Millisecond
	for {
		next, err := rot.Renew(ctx)
		if err == nil {
			return next, nil
		}
		if ctx.Err() != nil {
			return time.Time{}, nil
		}
		log.Warn("cannot get a workload certificate from sentry yet; retrying (is sentry running at --sentry-address?)",
			"sentry_address", addr, "retry_in", wait.String(), "error", err)
		select {
		case <-ctx.Done():
			return time.Time{}, nil
		case <-time.After(wait):
		}
		if wait < 5*time.Second {
			wait *= 2
		}
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
