package main

import (
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandemrun/tandem/xds/standalone"
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
	return cmd
}
