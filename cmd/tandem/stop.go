package main

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandemrun/tandem/cmd/tandem/internal/localsentry"
	"github.com/tandemrun/tandem/cmd/tandem/internal/registry"
	"github.com/tandemrun/tandem/cmd/tandem/internal/runfile"
	"github.com/tandemrun/tandem/cmd/tandem/internal/runner"
)

func stopCommand(g *globals) *cobra.Command {
	var (
		ids     []string
		runFile string
		all     bool
	)
	cmd := &cobra.Command{
		Use:   "stop (--app-id ID... | -f FILE | --all)",
		Short: "Stop apps started with tandem run (the sidecar drains first)",
		Long: `stop ends apps started with tandem run, in another terminal or in the
background: each sidecar finishes its in-flight calls, then its app is stopped.
--all also stops the local sentry.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, recs, err := g.apps()
			if err != nil {
				return err
			}
			want := map[string]bool{}
			for _, id := range ids {
				want[id] = true
			}
			if runFile != "" {
				f, err := runfile.Load(runFile)
				if err != nil {
					return err
				}
				for _, a := range f.Apps {
					want[a.AppID] = true
				}
			}
			if len(want) == 0 && !all {
				return errors.New("say what to stop: --app-id ID, -f FILE or --all (see `tandem list`)")
			}
			var targets []*registry.App
			found := map[string]bool{}
			for _, r := range recs {
				if all || want[r.AppID] {
					targets = append(targets, r)
					found[r.AppID] = true
				}
			}
			out := cmd.OutOrStdout()
			var missing []string
			for id := range want {
				if !found[id] {
					missing = append(missing, id)
				}
			}
			stopApps(targets, recs)
			for _, r := range targets {
				fmt.Fprintf(out, "✅  Stopped %s\n", r.AppID)
			}
			if all {
				if s, err := registry.LoadSentry(h.SentryFile()); err == nil {
					localsentry.Stop(s, 5*time.Second)
					fmt.Fprintf(out, "✅  Stopped the local sentry (pid %d)\n", s.PID)
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("not running: %v (see `tandem list`)", missing)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&ids, "app-id", "a", nil, "app ID to stop (repeatable)")
	cmd.Flags().StringVarP(&runFile, "run-file", "f", "", "stop every app of a multi-app run file")
	cmd.Flags().BoolVar(&all, "all", false, "stop every app and the local sentry")
	return cmd
}

// stopApps asks each `tandem run` that owns only apps being stopped to stop
// (it drains and exits), and stops the other apps' processes directly.
func stopApps(targets, all []*registry.App) {
	stopping := map[string]bool{}
	for _, t := range targets {
		stopping[t.AppID] = true
	}
	owned := map[registry.Proc]bool{} // CLI -> owns an app that keeps running
	for _, r := range all {
		if !stopping[r.AppID] {
			owned[r.CLI] = true
		}
	}
	signalled := map[registry.Proc]bool{}
	for _, t := range targets {
		if t.CLI.Alive() && !owned[t.CLI] {
			if !signalled[t.CLI] {
				_ = syscall.Kill(t.CLI.PID, syscall.SIGTERM)
				signalled[t.CLI] = true
			}
			continue
		}
		runner.Terminate(t, 15*time.Second)
	}
	deadline := time.Now().Add(30 * time.Second)
	for cli := range signalled {
		for cli.Alive() && time.Now().Before(deadline) {
			time.Sleep(25 * time.Millisecond)
		}
	}
	for _, t := range targets {
		if t.Alive() { // the CLI did not finish in time
			runner.Terminate(t, 5*time.Second)
			if t.CLI.Alive() {
				_ = syscall.Kill(t.CLI.PID, syscall.SIGKILL)
			}
		}
	}
}
