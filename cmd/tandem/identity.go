package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tandemrun/tandem/cmd/tandem/internal/home"
	"github.com/tandemrun/tandem/cmd/tandem/internal/localsentry"
	"github.com/tandemrun/tandem/cmd/tandem/internal/registry"
	"github.com/tandemrun/tandem/identity"
	sentryclient "github.com/tandemrun/tandem/sentry/client"
	"github.com/tandemrun/tandem/xds"
	"github.com/tandemrun/tandem/xds/svidfiles"
)

// identityFlags are what `tandem identity` takes.
type identityFlags struct {
	appID, out, namespace, trustDomain                  string
	sentryAddr, anchorsFile, cpTrustDomain, cpNamespace string
	token, kubeTokenFile                                string
	xdsAddr, xdsTrustDomain                             string
	xdsPlaintext, xdsAddrSet                            bool
}

// identityCommand keeps a sidecar-less app's SVID in files and prints the
// xDS bootstrap that uses them.
func identityCommand(g *globals) *cobra.Command {
	var f identityFlags
	cmd := &cobra.Command{
		Use:   "identity --app-id ID --out DIR",
		Short: "Keep a sidecar-less (proxyless gRPC) app's SPIFFE certificate from sentry in DIR and print its xDS bootstrap",
		Long: `identity gets an X.509 SVID for the app ID from sentry and writes DIR/cert.pem,
DIR/key.pem, DIR/ca.pem and DIR/spiffe-bundle-map.json (each replaced
atomically), renews them at half their lifetime until interrupted, and writes
and prints the GRPC_XDS_BOOTSTRAP JSON (DIR/bootstrap.json) whose file_watcher
certificate provider rereads them: the app needs no restart on rotation.

With no --sentry-address it uses the home folder's local sentry (started if
needed) and join token, as tandem run does, and the bootstrap names the xDS
server that runs in the same process (unless --xds-address is given). Otherwise give the sentry, its
trust anchors, and a join token (--sentry-token, $TANDEM_SENTRY_TOKEN) or a
Kubernetes service account token file (--kubernetes-token-file).`,
		Example: `  tandem identity --app-id web --out /tmp/web-id &
  GRPC_XDS_BOOTSTRAP=/tmp/web-id/bootstrap.json GRPC_EXPERIMENTAL_XDS_MTLS_SPIFFE=true ./web   # dials xds:///orders`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.xdsAddrSet = cmd.Flags().Changed("xds-address")
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)).With("component", "identity")
			return runIdentity(cmd.Context(), g, f, cmd.OutOrStdout(), cmd.ErrOrStderr(), log)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.appID, "app-id", "a", "", "the app's ID (its SPIFFE ID is spiffe://<trust-domain>/ns/<namespace>/<app-id>)")
	fl.StringVar(&f.out, "out", "", "folder for cert.pem, key.pem, ca.pem, spiffe-bundle-map.json and bootstrap.json")
	fl.StringVar(&f.namespace, "namespace", envOr("NAMESPACE", identity.DefaultNamespace), "the app's namespace")
	fl.StringVar(&f.trustDomain, "trust-domain", "public", "the apps' trust domain (the Configuration's spec.accessControl.trustDomain)")
	fl.StringVar(&f.sentryAddr, "sentry-address", "", "sentry host:port (empty: the home folder's local sentry)")
	fl.StringVar(&f.anchorsFile, "trust-anchors-file", "", "sentry's trust anchors (default $DAPR_TRUST_ANCHORS)")
	fl.StringVar(&f.cpTrustDomain, "control-plane-trust-domain", "localhost", "sentry's trust domain")
	fl.StringVar(&f.cpNamespace, "control-plane-namespace", envOr("DAPR_CONTROLPLANE_NAMESPACE", identity.DefaultNamespace), "sentry's namespace")
	fl.StringVar(&f.token, "sentry-token", "", "join token for sentry (prefer $TANDEM_SENTRY_TOKEN: command lines are visible to other users)")
	fl.StringVar(&f.kubeTokenFile, "kubernetes-token-file", "", "a Kubernetes service account token file, reread at every renewal (sentry's Kubernetes validator)")
	fl.StringVar(&f.xdsAddr, "xds-address", "127.0.0.1:50061", "the xDS server the bootstrap names (tandem xds, or the operator's --xds-port; default with no --sentry-address: the local sentry's)")
	fl.StringVar(&f.xdsTrustDomain, "xds-trust-domain", "", "the xDS server's trust domain, if not --trust-domain")
	fl.BoolVar(&f.xdsPlaintext, "xds-plaintext", false, "the xDS server serves plaintext (tandem xds with no --sentry-address)")
	_ = cmd.MarkFlagRequired("app-id")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func runIdentity(ctx context.Context, g *globals, f identityFlags, stdout, progress io.Writer, log *slog.Logger) error {
	if f.token == "" {
		f.token = os.Getenv("TANDEM_SENTRY_TOKEN")
	}
	if f.token != "" && f.kubeTokenFile != "" {
		return errors.New("give a join token or --kubernetes-token-file, not both")
	}
	id, err := identity.AppID(f.trustDomain, f.namespace, f.appID)
	if err != nil {
		return err
	}
	out, err := filepath.Abs(f.out)
	if err != nil {
		return err
	}
	var issuer identity.Issuer
	var h *home.Home
	if f.sentryAddr == "" {
		if h, err = g.Home(); err != nil {
			return err
		}
		if err := h.Check(); err != nil {
			return err
		}
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		hi := &homeIssuer{h: h, exe: exe, progress: progress}
		defer hi.close()
		issuer = hi
	} else {
		c, err := identitySentryClient(f)
		if err != nil {
			return err
		}
		defer c.Close()
		issuer = c
	}
	var extra []spiffeid.TrustDomain
	if f.xdsTrustDomain != "" {
		td, err := spiffeid.TrustDomainFromString(f.xdsTrustDomain)
		if err != nil {
			return fmt.Errorf("--xds-trust-domain: %w", err)
		}
		extra = append(extra, td)
	}
	k := &svidfiles.Keeper{Dir: out, ID: id, Issuer: issuer, ExtraTrustDomains: extra, Log: log}
	next, err := k.Start(ctx)
	if err != nil {
		return err
	}
	if h != nil && !f.xdsAddrSet {
		// The local sentry's process serves xDS too.
		if s, err := registry.LoadSentry(h.SentryFile()); err == nil && s.XDSAddress != "" {
			f.xdsAddr = s.XDSAddress
		}
	}
	boot, err := xds.Bootstrap(xds.BootstrapOptions{Server: f.xdsAddr, NodeID: f.appID, Files: svidfiles.Paths(out), Plaintext: f.xdsPlaintext})
	if err != nil {
		return err
	}
	bootPath := filepath.Join(out, svidfiles.BootstrapFile)
	if err := svidfiles.WriteAtomic(bootPath, boot); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", boot)
	fmt.Fprintf(progress, "✅  %s's certificate is in %s, renewed at half its lifetime until interrupted.\n"+
		"    Start the app with GRPC_XDS_BOOTSTRAP=%s GRPC_EXPERIMENTAL_XDS_MTLS_SPIFFE=true and dial xds:///<app-id>.\n",
		id, out, bootPath)
	return k.Follow(ctx, next)
}

