package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandemrun/tandem/cmd/tandem/internal/inspect"
	"github.com/tandemrun/tandem/cmd/tandem/internal/registry"
)

func listCommand(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the apps started with tandem run: ports, PIDs, uptime and certificate expiry",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, recs, err := g.apps()
			if err != nil {
				return err
			}
			infos := inspect.Inspect(cmd.Context(), recs)
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				type row struct {
					AppID        string    `json:"appId"`
					HTTPPort     int       `json:"httpPort"`
					GRPCPort     int       `json:"grpcPort"`
					InternalPort int       `json:"internalPort"`
					MetricsPort  int       `json:"metricsPort"`
					AppPort      int       `json:"appPort"`
					CLIPID       int       `json:"cliPid"`
					SidecarPID   int       `json:"sidecarPid"`
					AppPID       int       `json:"appPid"`
					Command      string    `json:"command"`
					Started      time.Time `json:"started"`
					Uptime       string    `json:"uptime"`
					Healthy      bool      `json:"healthy"`
					SPIFFEID     string    `json:"spiffeId,omitempty"`
					CertExpiry   time.Time `json:"certExpiry,omitzero"`
				}
				rows := []row{}
				for _, a := range infos {
					r := a.Record
					x := row{AppID: r.AppID, HTTPPort: r.HTTPPort, GRPCPort: r.GRPCPort, InternalPort: r.InternalPort, MetricsPort: r.MetricsPort,
						AppPort: r.AppPort, CLIPID: r.CLI.PID, SidecarPID: r.Sidecar.PID, AppPID: r.App.PID,
						Command: strings.Join(r.Command, " "), Started: r.Started, Uptime: a.Uptime, Healthy: a.Healthy}
					if a.Cert != nil {
						x.SPIFFEID, x.CertExpiry = a.Cert.SPIFFEID, a.Cert.NotAfter
					}
					rows = append(rows, x)
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			case "table", "":
			default:
				return fmt.Errorf("-o %q is not supported; use table or json", output)
			}
			if len(infos) == 0 {
				fmt.Fprintln(out, "No apps are running. Start one with: tandem run --app-id myapp -- <command>")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "APP ID\tHTTP\tGRPC\tAPP PORT\tSIDECAR PID\tAPP PID\tUPTIME\tHEALTH\tCERT EXPIRES\tCOMMAND")
			for _, a := range infos {
				r := a.Record
				health := "ok"
				if !a.Healthy {
					health = "starting"
				}
				if r.Orphaned() {
					health = "orphaned"
				}
				expiry := "-"
				if a.Cert != nil {
					expiry = "in " + time.Until(a.Cert.NotAfter).Round(time.Minute).String()
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", r.AppID, r.HTTPPort, r.GRPCPort, r.AppPort, r.Sidecar.PID, r.App.PID,
					a.Uptime, health, expiry, strings.Join(r.Command, " "))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if h, err := g.Home(); err == nil {
				if s, err := registry.LoadSentry(h.SentryFile()); err == nil && s.PlacementAddress != "" {
					fmt.Fprintf(out, "\nActor placement: %s (pid %d, with the local sentry)\n", s.PlacementAddress, s.PID)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}
