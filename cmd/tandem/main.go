// Command tandem is Tandem's command-line tool: it sets up a home folder
// with default resources and a local CA (init), runs apps next to tandemd
// sidecars with mTLS on (run, including Dapr's multi-app run files), shows
// and stops them (list, status, logs, stop), serves a dashboard, and runs a
// self-contained demo.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries an exit code without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := newRoot()
	err := root.ExecuteContext(ctx)
	stop()
	var ee exitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "❌  tandem:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "tandem",
		Short: "Run apps with Tandem sidecars (Dapr-compatible, mTLS by default)",
		Long: `tandem runs your apps next to Tandem sidecars on this machine, with mutual TLS
between sidecars, certificates from a local CA and zero configuration.

  tandem init                                   set up ~/.tandem (once)
  tandem run --app-id orders --app-port 3000 -- go run .
  tandem run -f apps.yaml                       several apps (Dapr's multi-app run format)
  tandem list | status | logs ID | stop --app-id ID
  tandem dashboard                              a web page with everything running
  tandem identity --app-id web --out DIR        certificates for a sidecar-less gRPC app (xDS)
  tandem demo                                   everything in one process, no setup`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.home, "home", "", "Tandem home folder (default $TANDEM_HOME or ~/.tandem)")
	root.AddCommand(
		initCommand(g), runCommand(g), listCommand(g), stopCommand(g), logsCommand(g), statusCommand(g),
		dashboardCommand(g), sentryCommand(g), demoCommand(), k8sCommand(), xdsCommand(), identityCommand(g),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version) },
		},
	)
	return root
}
