package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tandemrun/tandem/resiliency"
	"github.com/tandemrun/tandem/xds"
	"github.com/tandemrun/tandem/xds/standalone"
	"github.com/tandemrun/tandem/xds/svidfiles"
)

// xdsCommand runs the xDS server for proxyless gRPC apps (self-hosted).
func xdsCommand() *cobra.Command {
	var c standalone.Config
	var port int
	var host, anchorsFile string
	cmd := &cobra.Command{
		Use:   "xds",
		Short: "Serve xDS so proxyless gRPC apps (GRPC_XDS_BOOTSTRAP, xds:///<app-id>) call apps' sidecars directly",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c.Listen = net.JoinHostPort(host, strconv.Itoa(port))
			c.TrustAnchors = []byte(os.Getenv("DAPR_TRUST_ANCHORS"))
			if anchorsFile != "" {
				b, err := os.ReadFile(anchorsFile)
				if err != nil {
					return err
				}
				c.TrustAnchors = b
			}
			c.Log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "xds")
			return standalone.Run(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&host, "listen-address", "127.0.0.1", "address to listen on")
	f.IntVar(&port, "port", 50061, "xDS port")
	f.StringVar(&c.Registry, "registry", "", "the sidecars' SQLite name-resolution file (their nameResolution connectionString)")
	f.DurationVar(&c.UpdateInterval, "update-interval", 5*time.Second, "the sidecars' nameResolution updateInterval")
	f.StringSliceVar(&c.ResourcesDirs, "resources-path", nil, "folders with Resiliency documents to translate")
	f.StringVar(&c.TrustDomain, "trust-domain", "public", "the apps' SPIFFE trust domain")
	f.StringVar(&c.Namespace, "namespace", "default", "namespace whose apps are also reachable as xds:///<app-id>")
	f.StringVar(&c.SentryAddress, "sentry-address", "", "sentry host:port for this server's certificate (empty: plaintext)")
	f.StringVar(&anchorsFile, "trust-anchors-file", "", "sentry's trust anchors (default $DAPR_TRUST_ANCHORS)")
	f.StringVar(&c.ControlPlaneTrustDomain, "control-plane-trust-domain", "localhost", "sentry's trust domain")
	_ = cmd.MarkFlagRequired("registry")
	cmd.AddCommand(envoyBootstrapCommand())
	return cmd
}

// envoyBootstrapCommand writes the bootstrap of an Envoy ingress in front
// of the mesh, and the SDS files it reads its certificate from.
func envoyBootstrapCommand() *cobra.Command {
	var o xds.EnvoyOptions
	var apps, resources []string
	var td string
	var port, admin uint32
	cmd := &cobra.Command{
		Use:   "envoy-bootstrap --identity-dir DIR --app ID [--app ID.NAMESPACE]...",
		Short: "Print the bootstrap of an Envoy ingress that routes gRPC by :authority to apps' sidecars (endpoints over ADS, mTLS with tandem identity's files)",
		Long: `envoy-bootstrap prints (envoy -c) a bootstrap for an Envoy in front of the mesh:
a listener on --listen-port routing HTTP/2 and gRPC calls by :authority (the
app ID, or ID.NAMESPACE) to the app's sidecars, an EDS cluster per app whose
endpoints come over ADS from this xDS server, and mTLS to the sidecars and to
the xDS server with the SVID that 'tandem identity --app-id <ingress> --out DIR'
keeps in DIR. It also writes DIR/envoy-sds-svid.json and
DIR/envoy-sds-roots.json, the file-based SDS secrets Envoy reloads when the
certificate rotates. Resiliency timeouts and retries (--resources-path) go
into the routes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.TrustDomain, err = spiffeid.TrustDomainFromString(td); err != nil {
				return fmt.Errorf("--trust-domain: %w", err)
			}
			if o.Dir, err = filepath.Abs(o.Dir); err != nil {
				return err
			}
			o.ListenPort, o.AdminPort = port, admin
			for _, a := range apps {
				id, ns, _ := strings.Cut(a, ".")
				o.Apps = append(o.Apps, xds.App{ID: id, Namespace: ns})
			}
			if len(resources) > 0 {
				docs, _, err := resiliency.LoadDirs(resources...)
				if err != nil {
					return err
				}
				set, err := resiliency.Build("", docs)
				if err != nil {
					return err
				}
				o.Policy = set.ForApp
			}
			js, err := xds.EnvoyBootstrapJSON(o)
			if err != nil {
				return err
			}
			files, err := xds.EnvoySDSFiles(o.Dir)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(o.Dir, 0o700); err != nil {
				return err
			}
			for name, b := range files {
				if err := svidfiles.WriteAtomic(filepath.Join(o.Dir, name), b); err != nil {
					return err
				}
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", js)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Dir, "identity-dir", "", "the ingress's identity folder, kept by tandem identity (cert.pem, key.pem, ca.pem)")
	f.StringArrayVar(&apps, "app", nil, "an app ID the ingress exposes (ID or ID.NAMESPACE; repeatable)")
	f.StringVar(&o.Server, "xds-address", "127.0.0.1:50061", "the xDS server Envoy takes endpoints from")
	f.BoolVar(&o.Plaintext, "xds-plaintext", false, "the xDS server serves plaintext")
	f.StringVar(&td, "trust-domain", "public", "the apps' and the xDS server's trust domain")
	f.StringVar(&o.ServerNamespace, "xds-namespace", "default", "the xDS server's namespace (its SPIFFE ID is spiffe://<td>/ns/<ns>/dapr-xds)")
	f.StringVar(&o.ListenAddress, "listen-address", "0.0.0.0", "the ingress's listen address")
	f.Uint32Var(&port, "listen-port", 10000, "the ingress's port")
	f.Uint32Var(&admin, "admin-port", 9901, "Envoy's admin port (on 127.0.0.1)")
	f.StringVar(&o.NodeID, "node-id", "envoy-ingress", "Envoy's node ID (in the xDS server's logs)")
	f.StringSliceVar(&resources, "resources-path", nil, "folders with Resiliency documents (timeouts and retries of the routes)")
	_ = cmd.MarkFlagRequired("identity-dir")
	_ = cmd.MarkFlagRequired("app")
	return cmd
}
