package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandemrun/tandem/cmd/tandem/internal/inspect"
)

func statusCommand(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the local sentry and placement, the CA's expiry, and each app's components and readiness",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := g.Home()
			if err != nil {
				return err
			}
			if err := h.Check(); err != nil {
				return err
			}
			ov, err := inspect.Collect(cmd.Context(), h)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(ov)
			}
			fmt.Fprintf(out, "Home:    %s\n", ov.Home)
			if ov.Sentry.Running {
				fmt.Fprintf(out, "Sentry:  running on %s (pid %d, since %s)\n", ov.Sentry.Address, ov.Sentry.PID, ov.Sentry.Started.Local().Format(time.Stamp))
				if ov.Sentry.Placement != "" {
					fmt.Fprintf(out, "Placement: running on %s (actors; same process)\n", ov.Sentry.Placement)
				}
				if ov.Sentry.XDS != "" {
					fmt.Fprintf(out, "xDS:     running on %s (proxyless gRPC apps: tandem identity; same process)\n", ov.Sentry.XDS)
				}
			} else {
				fmt.Fprintln(out, "Sentry:  not running (tandem run starts it)")
			}
			if ov.CA != nil {
				fmt.Fprintf(out, "CA:      root expires %s (in %s), issuer expires %s\n", ov.CA.RootNotAfter.Format(time.DateOnly),
					time.Until(ov.CA.RootNotAfter).Round(time.Hour), ov.CA.IssuerNotAfter.Format(time.DateOnly))
			}
			if len(ov.Apps) == 0 {
				fmt.Fprintln(out, "Apps:    none running")
			}
			for _, a := range ov.Apps {
				health := "healthy"
				if !a.Healthy {
					health = "not ready (app port not open yet?)"
				}
				fmt.Fprintf(out, "\nApp %s: %s, sidecar http://127.0.0.1:%d, up %s\n", a.Record.AppID, health, a.Record.HTTPPort, a.Uptime)
				if a.Cert != nil {
					fmt.Fprintf(out, "  identity   %s (certificate expires %s)\n", a.Cert.SPIFFEID, a.Cert.NotAfter.Local().Format(time.RFC3339))
				}
				if a.Metadata != nil {
					for _, c := range a.Metadata.Components {
						fmt.Fprintf(out, "  component  %-18s %-26s %s\n", c.Name, c.Type, c.Status)
					}
					for _, s := range a.Metadata.Subscriptions {
						fmt.Fprintf(out, "  subscribes %s/%s\n", s.PubsubName, s.Topic)
					}
				}
				for _, e := range a.Errors {
					fmt.Fprintf(out, "  ⚠️  %s\n", e)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
