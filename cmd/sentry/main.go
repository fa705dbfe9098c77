// Command sentry is Tandem's certificate authority, a drop-in for Dapr's
// self-hosted sentry: it accepts Dapr sentry's flags, reads or generates
// ca.crt, issuer.crt and issuer.key in --issuer-credentials, and serves
// dapr.proto.sentry.v1.CA/SignCertificate over TLS, /healthz and /metrics.
// With --jwt-enabled it also issues JWT SVIDs (jwt.key and jwks.json beside
// the CA files), and with --oidc-enabled serves OIDC discovery for them.
//
// Point daprd or tandemd at it with --sentry-address host:50001, the
// contents of ca.crt in DAPR_TRUST_ANCHORS, and --control-plane-trust-domain
// equal to sentry's --trust-domain.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tandemrun/tandem/internal/logging"
	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/sentry/ca"
	"github.com/tandemrun/tandem/sentry/jwtsvid"
	"github.com/tandemrun/tandem/sentry/kube"
	"github.com/tandemrun/tandem/sentry/oidc"
	"github.com/tandemrun/tandem/sentry/server"
	"github.com/tandemrun/tandem/sentry/validator"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	opts, err := ParseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "sentry:", err)
		return 2
	}
	if opts.Version {
		fmt.Fprintln(stdout, version)
		return 0
	}
	log := newLogger(opts, stdout)
	if opts.GenerateRootInto != "" {
		if err := generateRoot(opts, getenv); err != nil {
			log.Error("generate a new root", "error", err)
			return 1
		}
		log.Info("wrote a new root and issuer; append its ca.crt to the current one to start a rotation (docs/trust-anchor-rotation.md)",
			"folder", opts.GenerateRootInto)
		return 0
	}
	if err := serve(ctx, opts, log, getenv); err != nil {
		log.Error("sentry failed", "error", err)
		return 1
	}
	log.Info("sentry shut down gracefully")
	return 0
}

func newLogger(o *Options, out io.Writer) *slog.Logger {
	level, _ := logging.ParseLevel(o.LogLevel)
	return logging.New(out, level, o.LogAsJSON, "component", "sentry")
}

