package main

import (
	"fmt"
	"net"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/tandemrun/tandem/cmd/tandem/internal/dashboard"
)

func dashboardCommand(g *globals) *cobra.Command {
	var (
		port    int
		address string
	)
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve a web page showing running apps, components, subscriptions, metrics and identities",
		Long: `dashboard serves a small web page (no build step, no internet access needed) that
refreshes every two seconds: the local sentry and CA, every app started with
tandem run, its components and their readiness, its subscriptions, invocation
counts and latency from the sidecar's metrics, and its SPIFFE identity and
certificate expiry. The same data is served as JSON at /api/overview.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := g.Home()
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", net.JoinHostPort(address, strconv.Itoa(port)))
			if err != nil {
				return fmt.Errorf("dashboard: %w; choose another port with --port", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "✅  Dashboard on http://%s (Ctrl-C to stop)\n", ln.Addr())
			return dashboard.Serve(cmd.Context(), ln, h)
		},
	}
	cmd.Flags().IntVarP(&port, "port", "p", 8080, "port to serve on (0: any free port)")
	cmd.Flags().StringVar(&address, "address", "127.0.0.1", "address to serve on")
	return cmd
}