// identitySentryClient is the sentry client for an explicit
// --sentry-address: anchors from the file or $DAPR_TRUST_ANCHORS; a join
// token, or a Kubernetes token read at every request.
func identitySentryClient(f identityFlags) (*sentryclient.Client, error) {
	anchorsPEM := []byte(os.Getenv("DAPR_TRUST_ANCHORS"))
	if f.anchorsFile != "" {
		b, err := os.ReadFile(f.anchorsFile)
		if err != nil {
			return nil, err
		}
		anchorsPEM = b
	}
	anchors, err := sentryclient.ParseTrustAnchors(anchorsPEM)
	if err != nil {
		return nil, fmt.Errorf("sentry's trust anchors (--trust-anchors-file or $DAPR_TRUST_ANCHORS): %w", err)
	}
	sid, err := sentryclient.SentryID(f.cpTrustDomain, f.cpNamespace)
	if err != nil {
		return nil, err
	}
	cfg := sentryclient.Config{Address: f.sentryAddr, TrustAnchors: anchors, SentryID: sid, Token: f.token}
	if f.kubeTokenFile != "" {
		path := f.kubeTokenFile
		cfg.TokenValidator = sentryv1.SignCertificateRequest_KUBERNETES
		cfg.CurrentToken = func() (string, error) {
			b, err := os.ReadFile(path)
			return strings.TrimSpace(string(b)), err
		}
	}
	return sentryclient.New(cfg)
}

// homeIssuer asks the home folder's local sentry, starting it again if it
// has exited (it exits when no app has run for a while) before every
// issuance.
type homeIssuer struct {
	h        *home.Home
	exe      string
	progress io.Writer

	mu   sync.Mutex
	addr string
	c    *sentryclient.Client
}

func (hi *homeIssuer) Issue(ctx context.Context, id spiffeid.ID, csr []byte) (*identity.Issued, error) {
	c, err := hi.client(ctx)
	if err != nil {
		return nil, err
	}
	return c.Issue(ctx, id, csr)
}

func (hi *homeIssuer) client(ctx context.Context) (*sentryclient.Client, error) {
	hi.mu.Lock()
	defer hi.mu.Unlock()
	s, err := localsentry.Ensure(ctx, hi.h, hi.exe, hi.progress)
	if err != nil {
		return nil, fmt.Errorf("local sentry: %w", err)
	}
	if hi.c != nil && hi.addr == s.Address {
		return hi.c, nil
	}
	token, err := hi.h.JoinToken()
	if err != nil {
		return nil, err
	}
	c, err := identitySentryClient(identityFlags{sentryAddr: s.Address, cpTrustDomain: home.TrustDomain,
		cpNamespace: identity.DefaultNamespace, token: token, anchorsFile: hi.h.TrustAnchors()})
	if err != nil {
		return nil, fmt.Errorf("local sentry: %w", err)
	}
	hi.close0()
	hi.c, hi.addr = c, s.Address
	return c, nil
}

func (hi *homeIssuer) close() {
	hi.mu.Lock()
	defer hi.mu.Unlock()
	hi.close0()
}

func (hi *homeIssuer) close0() {
	if hi.c != nil {
		_ = hi.c.Close()
		hi.c = nil
	}
}