// serve wires the CA, validators, gRPC service, healthz and metrics, and
// runs them until ctx ends or one fails.
func serve(ctx context.Context, o *Options, log *slog.Logger, getenv func(string) string) error {
	kubernetesMode := strings.EqualFold(o.Mode, "kubernetes")
	log.Info("starting Tandem sentry certificate authority", "version", version, "mode", strings.ToLower(o.Mode))
	for _, name := range o.ignoredNames() {
		log.Warn("Dapr sentry flag accepted but ignored (not supported by Tandem's sentry)", "flag", "--"+name, "value", o.IgnoredDaprFlags[name])
	}
	namespace := getenv("NAMESPACE")
	if namespace == "" {
		namespace = "default"
	}

	mtls, err := loadMTLS(o)
	if err != nil {
		return err
	}

	paths := ca.PathsIn(o.CredentialsDir, o.RootCertFile, o.IssuerCertFile, o.IssuerKeyFile)
	genOpts := ca.GenerateOptions{TrustDomain: o.TrustDomain, Namespace: namespace, AllowedClockSkew: max(mtls.AllowedClockSkew, 0)}
	var km *kubeMode
	var bundle *ca.Bundle
	var generated bool
	if kubernetesMode {
		if km, err = newKubeMode(o, namespace); err != nil {
			return err
		}
		if bundle, generated, err = km.store.LoadOrGenerate(ctx, genOpts); err != nil {
			return fmt.Errorf("issuer credentials in secret %s/%s: %w", namespace, kube.TrustBundleName, err)
		}
	} else if bundle, generated, err = ca.LoadOrGenerate(paths, genOpts); err != nil {
		return fmt.Errorf("issuer credentials in %s: %w", o.CredentialsDir, err)
	}
	authority, err := ca.New(bundle, ca.Options{WorkloadCertTTL: mtls.WorkloadCertTTL, AllowedClockSkew: mtls.AllowedClockSkew})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := server.NewMetrics(reg)
	credsAttrs := []any{"trust_anchors_file", paths.RootCert, "issuer_cert_file", paths.IssuerCert, "issuer_key_file", paths.IssuerKey,
		"trust_anchors", len(authority.TrustAnchors()), "issuer_not_after", authority.Issuer().NotAfter.UTC().String()}
	if km != nil {
		credsAttrs = []any{"secret", namespace + "/" + kube.TrustBundleName, "trust_anchors", len(authority.TrustAnchors()),
			"issuer_not_after", authority.Issuer().NotAfter.UTC().String()}
	}
	if generated {
		metrics.IssuerChanged()
		log.Info("no issuer credentials found: generated a self-signed root and issuer and wrote them", credsAttrs...)
	} else {
		log.Info("using issuer credentials from files", credsAttrs...)
	}

	jwtIss, jwtOpts, err := jwtIssuer(ctx, o, km, mtls, log)
	if err != nil {
		return err
	}

	var vals map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator
	var def sentryv1.SignCertificateRequest_TokenValidator
	sentryID, err := ca.SentryID(o.TrustDomain, namespace)
	if err != nil {
		return err
	}
	configured, err := configuredValidators(mtls, sentryID.String(), log)
	if err != nil {
		return err
	}
	if km == nil {
		if vals, def, err = validators(o, configured, log); err != nil {
			return err
		}
	} else {
		if vals, err = km.validators(sentryID, namespace, log); err != nil {
			return err
		}
		maps.Copy(vals, configured)
		def = sentryv1.SignCertificateRequest_KUBERNETES
	}
	srv, err := server.New(server.Options{
		CA: authority, Validators: vals, DefaultValidator: def,
		TrustDomain: o.TrustDomain, Namespace: namespace,
		Address: net.JoinHostPort(o.ListenAddress, strconv.Itoa(o.Port)),
		JWT:     jwtIss,
		Metrics: metrics, Log: log,
	})
	if err != nil {
		return err
	}
	healthLis, err := net.Listen("tcp", net.JoinHostPort(o.HealthzAddress, strconv.Itoa(o.HealthzPort)))
	if err != nil {
		return fmt.Errorf("healthz: listen: %w (choose another --healthz-port)", err)
	}
	oidcSrv, err := oidcServer(o, jwtIss, log)
	if err != nil {
		_ = healthLis.Close()
		return err
	}
	var also []func() bool
	if km != nil {
		also = append(also, km.ready)
	}
	// Every task is critical: sentry stops, and says why, when any fails.
	serving := []task.Task{{Name: "ca service", Critical: true, Run: srv.Run}}
	if oidcSrv != nil {
		also = append(also, oidcSrv.Ready)
		serving = append(serving, task.Task{Name: "oidc server", Critical: true, Run: oidcSrv.Run})
	}
	serving = append(serving, task.Task{Name: "healthz server", Critical: true, Run: func(ctx context.Context) error {
		return server.ServeHTTP(ctx, healthLis, srv.Healthz(also...))
	}})
	var background []task.Task
	caOpts := ca.Options{WorkloadCertTTL: mtls.WorkloadCertTTL, AllowedClockSkew: mtls.AllowedClockSkew}
	if km != nil {
		var jwks []byte
		if jwtIss != nil {
			if jwks, err = jwtIss.Bundle().PublicJWKS(); err != nil {
				return err
			}
		}
		background = append(background, km.tasks(bundle, jwks, caOpts, srv.SetCA, log)...)
	} else if o.ReloadInterval > 0 {
		// A rotated root or issuer on disk takes effect without a restart.
		reloader := &ca.Reloader{
			Paths: paths, Interval: o.ReloadInterval, OnReload: srv.SetCA, Log: log,
			Options: ca.Options{WorkloadCertTTL: mtls.WorkloadCertTTL, AllowedClockSkew: mtls.AllowedClockSkew},
		}
		background = append(background, task.Task{Name: "ca files reload", Critical: true, Run: reloader.Run})
		if jwtIss != nil {
			// A rotated JWT signing key or key set takes effect without a
			// restart too (Dapr restarts its CA on any change).
			jr := &jwtsvid.Reloader{
				Paths: jwtsvid.PathsIn(o.CredentialsDir, o.JWT.KeyFile, o.JWT.JWKSFile), KeyID: o.JWT.KeyID,
				Interval: o.ReloadInterval, Log: log,
				OnReload: func(b *jwtsvid.Bundle) error {
					opts := jwtOpts
					opts.Bundle = b
					iss, err := jwtsvid.NewIssuer(opts)
					if err != nil {
						return err
					}
					jwks, err := b.PublicJWKS()
					if err != nil {
						return err
					}
					// The key set first, so verifiers can fetch the new key
					// before tokens signed with it arrive.
					if oidcSrv != nil {
						oidcSrv.SetKeys(jwks, iss.Algorithm())
					}
					srv.SetJWT(iss)
					return nil
				},
			}
			background = append(background, task.Task{Name: "jwt files reload", Critical: true, Run: jr.Run})
		}
	}
	attrs := []any{"grpc_address", srv.Addr().String(), "healthz_address", healthLis.Addr().String()}
	if o.EnableMetrics {
		metricsLis, err := net.Listen("tcp", net.JoinHostPort(o.MetricsAddress, o.MetricsPort))
		if err != nil {
			_ = healthLis.Close()
			return fmt.Errorf("metrics: listen: %w (choose another --metrics-port or --enable-metrics=false)", err)
		}
		serving = append(serving, task.Task{Name: "metrics server", Critical: true, Run: func(ctx context.Context) error {
			return server.ServeHTTP(ctx, metricsLis, server.MetricsHandler(reg))
		}})
		attrs = append(attrs, "metrics_address", metricsLis.Addr().String())
	}
	if oidcSrv != nil {
		attrs = append(attrs, "oidc_address", oidcSrv.Addr().String())
	}
	attrs = append(attrs, "sentry_spiffe_id", srv.ID().String(), "workload_cert_ttl", mtls.WorkloadCertTTL.String(),
		"config", mtls.Source, "daprd_hint", "DAPR_TRUST_ANCHORS=\"$(cat "+paths.RootCert+")\" daprd --sentry-address <host>:"+portOf(srv.Addr())+" --control-plane-trust-domain "+o.TrustDomain)
	log.Info("sentry listening", attrs...)
	return task.Run(ctx, log, task.Stage{Name: "serve", Tasks: serving}, task.Stage{Name: "background", Tasks: background})
}

