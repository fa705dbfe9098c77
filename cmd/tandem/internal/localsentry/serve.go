// Package localsentry runs the control plane of a Tandem home folder (the
// sentry CA, and actor placement beside it) as a background process and
// finds it again: Serve is the body of the hidden
// `tandem sentry` command, Ensure starts that command unless a healthy one
// is already running for the home folder.
//
// Placement serves the machine's sidecars (one replica, in memory) with an
// identity the local CA signs, so `tandem run` apps host and call actors.
// The same process serves xDS for proxyless gRPC apps over the machine's
// name-resolution registry (`tandem identity` names it in its bootstrap).
// The sentry uses the CA that `tandem init` wrote and admits only sidecars
// that present the home's join token. It exits by itself once no app has
// been running for IdleExit.
package localsentry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemrun/tandem/cmd/tandem/internal/home"
	"github.com/tandemrun/tandem/cmd/tandem/internal/registry"
	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/placement"
	"github.com/tandemrun/tandem/sentry/ca"
	"github.com/tandemrun/tandem/sentry/server"
	"github.com/tandemrun/tandem/sentry/validator"
	"github.com/tandemrun/tandem/xds"
	"github.com/tandemrun/tandem/xds/standalone"
)

// AppTrustDomain is the apps' SPIFFE trust domain in the home's
// Configuration (Dapr's default; the xDS server's SVID is in it).
const AppTrustDomain = "public"

// DefaultIdleExit is how long sentry stays up with no app running.
const DefaultIdleExit = 10 * time.Minute

// ServeOptions configure Serve.
type ServeOptions struct {
	// IdleExit: exit after this long with no live app record; 0 never.
	IdleExit time.Duration
	// WorkloadCertTTL of issued certificates; ca's default (24h) if zero.
	WorkloadCertTTL time.Duration
	Log             *slog.Logger
}

