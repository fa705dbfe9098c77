package main

import (
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandemrun/tandem/cmd/tandem/internal/localsentry"
)

// sentryCommand is the hidden background sentry that `tandem run` starts.
func sentryCommand(g *globals) *cobra.Command {
	var idle, ttl time.Duration
	cmd := &cobra.Command{
		Use:    "sentry",
		Short:  "Run the local sentry CA of the home folder (started by `tandem run`)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := g.Home()
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "sentry")
			return localsentry.Serve(cmd.Context(), h, localsentry.ServeOptions{IdleExit: idle, WorkloadCertTTL: ttl, Log: log})
		},
	}
	cmd.Flags().DurationVar(&idle, "idle-exit", localsentry.DefaultIdleExit, "exit after this long with no app running (0: never)")
	cmd.Flags().DurationVar(&ttl, "workload-cert-ttl", 0, "lifetime of issued certificates (default 24h)")
	return cmd
}