// generateRoot writes a fresh root and issuer into --generate-root-into,
// refusing to overwrite existing files.
func generateRoot(o *Options, getenv func(string) string) error {
	namespace := getenv("NAMESPACE")
	if namespace == "" {
		namespace = "default"
	}
	paths := ca.DefaultPaths(o.GenerateRootInto)
	if _, err := ca.LoadBundle(paths); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s already holds CA files; choose an empty folder", o.GenerateRootInto)
	}
	b, err := ca.GenerateBundle(ca.GenerateOptions{TrustDomain: o.TrustDomain, Namespace: namespace})
	if err != nil {
		return err
	}
	return b.Write(paths)
}

func portOf(a net.Addr) string {
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return port
}

// configuredValidators builds the token validators the Configuration's
// spec.mtls.tokenValidators names (Dapr's "jwks"; others are reported and
// skipped).
func configuredValidators(mtls mtlsSettings, audience string, log *slog.Logger) (map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator, error) {
	out := map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator{}
	for _, v := range mtls.TokenValidators {
		if !strings.EqualFold(v.Name, "jwks") {
			log.Warn("token validator not supported by Tandem's sentry; skipped (jwks is, and --join-token-file)", "validator", v.Name)
			continue
		}
		opts, err := jwksOptions(v, audience)
		if err != nil {
			return nil, fmt.Errorf("configuration %s: %w", mtls.Source, err)
		}
		j, err := validator.NewJWKS(opts)
		if err != nil {
			return nil, fmt.Errorf("configuration %s: %w", mtls.Source, err)
		}
		log.Info("jwks token validator enabled: requests must carry a JWT for this sentry signed by a key of the set", "source", opts.Source, "audience", audience)
		out[sentryv1.SignCertificateRequest_JWKS] = j
	}
	return out, nil
}

// validators picks the join-token validator if a token file is given, else
// the validators of the Configuration (with no default: a request must
// name one, as in Dapr), else Dapr's self-hosted insecure validator, with a
// loud warning.
func validators(o *Options, configured map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator, log *slog.Logger) (map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator, sentryv1.SignCertificateRequest_TokenValidator, error) {
	if o.JoinTokenFile == "" && len(configured) > 0 {
		return configured, sentryv1.SignCertificateRequest_UNKNOWN, nil
	}
	if o.JoinTokenFile != "" {
		jt, err := validator.LoadJoinTokenFile(o.JoinTokenFile)
		if err != nil {
			return nil, 0, err
		}
		log.Info("join-token validator enabled: requests must carry a token from the file", "join_token_file", o.JoinTokenFile)
		// daprd sends a token read from DAPR_SENTRY_TOKEN_FILE with the JWKS
		// validator name; Tandem clients send UNKNOWN (the default).
		return map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator{sentryv1.SignCertificateRequest_JWKS: jt},
			sentryv1.SignCertificateRequest_JWKS, nil
	}
	log.Warn("!!! INSECURE: no token validator configured. As with Dapr's self-hosted sentry, ANY process that can reach " +
		"this port can obtain a certificate for ANY app ID. Start sentry with --join-token-file FILE (one token per line) " +
		"and give each sidecar its token (DAPR_SENTRY_TOKEN_FILE) to require a join token.")
	return map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator{sentryv1.SignCertificateRequest_INSECURE: validator.Insecure{}},
		sentryv1.SignCertificateRequest_INSECURE, nil
}