// Fingerprint returns the SHA-256 of the trust anchors file.
func Fingerprint(h *home.Home) (string, error) {
	b, err := os.ReadFile(h.TrustAnchors())
	if err != nil {
		return "", fmt.Errorf("read trust anchors: %w (run `tandem init`)", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Serve runs sentry for h on random loopback ports until ctx ends or it
// has been idle for o.IdleExit, and records itself in h.SentryFile().
func Serve(ctx context.Context, h *home.Home, o ServeOptions) error {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := h.Check(); err != nil {
		return err
	}
	bundle, err := ca.LoadBundle(ca.DefaultPaths(h.CertsDir()))
	if err != nil {
		return fmt.Errorf("load the local CA from %s: %w (run `tandem init --force` to regenerate it)", h.CertsDir(), err)
	}
	fp, err := Fingerprint(h)
	if err != nil {
		return err
	}
	authority, err := ca.New(bundle, ca.Options{WorkloadCertTTL: o.WorkloadCertTTL})
	if err != nil {
		return err
	}
	jt, err := validator.LoadJoinTokenFile(h.JoinTokenFile())
	if err != nil {
		return fmt.Errorf("join token: %w (run `tandem init --force`)", err)
	}
	grpcLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("sentry: listen: %w", err)
	}
	healthLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("sentry healthz: listen: %w", err)
	}
	reg := prometheus.NewRegistry()
	srv, err := server.New(server.Options{
		CA: authority,
		// Tandem sidecars name no validator (the default is used); daprd
		// with DAPR_SENTRY_TOKEN_FILE names JWKS.
		Validators:       map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator{sentryv1.SignCertificateRequest_JWKS: jt},
		DefaultValidator: sentryv1.SignCertificateRequest_JWKS,
		TrustDomain:      home.TrustDomain, Namespace: "default",
		Listener: grpcLis, Metrics: server.NewMetrics(reg), Log: log,
	})
	if err != nil {
		grpcLis.Close()
		healthLis.Close()
		return err
	}
	// Actor placement for the machine's sidecars, in this process: one
	// replica, always the leader, with the local CA's placement identity.
	placeLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		grpcLis.Close()
		healthLis.Close()
		return fmt.Errorf("placement: listen: %w", err)
	}
	placeSrc, renewPlacement, err := placementIdentity(authority, log)
	if err != nil {
		grpcLis.Close()
		healthLis.Close()
		placeLis.Close()
		return err
	}
	place := placement.New(placement.Options{
		NodeID: "local", Listener: placeLis, Source: placeSrc, Metrics: placement.NewMetrics(reg), Log: log.With("component", "placement"),
	})
	place.SetLeader(true)
	// The xDS server for proxyless gRPC apps (`tandem identity`), over the
	// same registry the sidecars register in, with an SVID of the apps'
	// trust domain from the local CA.
	xdsLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		grpcLis.Close()
		healthLis.Close()
		placeLis.Close()
		return fmt.Errorf("xds: listen: %w", err)
	}
	xdsSrc, renewXDS, err := localIdentity(authority, AppTrustDomain, xds.XDSServerAppID, log)
	if err != nil {
		grpcLis.Close()
		healthLis.Close()
		placeLis.Close()
		xdsLis.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/healthz", srv.Healthz())
	mux.Handle("/metrics", server.MetricsHandler(reg))

	// The servers answer before the record that points at them is saved.
	var plan task.Plan
	serving := plan.Stage("serve", 0)
	defer plan.Abort(ctx, log)
	serving.Add(task.Early(ctx, task.Task{Name: "ca service", Critical: true, Run: srv.Run}),
		task.Early(ctx, task.Task{Name: "healthz server", Critical: true, Run: func(ctx context.Context) error {
			return server.ServeHTTP(ctx, healthLis, mux)
		}}),
		task.Early(ctx, task.Task{Name: "placement", Critical: true, Run: place.Run}),
		task.Task{Name: "placement certificate", Critical: true, Run: renewPlacement},
		// Not critical: sentry and placement go on if xDS fails.
		task.Task{Name: "xds", Run: func(ctx context.Context) error {
			defer xdsLis.Close()
			return standalone.Run(ctx, standalone.Config{
				Registry: h.RegistryDB(), UpdateInterval: 2 * time.Second, ResourcesDirs: []string{h.ResourcesDir()},
				TrustDomain: AppTrustDomain, Identity: xdsSrc, Listener: xdsLis, Log: log.With("component", "xds"),
			})
		}},
		task.Task{Name: "xds certificate", Run: renewXDS})

	self := registry.NewProc(os.Getpid())
	rec := &registry.Sentry{
		Proc: self, Address: grpcLis.Addr().String(), HealthAddr: healthLis.Addr().String(),
		MetricsURL: "http://" + healthLis.Addr().String() + "/metrics", CA: fp, Started: time.Now().UTC(),
		PlacementAddress: placeLis.Addr().String(), XDSAddress: xdsLis.Addr().String(),
	}
	if err := os.MkdirAll(h.RunDir(), 0o700); err != nil {
		return err
	}
	if err := registry.SaveSentry(h.SentryFile(), rec); err != nil {
		return err
	}
	defer func() {
		if cur, err := registry.LoadSentry(h.SentryFile()); err == nil && cur.Proc == self {
			_ = os.Remove(h.SentryFile())
		}
	}()
	log.Info("local sentry listening", "address", rec.Address, "healthz", rec.HealthAddr, "placement", rec.PlacementAddress, "xds", rec.XDSAddress,
		"root_expires", authority.TrustAnchors()[0].NotAfter.UTC().Format(time.RFC3339), "idle_exit", o.IdleExit.String())
	if o.IdleExit > 0 {
		serving.Add(task.Task{Name: "idle exit", Critical: true, Run: func(ctx context.Context) error {
			if idle(ctx, registry.Dir(h.AppsDir()), o.IdleExit) {
				log.Info("no app has run for a while; sentry exits (the next `tandem run` starts it again)", "idle", o.IdleExit.String())
			}
			return nil
		}})
	}
	return plan.Run(ctx, log)
}

// idle waits until apps has had no live record for d, and reports whether
// it did before ctx ended.
func idle(ctx context.Context, apps registry.Dir, d time.Duration) bool {
	tick := min(d/4, 5*time.Second)
	last := time.Now()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		if list, _ := apps.List(); len(list) > 0 {
			last = time.Now()
			continue
		}
		if time.Since(last) >= d {
			return true
		}
	}
}