// jwtIssuer loads or generates the JWT signing key and key set beside the
// issuer credentials (files, or the trust bundle Secret) when --jwt-enabled.
func jwtIssuer(ctx context.Context, o *Options, km *kubeMode, mtls mtlsSettings, log *slog.Logger) (*jwtsvid.Issuer, jwtsvid.IssuerOptions, error) {
	var opts jwtsvid.IssuerOptions
	if !o.JWT.Enabled {
		return nil, opts, nil
	}
	var b *jwtsvid.Bundle
	var generated bool
	var err error
	where := []any{}
	if km != nil {
		names := kube.JWTKeys{Key: filepath.Base(o.JWT.KeyFile), JWKS: filepath.Base(o.JWT.JWKSFile)}
		if b, generated, err = km.store.LoadOrGenerateJWT(ctx, names, o.JWT.KeyID); err != nil {
			return nil, opts, err
		}
		where = append(where, "secret", km.store.Namespace+"/"+kube.TrustBundleName, "key", names.Key, "jwks", names.JWKS)
	} else {
		paths := jwtsvid.PathsIn(o.CredentialsDir, o.JWT.KeyFile, o.JWT.JWKSFile)
		if b, generated, err = jwtsvid.LoadOrGenerate(paths, o.JWT.KeyID); err != nil {
			return nil, opts, fmt.Errorf("jwt credentials: %w", err)
		}
		where = append(where, "key_file", paths.Key, "jwks_file", paths.JWKS)
	}
	alg := o.JWT.Algorithm
	if generated && alg != jwtsvid.DefaultAlgorithm {
		// As Dapr's sentry: a generated key is RSA and signs RS256.
		log.Warn("generated an RSA jwt signing key: tokens are signed RS256, not --jwt-signing-algorithm", "jwt_signing_algorithm", alg)
		alg = jwtsvid.DefaultAlgorithm
	}
	opts = jwtsvid.IssuerOptions{
		Bundle: b, Algorithm: alg, KeyID: o.JWT.KeyID, Issuer: o.JWT.Issuer, TTL: o.JWT.TTL, AllowedClockSkew: mtls.AllowedClockSkew,
	}
	iss, err := jwtsvid.NewIssuer(opts)
	if err != nil {
		return nil, opts, err
	}
	attrs := append(where, "algorithm", iss.Algorithm(), "kid", iss.KeyID(), "ttl", o.JWT.TTL.String(), "issuer", o.JWT.Issuer)
	if generated {
		log.Info("no jwt signing key found: generated one and its jwks", attrs...)
	} else {
		log.Info("jwt svids enabled with the stored signing key", attrs...)
	}
	return iss, opts, nil
}

// oidcServer builds the OIDC discovery server when --oidc-enabled (and,
// as in Dapr, only with --jwt-enabled).
func oidcServer(o *Options, iss *jwtsvid.Issuer, log *slog.Logger) (*oidc.Server, error) {
	if !o.OIDC.Enabled {
		return nil, nil
	}
	if iss == nil {
		log.Warn("--oidc-enabled without --jwt-enabled: there are no tokens to verify, so the OIDC server is not started (as in Dapr)")
		return nil, nil
	}
	jwks, err := iss.Bundle().PublicJWKS()
	if err != nil {
		return nil, err
	}
	return oidc.New(oidc.Options{
		JWKS: jwks, Algorithm: iss.Algorithm(), Issuer: o.JWT.Issuer, JWKSURI: o.OIDC.JWKSURI,
		PathPrefix: o.OIDC.PathPrefix, AllowedHosts: o.OIDC.AllowedHosts,
		TLSCertFile: o.OIDC.TLSCertFile, TLSKeyFile: o.OIDC.TLSKeyFile,
		Address: net.JoinHostPort(o.OIDC.Address, strconv.Itoa(o.OIDC.Port)), Log: log,
	})
}
